//===- QuantizationConfig.cpp - quantization_config of an export ---------===//
// What each format's config states about the layers (QuantizationConfig.h).
//===----------------------------------------------------------------------===//

#include "QuantizationConfig.h"
#include "ModelInfo.h"
#include "Support.h"

#include "llvm/ADT/STLExtras.h"

using namespace llvm;
namespace json = llvm::json;

namespace quant_mlir::hf {

static Error err(const Twine &msg) { return makeError(msg); }

std::string exactRegex(StringRef name) {
  std::string out = "^";
  for (char c : name) {
    if (StringRef("\\.^$|()[]{}*+?").contains(c))
      out += '\\';
    out += c;
  }
  return out + "$";
}

static std::string schemeText(const QuantLayer &l) {
  return (Twine(l.bits) + "-bit, group " + Twine(l.groupSize) +
          (l.symmetric ? ", symmetric" : ", zero-point") +
          (l.actOrder ? ", act-order" : ""))
      .str();
}

static bool sameScheme(const QuantLayer &a, const QuantLayer &b) {
  return a.bits == b.bits && a.groupSize == b.groupSize &&
         a.symmetric == b.symmetric && a.actOrder == b.actOrder;
}

/// quantization_config (and quantize_config.json for GPTQ) for the layers.
Expected<json::Object>
quantizationConfig(const ExportOptions &opt, ArrayRef<QuantLayer> layers,
                   ArrayRef<std::string> floatLinears) {
  // The most common scheme is the model's; GPTQ states the others per layer.
  const QuantLayer *base = &layers.front();
  size_t best = 0;
  for (const QuantLayer &l : layers) {
    size_t count = llvm::count_if(
        layers, [&](const QuantLayer &o) { return sameScheme(o, l); });
    if (count > best) {
      best = count;
      base = &l;
    }
  }
  const QuantLayer &first = *base;
  if (opt.format == Format::AWQ)
    for (const QuantLayer &l : layers)
      if (!sameScheme(l, first))
        return err("layers '" + first.name + "' (" + schemeText(first) +
                   ") and '" + l.name + "' (" + schemeText(l) +
                   ") have different schemes, which an AutoAWQ config cannot "
                   "state (one w_bit/q_group_size for the model); use "
                   "--format gptq_v2 (GPTQModel dynamic) or "
                   "compressed-tensors");
  switch (opt.format) {
  case Format::GPTQ:
  case Format::GPTQv2: {
    // GPTQModel gptqmodel/quantization/config.py QuantizeConfig.dynamic,
    // read by vLLM's GPTQConfig / GPTQMarlinConfig (get_dynamic_override:
    // re.match of the pattern on the module name, "-:" skips it).
    json::Object dynamic;
    for (const QuantLayer &l : layers)
      if (!sameScheme(l, first))
        dynamic["+:" + exactRegex(l.name)] =
            json::Object{{"bits", l.bits},
                         {"group_size", l.groupSize},
                         {"sym", l.symmetric},
                         {"desc_act", l.actOrder}};
    for (const std::string &n : floatLinears)
      if (!isHeadLayer(n))
        dynamic["-:" + exactRegex(n)] = json::Object{};
    // AutoGPTQ auto_gptq/modeling/_base.py BaseQuantizeConfig.to_dict.
    json::Object cfg{{"bits", first.bits},
                        {"group_size", first.groupSize},
                        {"desc_act", first.actOrder},
                        {"sym", first.symmetric},
                        {"static_groups", opt.staticGroups},
                        {"true_sequential", opt.trueSequential},
                        {"damp_percent", opt.dampPercent},
                        {"quant_method", "gptq"},
                        {"checkpoint_format",
                         opt.format == Format::GPTQ ? "gptq" : "gptq_v2"},
                        {"model_name_or_path", nullptr},
                        {"model_file_base_name", "model"},
                        // GPTQModel / vLLM (GPTQConfig.lm_head_quantized).
                        {"lm_head", llvm::any_of(layers, [](const QuantLayer &l) {
                           return isHeadLayer(l.name);
                         })}};
    if (!dynamic.empty())
      cfg["dynamic"] = std::move(dynamic);
    return cfg;
  }
  case Format::AWQ: {
    // transformers AwqConfig / AutoAWQ's saved quant_config.
    json::Array skip;
    for (const std::string &n : floatLinears)
      if (!isHeadLayer(n))
        skip.push_back(n);
    json::Value skipValue = skip.empty() ? json::Value(nullptr)
                                         : json::Value(std::move(skip));
    return json::Object{{"quant_method", "awq"},
                        {"version", "gemm"},
                        {"bits", first.bits},
                        {"group_size", first.groupSize},
                        {"zero_point", !first.symmetric},
                        {"modules_to_not_convert", std::move(skipValue)}};
  }
  case Format::CompressedTensors: {
    // compressed_tensors/quantization/quant_config.py QuantizationConfig with
    // one config group per distinct scheme.
    std::vector<std::vector<const QuantLayer *>> groups;
    for (const QuantLayer &l : layers) {
      auto it = llvm::find_if(groups, [&](auto &g) { return sameScheme(*g[0], l); });
      if (it == groups.end())
        groups.push_back({&l});
      else
        it->push_back(&l);
    }
    json::Object configGroups;
    for (auto [i, g] : llvm::enumerate(groups)) {
      const QuantLayer &l = *g[0];
      json::Array targets;
      if (groups.size() == 1)
        targets.push_back("Linear");
      else
        for (const QuantLayer *m : g)
          targets.push_back(m->name);
      json::Object weights{
          {"num_bits", l.bits},
          {"type", "int"},
          {"symmetric", l.symmetric},
          {"strategy", l.groupSize == -1 ? "channel" : "group"},
          {"group_size", l.groupSize == -1 ? json::Value(nullptr)
                                           : json::Value(l.groupSize)},
          {"actorder", l.actOrder ? json::Value("group") : json::Value(nullptr)},
          {"dynamic", false},
          {"observer", "minmax"},
          {"observer_kwargs", json::Object{}},
          {"block_structure", nullptr}};
      configGroups["group_" + std::to_string(i)] =
          json::Object{{"targets", std::move(targets)},
                       {"weights", std::move(weights)},
                       {"input_activations", nullptr},
                       {"output_activations", nullptr}};
    }
    json::Array ignore;
    for (const std::string &n : floatLinears)
      ignore.push_back(n);
    return json::Object{{"quant_method", "compressed-tensors"},
                        {"format", "pack-quantized"},
                        {"quantization_status", "compressed"},
                        {"config_groups", std::move(configGroups)},
                        {"ignore", std::move(ignore)},
                        {"kv_cache_scheme", nullptr},
                        {"version", "0.9.1"}};
  }
  }
  return json::Object{};
}


} // namespace quant_mlir::hf
