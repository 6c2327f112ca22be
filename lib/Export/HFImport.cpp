//===- HFImport.cpp - a Hugging Face quantized checkpoint onto a graph -----===//
// quant-import --checkpoint: the imported graph gives the layers and their
// shapes, the checkpoint their codes/scales/zeros (decoded by HFFormats) and
// its float tensors; the result is the same module quant-compile would have
// written, #wq.packing<gptq> with exact zeros.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Export/HFExport.h"
#include "ModelInfo.h"
#include "Support.h"

#include "quant-mlir/Dialect/WQ/IR/WQBuilders.h"
#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"
#include "quant-mlir/Quant/Packing.h"

#include "mlir/IR/Builders.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/Regex.h"
#include "llvm/Support/Signals.h"

#include <cstring>
#include <map>
#include <set>

using namespace llvm;
using namespace mlir;
namespace fs = llvm::sys::fs;
namespace st = quant_mlir::safetensors;
namespace json = llvm::json;

namespace quant_mlir::hf {

static Error err(const Twine &msg) { return makeError(msg); }

CheckpointArchive::~CheckpointArchive() = default;

namespace {
/// The checkpoint's format and, per layer, its scheme.
struct CheckpointConfig {
  Format format = Format::GPTQ;
  LayerConfig uniform;
  /// compressed-tensors: (targets, scheme) per config group, and ignores.
  std::vector<std::pair<std::vector<std::string>, LayerConfig>> groups;
  std::vector<std::string> ignore;
  /// GPTQModel `dynamic`: (pattern, skip, scheme) in the config's order.
  struct Dynamic {
    std::string pattern;
    bool skip;
    LayerConfig config;
  };
  std::vector<Dynamic> dynamic;

  /// The scheme of `layer`, or nullopt if the config leaves it in float.
  std::optional<LayerConfig> lookup(StringRef layer) const {
    if (format == Format::GPTQ || format == Format::GPTQv2) {
      // GPTQModel / vLLM get_dynamic_override: the first re.match wins.
      for (const Dynamic &d : dynamic) {
        StringRef p(d.pattern);
        std::string anchored = p.starts_with("^") ? p.str() : "^" + p.str();
        if (Regex(anchored).match(layer))
          return d.skip ? std::nullopt : std::optional<LayerConfig>(d.config);
      }
      return uniform;
    }
    if (format != Format::CompressedTensors)
      return uniform;
    auto matches = [&](StringRef target) {
      if (target == "Linear" || target == layer)
        return true;
      if (target.consume_front("re:"))
        return Regex(("^" + target + "$").str()).match(layer);
      return false;
    };
    for (const std::string &i : ignore)
      if (matches(i) && i != "Linear")
        return std::nullopt;
    for (auto &[targets, cfg] : groups)
      for (const std::string &t : targets)
        if (matches(t))
          return cfg;
    return std::nullopt;
  }
};
} // namespace

static Expected<CheckpointConfig> readConfig(StringRef dir) {
  SmallString<256> cfgPath(dir), qcPath(dir);
  sys::path::append(cfgPath, "config.json");
  sys::path::append(qcPath, "quantize_config.json");
  json::Object qc;
  std::string where;
  if (fs::exists(cfgPath)) {
    auto cfg = readJSONObject(cfgPath);
    if (!cfg)
      return cfg.takeError();
    if (const json::Object *q = cfg->getObject("quantization_config")) {
      qc = *q;
      where = (cfgPath + " quantization_config").str();
    }
  }
  if (qc.empty() && fs::exists(qcPath)) {
    auto q = readJSONObject(qcPath);
    if (!q)
      return q.takeError();
    qc = std::move(*q);
    where = qcPath.str().str();
  }
  if (qc.empty())
    return err("'" + dir + "' has no quantization_config in config.json and "
                           "no quantize_config.json");
  CheckpointConfig c;
  std::string method = qc.getString("quant_method").value_or("gptq").str();
  auto intOf = [&](const json::Object &o, StringRef key,
                   int64_t dflt) -> int64_t {
    return o.getInteger(key).value_or(dflt);
  };
  if (method == "gptq") {
    std::string fmt = qc.getString("checkpoint_format").value_or("gptq").str();
    if (fmt != "gptq" && fmt != "gptq_v2")
      return err(where + ": checkpoint_format '" + fmt +
                 "' is not gptq or gptq_v2");
    c.format = fmt == "gptq" ? Format::GPTQ : Format::GPTQv2;
    c.uniform.bits = unsigned(intOf(qc, "bits", 4));
    c.uniform.groupSize = intOf(qc, "group_size", 128);
    c.uniform.symmetric = qc.getBoolean("sym").value_or(true);
    c.uniform.actOrder = qc.getBoolean("desc_act").value_or(false);
    if (const json::Object *dyn = qc.getObject("dynamic")) {
      // json::Object is unordered: keep the file's order for first-match.
      std::vector<std::string> keys;
      for (auto &kv : *dyn)
        keys.push_back(kv.first.str());
      llvm::sort(keys);
      for (const std::string &key : keys) {
        const json::Object *o = dyn->getObject(key);
        if (!o)
          return err(where + ": dynamic entry '" + key + "' is not an object");
        StringRef pattern(key);
        bool skip = pattern.consume_front("-:");
        if (!skip)
          pattern.consume_front("+:");
        if (!Regex(pattern).isValid())
          return err(where + ": dynamic pattern '" + key +
                     "' is not a regular expression this reader takes "
                     "(POSIX extended)");
        LayerConfig lc = c.uniform;
        lc.bits = unsigned(intOf(*o, "bits", lc.bits));
        lc.groupSize = intOf(*o, "group_size", lc.groupSize);
        lc.symmetric = o->getBoolean("sym").value_or(lc.symmetric);
        lc.actOrder = o->getBoolean("desc_act").value_or(lc.actOrder);
        c.dynamic.push_back({pattern.str(), skip, lc});
      }
    }
  } else if (method == "awq") {
    std::string version = qc.getString("version").value_or("gemm").str();
    if (StringRef(version).lower() != "gemm")
      return err(where + ": AWQ version '" + version +
                 "' is not read (only the GEMM layout)");
    c.format = Format::AWQ;
    c.uniform.bits = unsigned(intOf(qc, "bits", intOf(qc, "w_bit", 4)));
    c.uniform.groupSize = intOf(qc, "group_size", intOf(qc, "q_group_size", 128));
    c.uniform.symmetric = !qc.getBoolean("zero_point").value_or(true);
    if (c.uniform.symmetric)
      return err(where + ": AWQ without zero points is not read");
  } else if (method == "compressed-tensors") {
    std::string fmt = qc.getString("format").value_or("").str();
    if (fmt != "pack-quantized")
      return err(where + ": compressed-tensors format '" + fmt +
                 "' is not read (only pack-quantized)");
    c.format = Format::CompressedTensors;
    const json::Object *groups = qc.getObject("config_groups");
    if (!groups || groups->empty())
      return err(where + ": no config_groups");
    std::vector<std::string> names;
    for (auto &kv : *groups)
      names.push_back(kv.first.str());
    llvm::sort(names);
    for (const std::string &name : names) {
      const json::Object *g = groups->getObject(name);
      const json::Object *w = g ? g->getObject("weights") : nullptr;
      if (!w)
        return err(where + ": config group '" + name + "' has no weights");
      if (w->getString("type").value_or("int") != "int")
        return err(where + ": config group '" + name +
                   "' is not integer weight quantization");
      if (g->get("input_activations") &&
          g->get("input_activations")->kind() != json::Value::Null)
        return err(where + ": config group '" + name +
                   "' quantizes activations, which this project does not");
      LayerConfig lc;
      lc.bits = unsigned(intOf(*w, "num_bits", 4));
      lc.symmetric = w->getBoolean("symmetric").value_or(true);
      std::string strategy = w->getString("strategy").value_or("group").str();
      if (strategy == "channel")
        lc.groupSize = -1;
      else if (strategy == "group")
        lc.groupSize = intOf(*w, "group_size", 128);
      else
        return err(where + ": config group '" + name + "' strategy '" +
                   strategy + "' is not read (group or channel)");
      std::optional<StringRef> act = w->getString("actorder");
      lc.actOrder = act && *act == "group";
      std::vector<std::string> targets;
      if (const json::Array *t = g->getArray("targets"))
        for (const json::Value &v : *t)
          if (auto s = v.getAsString())
            targets.push_back(s->str());
      c.groups.push_back({std::move(targets), lc});
    }
    if (const json::Array *ig = qc.getArray("ignore"))
      for (const json::Value &v : *ig)
        if (auto s = v.getAsString())
          c.ignore.push_back(s->str());
  } else {
    return err(where + ": quant_method '" + method +
               "' is not read (gptq, awq, compressed-tensors)");
  }
  return c;
}

/// The checkpoint's tensors, from model.safetensors.index.json or
/// model.safetensors.
static Error openWeights(StringRef dir,
                         std::vector<std::unique_ptr<st::Reader>> &readers,
                         std::map<std::string, TensorRef> &tensors) {
  SmallString<256> index(dir), single(dir);
  sys::path::append(index, "model.safetensors.index.json");
  sys::path::append(single, "model.safetensors");
  std::map<std::string, std::string> expected; // tensor -> shard
  std::vector<std::string> files;
  if (fs::exists(index)) {
    auto idx = readJSONObject(index);
    if (!idx)
      return idx.takeError();
    const json::Object *map = idx->getObject("weight_map");
    if (!map)
      return err("'" + index + "' has no weight_map");
    std::set<std::string> unique;
    for (auto &kv : *map) {
      auto file = kv.second.getAsString();
      if (!file)
        return err("'" + index + "': weight_map entry '" + kv.first.str() +
                   "' is not a file name");
      expected[kv.first.str()] = file->str();
      if (unique.insert(file->str()).second)
        files.push_back(file->str());
    }
  } else if (fs::exists(single)) {
    files.push_back("model.safetensors");
  } else {
    return err("'" + dir + "' has neither model.safetensors nor "
                           "model.safetensors.index.json");
  }
  for (const std::string &file : files) {
    SmallString<256> path(dir);
    sys::path::append(path, file);
    auto reader = st::Reader::open(path);
    if (!reader)
      return reader.takeError();
    for (const st::TensorInfo &t : (*reader)->tensors())
      tensors[t.name] = TensorRef{t.dtype, t.shape, (*reader)->bytes(t)};
    readers.push_back(std::move(*reader));
  }
  for (auto &[name, file] : expected)
    if (!tensors.count(name))
      return err("checkpoint tensor '" + name + "' is listed in the index as "
                 "in '" + file + "', which does not hold it");
  return Error::success();
}

/// Converts a float tensor to `dtype` (the graph's).
static std::vector<uint8_t> convertFloat(const TensorRef &t, st::DType to) {
  size_t count = t.bytes.size() / st::dtypeSize(t.dtype);
  std::vector<uint8_t> out(count * st::dtypeSize(to));
  for (size_t i = 0; i < count; ++i) {
    float f = 0;
    if (t.dtype == st::DType::F16 || t.dtype == st::DType::BF16) {
      uint16_t h;
      std::memcpy(&h, t.bytes.data() + 2 * i, 2);
      f = t.dtype == st::DType::F16 ? st::halfToFloat(h) : st::bf16ToFloat(h);
    } else if (t.dtype == st::DType::F32) {
      std::memcpy(&f, t.bytes.data() + 4 * i, 4);
    }
    if (to == st::DType::F32) {
      std::memcpy(out.data() + 4 * i, &f, 4);
    } else {
      uint16_t h = to == st::DType::F16 ? st::floatToHalf(f) : st::floatToBF16(f);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

/// The [cols, rows] transpose of a row-major [rows, cols] tensor.
static std::vector<uint8_t> transpose2D(ArrayRef<uint8_t> in, int64_t rows,
                                        int64_t cols, size_t elem) {
  std::vector<uint8_t> out(in.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      std::memcpy(&out[size_t(c * rows + r) * elem],
                  &in[size_t(r * cols + c) * elem], elem);
  return out;
}

static std::optional<st::DType> archiveType(Type t) {
  if (t.isF32())
    return st::DType::F32;
  if (t.isF16())
    return st::DType::F16;
  if (t.isBF16())
    return st::DType::BF16;
  return std::nullopt;
}

template <typename T> static std::vector<uint8_t> bytesOf(const std::vector<T> &v) {
  std::vector<uint8_t> out(v.size() * sizeof(T));
  if (!v.empty())
    std::memcpy(out.data(), v.data(), out.size());
  return out;
}

using FreshTensors =
    std::map<std::string, std::pair<st::DType, std::vector<uint8_t>>>;

/// Replaces `op` (layer `name`, `full` in the graph) by a
/// wq.quantized_linear on the checkpoint's codes, adding its tensors to
/// `fresh`.
static Error replaceLayer(wq::LinearOp op, Format format,
                          const LayerConfig &cfg, StringRef name,
                          const std::string &full, TensorLookup lookup,
                          FreshTensors &fresh) {
  MLIRContext *ctx = op.getContext();
  int64_t n = op.getWeight().getType().getDimSize(0);
  int64_t k = op.getWeight().getType().getDimSize(1);
  auto layer = decodeLayer(format, cfg, name, n, k, lookup);
  if (!layer)
    return layer.takeError();
  auto scheme = wq::SchemeAttr::getChecked(
      [&]() {
        return emitError(op.getLoc())
               << "layer '" << name << "': ";
      },
      ctx, layer->bits, layer->groupSize, layer->symmetric, layer->actOrder);
  if (!scheme)
    return err("layer '" + name + "': the checkpoint's scheme (" +
               Twine(layer->bits) + "-bit, group " + Twine(layer->groupSize) +
               ") is not one #wq.scheme holds (bits 2/3/4/8, group "
               "32/64/128/256/-1)");
  OpBuilder b(op);
  auto ref = [&](const std::string &tensor, Type elem,
                 ArrayRef<int64_t> shape) -> Value {
    return wq::WeightOp::create(b, op.getLoc(),
                                RankedTensorType::get(shape, elem), tensor);
  };
  int64_t g = layer->numGroups();
  std::vector<uint32_t> codes(layer->codes.begin(), layer->codes.end());
  fresh[full + ".qweight"] = {
      st::DType::I32,
      bytesOf(quant::packBitStream(codes, k, n, layer->bits, 0))};
  Value codesV = ref(full + ".qweight", b.getI32Type(), {k * layer->bits / 32, n});
  fresh[full + ".scales"] = {st::DType::F16, bytesOf(layer->scales)};
  Value scalesV = ref(full + ".scales", b.getF16Type(), {g, n});
  Value zerosV, gIdxV, biasV = op.getBias();
  if (!layer->symmetric) {
    std::vector<uint32_t> z(layer->zeros.begin(), layer->zeros.end());
    fresh[full + ".qzeros"] = {
        st::DType::I32, bytesOf(quant::packBitStream(z, g, n, layer->bits, 1))};
    zerosV = ref(full + ".qzeros", b.getI32Type(), {g, n * layer->bits / 32});
  }
  if (layer->actOrder) {
    fresh[full + ".g_idx"] = {st::DType::I32, bytesOf(layer->gIdx)};
    gIdxV = ref(full + ".g_idx", b.getI32Type(), {k});
  }
  if (const TensorRef *bias = lookup((name + ".bias").str())) {
    Type elem = op.getType().getElementType();
    if (op.getBias())
      elem = op.getBias().getType().getElementType();
    st::DType dt = archiveType(elem).value_or(st::DType::F32);
    fresh[full + ".bias"] = {dt, convertFloat(*bias, dt)};
    biasV = ref(full + ".bias", elem, {n});
  }
  Value weight = op.getWeight(), oldBias = op.getBias();
  auto qop = wq::QuantizedLinearOp::create(
      b, op.getLoc(), op.getType(), op.getInput(), codesV, scalesV, zerosV,
      gIdxV, biasV, scheme, wq::PackingAttr::get(ctx, wq::Packing::gptq),
      op.getNameAttr());
  op.replaceAllUsesWith(qop.getResult());
  op.erase();
  // The graph's own weight and (replaced) bias: a second wq.weight of the
  // bias's name would make the module name one tensor twice.
  for (Value old : {weight, oldBias})
    if (Operation *def = old ? old.getDefiningOp() : nullptr)
      if (def->use_empty())
        def->erase();
  return Error::success();
}

/// The layers AutoAWQ's ScaledActivation feeds: its `get_act_for_scaling`
/// names the module "mlp.act" in awq/models/gpt_neox.py (before
/// dense_4h_to_h), gpt2.py and gpt_bigcode.py (c_proj), gptj.py (fc_out),
/// mpt.py (down_proj).
static constexpr StringLiteral kAfterActivation[] = {
    ".mlp.dense_4h_to_h", ".mlp.c_proj", ".mlp.fc_out", ".mlp.down_proj"};

/// Re-creates AutoAWQ's ScaledActivation (awq/modules/act.py: act(x) /
/// scales) from the checkpoint tensor `tensorName` (`<block>.mlp.act.scales`):
/// the linear after the activation reads its input divided by the scales, a
/// `<layer>.awq_scales` wq.weight as the AWQ pass writes it
/// (wq::buildActivationScale, shared with wq-awq), so the
/// import is the module quant-compile --method awq gives.
static Error insertActivationScales(ModuleOp module, StringRef prefix,
                                    StringRef tensorName, const TensorRef &t,
                                    FreshTensors &fresh) {
  StringRef block = tensorName.drop_back(strlen(".mlp.act.scales"));
  Operation *consumer = nullptr;
  std::string layer;
  module.walk([&](Operation *op) {
    if (!isa<wq::LinearOp, wq::QuantizedLinearOp>(op))
      return WalkResult::advance();
    auto name = op->getAttrOfType<StringAttr>("name");
    if (!name)
      return WalkResult::advance();
    std::string hf = stripPrefix(name.getValue(), prefix);
    for (StringRef after : kAfterActivation)
      if (hf == (block + after).str()) {
        consumer = op;
        layer = name.getValue().str();
        return WalkResult::interrupt();
      }
    return WalkResult::advance();
  });
  if (!consumer)
    return err("checkpoint tensor '" + tensorName +
               "' (AutoAWQ's ScaledActivation) scales the activation before "
               "a layer the graph does not have (none of '" + block +
               ".mlp.dense_4h_to_h', '.mlp.c_proj', '.mlp.fc_out', "
               "'.mlp.down_proj')");
  Value input = consumer->getOperand(0);
  auto type = cast<RankedTensorType>(input.getType());
  int64_t k = type.getShape().back();
  if (t.shape.size() != 1 || t.shape[0] != k)
    return err("checkpoint tensor '" + tensorName + "' has " +
               Twine(t.shape.size() == 1 ? t.shape[0] : -1) +
               " scales as a vector, but '" + stripPrefix(layer, prefix) +
               "' reads " + Twine(k) + " channels");
  if (t.dtype != st::DType::F16 && t.dtype != st::DType::F32 &&
      t.dtype != st::DType::BF16)
    return err("checkpoint tensor '" + tensorName + "' is " +
               st::dtypeName(t.dtype) + ", not a float tensor");
  Type elem = type.getElementType();
  std::optional<st::DType> dt = archiveType(elem);
  if (!dt)
    return err("layer '" + stripPrefix(layer, prefix) +
               "' reads a non-float input; '" + tensorName +
               "' cannot scale it");
  std::string scaleName = layer + ".awq_scales";
  fresh[scaleName] = {*dt, convertFloat(t, *dt)};

  OpBuilder b(consumer);
  consumer->setOperand(
      0, wq::buildActivationScale(b, consumer->getLoc(), input, scaleName));
  return Error::success();
}

Expected<std::unique_ptr<CheckpointArchive>>
importCheckpoint(ModuleOp module, const st::Writer &graphArchive,
                 StringRef stageDir, StringRef checkpointDir, raw_ostream &log) {
  auto config = readConfig(checkpointDir);
  if (!config)
    return config.takeError();
  std::unique_ptr<CheckpointArchive> result(new CheckpointArchive());
  std::map<std::string, TensorRef> ckpt;
  if (Error e = openWeights(checkpointDir, result->shards, ckpt))
    return std::move(e);
  auto lookup = [&](StringRef name) -> const TensorRef * {
    auto it = ckpt.find(name.str());
    return it == ckpt.end() ? nullptr : &it->second;
  };

  // The graph's tensors, read back from a staged copy (unlinked at once: the
  // mapping outlives the name).
  SmallString<256> stage(stageDir);
  sys::path::append(stage, ".graph.safetensors.tmp-" +
                               Twine(sys::Process::getProcessId()));
  sys::RemoveFileOnSignal(stage);
  Error written = graphArchive.write(stage);
  if (written) {
    sys::DontRemoveFileOnSignal(stage);
    return std::move(written);
  }
  auto graph = st::Reader::open(stage);
  fs::remove(stage);
  sys::DontRemoveFileOnSignal(stage);
  if (!graph)
    return graph.takeError();
  result->graph = std::move(*graph);

  std::string prefix = findNamePrefix(module);
  FreshTensors fresh;
  std::set<std::string> usedCkpt;
  int64_t quantized = 0;
  std::optional<Error> failure;
  SmallVector<wq::LinearOp> linears;
  module.walk([&](wq::LinearOp op) { linears.push_back(op); });
  std::string marker = config->format == Format::CompressedTensors
                           ? ".weight_packed"
                           : ".qweight";
  for (wq::LinearOp op : linears) {
    std::string full = op.getName().value_or("").str();
    std::string name = stripPrefix(full, prefix);
    std::optional<LayerConfig> cfg = config->lookup(name);
    bool has = lookup(name + marker);
    if (!has)
      continue; // float in the checkpoint too: its weight is handled below
    if (!cfg)
      return err("checkpoint tensor '" + name + marker +
                 "' is for a layer its config leaves in float");
    if (Error e = replaceLayer(op, config->format, *cfg, name, full, lookup,
                               fresh))
      return std::move(e);
    for (StringRef sfx : {".qweight", ".qzeros", ".scales", ".g_idx", ".bias",
                          ".weight_packed", ".weight_scale",
                          ".weight_zero_point", ".weight_shape",
                          ".weight_g_idx"})
      usedCkpt.insert(name + sfx.str());
    ++quantized;
  }
  if (failure)
    return std::move(*failure);
  int64_t activationScales = 0;
  for (auto &[tname, t] : ckpt) {
    StringRef n(tname);
    if (n.ends_with(".mlp.act.scales")) {
      if (Error e = insertActivationScales(module, prefix, n, t, fresh))
        return std::move(e);
      ++activationScales;
      continue;
    }
    if (n.ends_with(".act.scales"))
      return err("checkpoint tensor '" + tname +
                 "' (AutoAWQ's ScaledActivation) is not read: only "
                 "'<block>.mlp.act.scales' before the MLP's output layer");
    if ((n.ends_with(".qweight") || n.ends_with(".weight_packed")) &&
        !usedCkpt.count(tname))
      return err("checkpoint tensor '" + tname +
                 "' matches no linear layer of the graph");
  }
  if (quantized == 0)
    return err("the checkpoint in '" + checkpointDir +
               "' quantizes none of the graph's " + Twine(linears.size()) +
               " linear layers (no '<layer>" + marker + "' tensor)");

  // The graph's float weights, replaced by the checkpoint's where it has them.
  int64_t replaced = 0;
  std::string embedding = embeddingName(module, prefix);
  std::map<std::string, SmallVector<int64_t>> referenced; // name -> shape
  WalkResult walk = module.walk([&](wq::WeightOp w) {
    std::string full = w.getName().str();
    referenced[full].assign(w.getType().getShape().begin(),
                            w.getType().getShape().end());
    if (fresh.count(full))
      return WalkResult::advance();
    std::string hfName = stripPrefix(full, prefix);
    StringRef module(hfName);
    bool isWeight = module.consume_back(".weight");
    const TensorRef *t = lookup(hfName);
    // A tied head is stored once, as the embedding (save_pretrained drops
    // the tied copy); the graph may hold its own copy.
    if (!t && isWeight && isHeadLayer(module) && !embedding.empty())
      t = lookup(embedding);
    std::optional<st::DType> dt = archiveType(w.getType().getElementType());
    if (!t || !dt)
      return WalkResult::advance();
    ArrayRef<int64_t> shape = w.getType().getShape();
    // GPT-2's Conv1D weights are stored [in, out], the graph's [out, in].
    bool transposed = isWeight && isConv1D(module) && shape.size() == 2 &&
                      t->shape.size() == 2 && shape[0] != shape[1] &&
                      t->shape[0] == shape[1] && t->shape[1] == shape[0];
    if (t->dtype != st::DType::F16 && t->dtype != st::DType::F32 &&
        t->dtype != st::DType::BF16) {
      failure = err("checkpoint tensor '" + stripPrefix(full, prefix) +
                    "' is " + st::dtypeName(t->dtype) +
                    ", but the graph uses it as a float weight");
      return WalkResult::interrupt();
    }
    if (!transposed && ArrayRef<int64_t>(t->shape) != shape) {
      std::string got, want;
      for (int64_t d : t->shape)
        got += (got.empty() ? "" : ", ") + std::to_string(d);
      for (int64_t d : w.getType().getShape())
        want += (want.empty() ? "" : ", ") + std::to_string(d);
      failure = err("checkpoint tensor '" + stripPrefix(full, prefix) +
                    "' has shape [" + got + "], but the graph's is [" + want +
                    "]");
      return WalkResult::interrupt();
    }
    std::vector<uint8_t> bytes = convertFloat(*t, *dt);
    if (transposed || (isWeight && isConv1D(module) && shape.size() == 2 &&
                       shape[0] == shape[1]))
      bytes = transpose2D(bytes, t->shape[0], t->shape[1], st::dtypeSize(*dt));
    fresh[full] = {*dt, std::move(bytes)};
    ++replaced;
    return WalkResult::advance();
  });
  if (walk.wasInterrupted() && failure)
    return std::move(*failure);

  for (const st::TensorInfo &t : result->graph->tensors()) {
    if (!referenced.count(t.name) || fresh.count(t.name))
      continue;
    if (Error e = result->writer.add(t.name, t.dtype, t.shape,
                                     result->graph->bytes(t)))
      return std::move(e);
  }
  for (auto &[name, entry] : fresh) {
    if (Error e = result->writer.addOwned(name, entry.first, referenced[name],
                                          std::move(entry.second)))
      return std::move(e);
  }
  log << "quant-import: checkpoint " << formatName(config->format) << ": "
      << quantized << " layers quantized, " << replaced
      << " float tensors taken from it";
  if (activationScales)
    log << ", " << activationScales << " AWQ activation scales (mlp.act)";
  log << "\n";
  return std::move(result);
}

} // namespace quant_mlir::hf
