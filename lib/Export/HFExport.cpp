//===- HFExport.cpp - quantized model to a Hugging Face directory ---------===//
// Reads each wq.quantized_linear's codes/scales/zeros back from the archive
// (whatever its packing), writes them in the requested format with every
// other weight in float16 under its Hugging Face name, plus config.json,
// generation_config.json, quantize_config.json and the tokenizer, into a
// temporary directory renamed into place at the end.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Export/HFExport.h"
#include "ModelInfo.h"
#include "QuantizationConfig.h"
#include "Support.h"

#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"
#include "quant-mlir/InitAllDialects.h"
#include "quant-mlir/Quant/Packing.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Parser/Parser.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Signals.h"
#include "llvm/Support/SourceMgr.h"

#include <cstring>
#include <map>

using namespace llvm;
using namespace mlir;
namespace fs = llvm::sys::fs;
namespace st = quant_mlir::safetensors;
namespace json = llvm::json;

namespace quant_mlir::hf {

static Error err(const Twine &msg) { return makeError(msg); }

Expected<uint64_t> parseShardSize(StringRef text) {
  StringRef t = text.trim();
  uint64_t unit = 1;
  for (auto [suffix, mult] :
       {std::pair<StringRef, uint64_t>{"GiB", 1ull << 30}, {"MiB", 1ull << 20},
        {"KiB", 1ull << 10}, {"GB", 1000000000ull}, {"MB", 1000000ull},
        {"KB", 1000ull}, {"B", 1ull}})
    if (t.consume_back(suffix)) {
      unit = mult;
      break;
    }
  uint64_t n;
  if (t.trim().getAsInteger(10, n) || n == 0)
    return err("bad --max-shard-size '" + text +
               "' (expected e.g. 5GB, 500MB, 2GiB or a byte count)");
  return n * unit;
}

//===----------------------------------------------------------------------===//
// Reading layers back from the archive
//===----------------------------------------------------------------------===//

namespace {
template <typename T> std::vector<T> copyAs(ArrayRef<uint8_t> bytes) {
  std::vector<T> out(bytes.size() / sizeof(T));
  if (!out.empty())
    std::memcpy(out.data(), bytes.data(), out.size() * sizeof(T));
  return out;
}
} // namespace

/// Float archive tensor as IEEE half bits; counts values f16 cannot hold
/// exactly.
static std::vector<uint16_t> toHalf(const st::Reader &reader,
                                    const st::TensorInfo &info,
                                    int64_t *inexact) {
  std::vector<uint16_t> out(size_t(info.numElements()));
  ArrayRef<uint8_t> raw = reader.bytes(info);
  for (size_t i = 0; i < out.size(); ++i) {
    float f;
    switch (info.dtype) {
    case st::DType::F16:
      std::memcpy(&out[i], raw.data() + 2 * i, 2);
      continue;
    case st::DType::BF16: {
      uint16_t b;
      std::memcpy(&b, raw.data() + 2 * i, 2);
      f = st::bf16ToFloat(b);
      break;
    }
    case st::DType::F64: {
      double d;
      std::memcpy(&d, raw.data() + 8 * i, 8);
      f = float(d);
      break;
    }
    default:
      std::memcpy(&f, raw.data() + 4 * i, 4);
    }
    out[i] = st::floatToHalf(f);
    if (inexact && st::halfToFloat(out[i]) != f && !std::isnan(f))
      ++*inexact;
  }
  return out;
}

/// The checkpoint name of the AWQ pass's activation scales `name`
/// (`<layer>.awq_scales`: the layer reads act(x) / s, AutoAWQ's
/// ScaledActivation). AutoAWQ saves that module as `<block>.mlp.act` for
/// GPT-NeoX and GPT-2 (awq/models/gpt_neox.py, gpt2.py get_act_for_scaling);
/// vLLM's AWQ loader wraps those MLPs' activation in ScaledActivation
/// (get_act_fn with the quant config), transformers' only for gpt_neox
/// (integrations/awq.py AWQ_SCALES_MAPPINGS). Other formats and layers
/// cannot hold it.
static Expected<std::string> activationScaleName(Format format,
                                                 StringRef name) {
  StringRef layer = name.drop_back(strlen(".awq_scales"));
  StringRef block = layer;
  if (format == Format::AWQ &&
      ((block.consume_back(".mlp.dense_4h_to_h") &&
        block.starts_with("gpt_neox.layers.")) ||
       (block.consume_back(".mlp.c_proj") &&
        block.starts_with("transformer.h."))))
    return (block + ".mlp.act.scales").str();
  return err("layer '" + layer +
             "' reads its input divided by AWQ activation scales ('" + name +
             "', AutoAWQ's ScaledActivation), which " + formatName(format) +
             " checkpoints cannot hold (AutoAWQ and vLLM keep them only in "
             "AWQ checkpoints, as GPT-NeoX's and GPT-2's mlp.act.scales); "
             "export with --format awq, or compile with --method gptq");
}

/// Whether two archive tensors hold the same values (an lm_head exported as
/// its own copy of the tied embedding).
static bool sameTensor(const st::Reader &reader, const st::TensorInfo *a,
                       const st::TensorInfo *b) {
  if (!a || !b || a->dtype != b->dtype || a->shape != b->shape)
    return false;
  ArrayRef<uint8_t> x = reader.bytes(*a), y = reader.bytes(*b);
  return x.size() == y.size() &&
         (x.empty() || std::memcmp(x.data(), y.data(), x.size()) == 0);
}

static bool isFloat(st::DType d) {
  return d == st::DType::F32 || d == st::DType::F16 || d == st::DType::BF16 ||
         d == st::DType::F64;
}

/// The gptq words of a #wq.packing<gpu_v4> buffer (docs/codegen.md, the
/// layout described at WQ_PackingAttr): element [r, 4n + j] is gptq word
/// 4r + j of column n, its fields for 2/4/8 bits interleaved so that code c
/// sits in field (c % 2) * (16 / bits) + c / 2.
static std::vector<int32_t> gpuV4ToGPTQWords(ArrayRef<int32_t> v4,
                                             unsigned bits, int64_t k,
                                             int64_t n) {
  int64_t words = k * bits / 32;
  std::vector<int32_t> out(size_t(words * n));
  uint32_t mask = (1u << bits) - 1;
  for (int64_t r = 0; r < words / 4; ++r)
    for (int64_t col = 0; col < n; ++col)
      for (int64_t j = 0; j < 4; ++j) {
        uint32_t w = uint32_t(v4[size_t(r * 4 * n + 4 * col + j)]);
        uint32_t plain = w;
        if (bits != 3) {
          plain = 0;
          for (unsigned c = 0; c < 32 / bits; ++c) {
            unsigned field = (c % 2) * (16 / bits) + c / 2;
            plain |= ((w >> (bits * field)) & mask) << (bits * c);
          }
        }
        out[size_t((4 * r + j) * n + col)] = int32_t(plain);
      }
  return out;
}

/// The tensor a wq.weight operand names.
static Expected<const st::TensorInfo *>
operandTensor(const st::Reader &reader, Value v, StringRef layer,
              StringRef role) {
  auto w = v.getDefiningOp<wq::WeightOp>();
  if (!w)
    return err("layer '" + layer + "': its " + role +
               " is not a wq.weight the exporter can read");
  const st::TensorInfo *info = reader.lookup(w.getName());
  if (!info)
    return err("layer '" + layer + "': archive '" + reader.path() +
               "' has no tensor '" + w.getName() + "'");
  return info;
}

/// One wq.quantized_linear, unpacked.
static Expected<QuantLayer> readLayer(wq::QuantizedLinearOp op,
                                      const st::Reader &reader,
                                      StringRef prefix, int64_t *inexact) {
  QuantLayer l;
  std::string full = op.getName().value_or("").str();
  l.name = stripPrefix(full, prefix);
  wq::SchemeAttr scheme = op.getScheme();
  l.bits = scheme.getBits();
  l.groupSize = scheme.getGroupSize();
  l.symmetric = scheme.getSymmetric();
  l.actOrder = scheme.getActOrder();
  l.k = op.getInput().getType().getShape().back();
  l.n = op.getType().getShape().back();
  int64_t g = l.numGroups();

  auto codes = operandTensor(reader, op.getCodes(), full, "codes");
  if (!codes)
    return codes.takeError();
  std::vector<int32_t> words = copyAs<int32_t>(reader.bytes(**codes));
  switch (op.getPacking()) {
  case wq::Packing::gptq:
    l.codes = quant::unpackCodesGPTQ(words, l.k, l.n, l.bits);
    break;
  case wq::Packing::gpu_v4:
    l.codes = quant::unpackCodesGPTQ(gpuV4ToGPTQWords(words, l.bits, l.k, l.n),
                                     l.k, l.n, l.bits);
    break;
  case wq::Packing::awq: {
    // [K, N/8], columns 0,2,4,6,1,3,5,7 of each 8 in nibbles 0..7.
    static constexpr int order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
    l.codes.resize(size_t(l.k * l.n));
    for (int64_t r = 0; r < l.k; ++r)
      for (int64_t w = 0; w < l.n / 8; ++w)
        for (int i = 0; i < 8; ++i)
          l.codes[size_t(r * l.n + w * 8 + order[i])] =
              uint8_t((uint32_t(words[size_t(r * (l.n / 8) + w)]) >> (4 * i)) & 0xF);
    break;
  }
  }
  auto scales = operandTensor(reader, op.getScales(), full, "scales");
  if (!scales)
    return scales.takeError();
  l.scales = toHalf(reader, **scales, inexact);
  if (op.getZeros()) {
    auto zeros = operandTensor(reader, op.getZeros(), full, "zeros");
    if (!zeros)
      return zeros.takeError();
    std::vector<int32_t> zw = copyAs<int32_t>(reader.bytes(**zeros));
    if (op.getPacking() == wq::Packing::awq) {
      static constexpr int order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
      l.zeros.resize(size_t(g * l.n));
      for (int64_t r = 0; r < g; ++r)
        for (int64_t w = 0; w < l.n / 8; ++w)
          for (int i = 0; i < 8; ++i)
            l.zeros[size_t(r * l.n + w * 8 + order[i])] =
                int32_t((uint32_t(zw[size_t(r * (l.n / 8) + w)]) >> (4 * i)) & 0xF);
    } else {
      l.zeros = quant::unpackZerosGPTQ(zw, g, l.n, l.bits);
    }
  } else {
    l.zeros.assign(size_t(g * l.n), int32_t(1) << (l.bits - 1));
  }
  if (op.getGIdx()) {
    auto gi = operandTensor(reader, op.getGIdx(), full, "g_idx");
    if (!gi)
      return gi.takeError();
    l.gIdx = copyAs<int32_t>(reader.bytes(**gi));
  }
  if (op.getBias()) {
    auto b = operandTensor(reader, op.getBias(), full, "bias");
    if (!b)
      return b.takeError();
    l.bias = toHalf(reader, **b, nullptr);
  }
  return l;
}

//===----------------------------------------------------------------------===//
// The directory
//===----------------------------------------------------------------------===//

namespace {
/// A directory built beside its destination and renamed into place.
class StagedDir {
public:
  static Expected<StagedDir> create(StringRef dest, bool force) {
    StagedDir d;
    d.dest = dest.str();
    fs::make_absolute(d.dest);
    if (fs::exists(d.dest) && !force)
      return err("'" + dest + "' exists; pass --force to replace it");
    SmallString<256> pattern(sys::path::parent_path(d.dest));
    if (pattern.empty())
      pattern = ".";
    sys::path::append(pattern,
                      "." + sys::path::filename(d.dest) + ".tmp-%%%%%%");
    std::error_code ec;
    for (int attempt = 0; attempt < 16; ++attempt) {
      if ((ec = fs::getPotentiallyUniqueFileName(pattern, d.work)))
        break;
      if (!(ec = fs::create_directory(d.work, /*IgnoreExisting=*/false)))
        break;
    }
    if (ec)
      return err("cannot create a temporary directory beside '" + dest +
                 "': " + ec.message());
    sys::RemoveFileOnSignal(d.work);
    d.live = true;
    return std::move(d);
  }
  StagedDir() = default;
  StagedDir(StagedDir &&o) { *this = std::move(o); }
  StagedDir &operator=(StagedDir &&o) {
    dest = o.dest;
    work = o.work;
    live = o.live;
    o.live = false;
    return *this;
  }
  ~StagedDir() {
    if (live) {
      fs::remove_directories(work);
      sys::DontRemoveFileOnSignal(work);
    }
  }
  std::string path(StringRef file) const {
    SmallString<256> p(work);
    sys::path::append(p, file);
    return p.str().str();
  }
  Error commit() {
    SmallString<256> old;
    if (fs::exists(dest)) {
      old = work;
      old += ".old";
      if (std::error_code ec = fs::rename(dest, old))
        return err("cannot move the old '" + dest + "' aside: " + ec.message());
    }
    if (std::error_code ec = fs::rename(work, dest)) {
      if (!old.empty())
        (void)fs::rename(old, dest);
      return err("cannot rename into '" + dest + "': " + ec.message());
    }
    sys::DontRemoveFileOnSignal(work);
    live = false;
    if (!old.empty())
      fs::remove_directories(old);
    return Error::success();
  }

private:
  SmallString<256> dest, work;
  bool live = false;
};
} // namespace

static Error writeText(StringRef path, StringRef text) {
  return writeToOutput(path, [&](raw_ostream &os) {
    os << text;
    return Error::success();
  });
}

static Error writeJSON(StringRef path, json::Value value) {
  return writeText(path, formatv("{0:2}", value).str() + "\n");
}

/// Copies the tokenizer file(s) and writes tokenizer_config.json for a bare
/// sentencepiece model.
static Error copyTokenizer(StringRef from, const StagedDir &dir,
                           raw_ostream &log) {
  auto copy = [&](StringRef src) -> Error {
    std::string name = sys::path::filename(src).str();
    if (std::error_code ec = fs::copy_file(src, dir.path(name)))
      return err("cannot copy tokenizer file '" + src + "': " + ec.message());
    return Error::success();
  };
  if (fs::is_directory(from)) {
    std::error_code ec;
    int copied = 0;
    for (fs::directory_iterator it(from, ec), end; it != end && !ec;
         it.increment(ec)) {
      StringRef name = sys::path::filename(it->path());
      if (name.starts_with("tokenizer") || name == "special_tokens_map.json" ||
          name == "vocab.json" || name == "merges.txt" ||
          name == "added_tokens.json") {
        if (Error e = copy(it->path()))
          return e;
        ++copied;
      }
    }
    if (ec || copied == 0)
      return err("'" + from + "' holds no tokenizer files (tokenizer.json, "
                              "tokenizer.model, tokenizer_config.json, ...)");
    return Error::success();
  }
  if (!fs::exists(from))
    return err("tokenizer '" + from + "' does not exist");
  StringRef name = sys::path::filename(from);
  if (name.ends_with(".model")) {
    // transformers' LlamaTokenizer reads tokenizer.model (sentencepiece).
    if (std::error_code ec = fs::copy_file(from, dir.path("tokenizer.model")))
      return err("cannot copy tokenizer '" + from + "': " + ec.message());
    return writeJSON(dir.path("tokenizer_config.json"),
                     json::Object{{"tokenizer_class", "LlamaTokenizer"},
                                  {"bos_token", "<s>"},
                                  {"eos_token", "</s>"},
                                  {"unk_token", "<unk>"},
                                  {"add_bos_token", true},
                                  {"add_eos_token", false},
                                  {"legacy", true}});
  }
  if (!name.ends_with(".json"))
    log << "quant-export: warning: '" << name
        << "' is copied as is; transformers reads tokenizer.json or a "
           "sentencepiece tokenizer.model\n";
  return copy(from);
}

/// Writes `tensors` as model.safetensors or as shards of at most
/// `maxBytes` with model.safetensors.index.json.
static Error writeWeights(std::vector<OutTensor> &tensors, uint64_t maxBytes,
                          const StagedDir &dir, raw_ostream &log) {
  llvm::sort(tensors, [](const OutTensor &a, const OutTensor &b) {
    return a.name < b.name;
  });
  std::vector<std::vector<size_t>> shards(1);
  uint64_t current = 0, total = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    uint64_t size = tensors[i].bytes.size();
    if (current > 0 && current + size > maxBytes) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(i);
    current += size;
    total += size;
  }
  json::Object weightMap;
  for (size_t s = 0; s < shards.size(); ++s) {
    std::string file =
        shards.size() == 1
            ? "model.safetensors"
            : formatv("model-{0:5}-of-{1:5}.safetensors", s + 1, shards.size())
                  .str();
    std::replace(file.begin(), file.end(), ' ', '0');
    st::Writer writer;
    writer.setMetadata("format", "pt");
    for (size_t i : shards[s]) {
      OutTensor &t = tensors[i];
      if (Error e = writer.addOwned(t.name, t.dtype, t.shape, std::move(t.bytes)))
        return e;
      weightMap[t.name] = file;
    }
    if (Error e = writer.write(dir.path(file)))
      return e;
  }
  if (shards.size() > 1) {
    log << "quant-export: " << shards.size() << " shards of at most "
        << maxBytes << " bytes\n";
    return writeJSON(dir.path("model.safetensors.index.json"),
                     json::Object{{"metadata",
                                   json::Object{{"total_size", int64_t(total)}}},
                                  {"weight_map", std::move(weightMap)}});
  }
  return Error::success();
}

/// Checks the user's config.json against what the graph holds.
static Error checkUserConfig(const json::Object &user,
                             const json::Object &derived, StringRef path) {
  for (StringRef key : {"hidden_size", "vocab_size", "num_hidden_layers",
                        "intermediate_size"}) {
    auto u = user.getInteger(key), d = derived.getInteger(key);
    if (u && d && *u != *d)
      return err("--hf-config '" + path + "' says " + key + " = " + Twine(*u) +
                 ", but the model has " + Twine(*d));
  }
  return Error::success();
}

/// config.json: the user's (--hf-config, checked against the graph) or the
/// one derived from the IR, with the model's tie_word_embeddings.
static Expected<json::Object> buildConfig(ModuleOp module, StringRef prefix,
                                          const ExportOptions &opt, bool tied,
                                          raw_ostream &log) {
  json::Object config;
  auto derived = deriveConfig(module, prefix);
  if (!opt.hfConfig.empty()) {
    auto user = readJSONObject(opt.hfConfig);
    if (!user)
      return user.takeError();
    if (derived) {
      if (Error e = checkUserConfig(*user, *derived, opt.hfConfig))
        return e;
    } else {
      consumeError(derived.takeError());
    }
    config = std::move(*user);
    config["torch_dtype"] = "float16";
  } else {
    if (!derived)
      return derived.takeError();
    config = std::move(*derived);
  }
  if (config.getBoolean("tie_word_embeddings").value_or(false) != tied &&
      !opt.hfConfig.empty())
    log << "quant-export: warning: --hf-config says tie_word_embeddings = "
        << (tied ? "false" : "true") << " but lm_head "
        << (tied ? "is" : "is not") << " the embedding; using the model's\n";
  config["tie_word_embeddings"] = tied;
  return std::move(config);
}

Error exportModule(ModuleOp module, StringRef archivePath, StringRef outDir,
                   const ExportOptions &opt, raw_ostream &log) {
  auto reader = st::Reader::open(archivePath);
  if (!reader)
    return reader.takeError();
  std::string prefix = findNamePrefix(module);

  // The layers and the float weights they use.
  std::vector<QuantLayer> layers;
  std::vector<OutTensor> tensors;
  std::vector<std::string> floatLinears;
  llvm::DenseSet<Operation *> consumed;
  int64_t inexactScales = 0, inexactFloats = 0;
  std::optional<Error> failure;
  auto addHalf = [&](const std::string &name, const st::TensorInfo &info) {
    std::vector<uint16_t> h = toHalf(**reader, info, &inexactFloats);
    std::vector<uint8_t> bytes(h.size() * 2);
    if (!h.empty())
      std::memcpy(bytes.data(), h.data(), bytes.size());
    tensors.push_back({name, st::DType::F16, SmallVector<int64_t>(info.shape),
                       std::move(bytes)});
  };
  // GPT-2's Conv1D keeps [in, out]; the graph's weight is [out, in].
  auto addHalfTransposed = [&](const std::string &name,
                               const st::TensorInfo &info) {
    addHalf(name, info);
    OutTensor &t = tensors.back();
    int64_t rows = t.shape[0], cols = t.shape[1];
    std::vector<uint8_t> bytes(t.bytes.size());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        std::memcpy(&bytes[size_t(2 * (c * rows + r))],
                    &t.bytes[size_t(2 * (r * cols + c))], 2);
    t.bytes = std::move(bytes);
    t.shape = {cols, rows};
  };
  std::string embedName = prefix + embeddingName(module, prefix);
  const st::TensorInfo *embedInfo = (*reader)->lookup(embedName);
  bool tied = false;
  module.walk([&](Operation *op) {
    if (failure)
      return WalkResult::interrupt();
    if (auto q = dyn_cast<wq::QuantizedLinearOp>(op)) {
      auto l = readLayer(q, **reader, prefix, &inexactScales);
      if (!l) {
        failure = l.takeError();
        return WalkResult::interrupt();
      }
      for (Value v : q->getOperands().drop_front())
        if (Operation *def = v.getDefiningOp())
          consumed.insert(def);
      layers.push_back(std::move(*l));
      return WalkResult::advance();
    }
    auto lin = dyn_cast<wq::LinearOp>(op);
    if (!lin)
      return WalkResult::advance();
    std::string name = stripPrefix(lin.getName().value_or(""), prefix);
    if (lin.getScheme()) {
      failure = err("layer '" + name +
                    "' is fake-quantized (float weights, its codes are not "
                    "in the archive): export a model compiled without "
                    "--fake-quant");
      return WalkResult::interrupt();
    }
    floatLinears.push_back(name);
    auto w = lin.getWeight().getDefiningOp<wq::WeightOp>();
    if (!w) {
      failure = err("layer '" + name + "': its weight is not a wq.weight");
      return WalkResult::interrupt();
    }
    const st::TensorInfo *info = (*reader)->lookup(w.getName());
    if (isHeadLayer(name) &&
        (w.getName() == embedName || sameTensor(**reader, info, embedInfo))) {
      tied = true; // written once, as the embedding
      if (w.getName() != embedName)
        consumed.insert(w); // the head's own copy
    } else {
      consumed.insert(w);
      if (info && isConv1D(name))
        addHalfTransposed(name + ".weight", *info);
      else if (info)
        addHalf(name + ".weight", *info);
    }
    if (lin.getBias())
      if (auto b = lin.getBias().getDefiningOp<wq::WeightOp>()) {
        consumed.insert(b);
        if (const st::TensorInfo *info = (*reader)->lookup(b.getName()))
          addHalf(name + ".bias", *info);
      }
    return WalkResult::advance();
  });
  if (failure)
    return std::move(*failure);
  if (layers.empty())
    return err("the model has no wq.quantized_linear layer to export (quantize "
               "it with quant-compile --method rtn|gptq first)");

  // Every other weight (embeddings, norms) under its own name.
  std::set<std::string> written;
  for (const OutTensor &t : tensors)
    written.insert(t.name);
  for (auto &[name, op] : normWeights(module, prefix)) {
    auto w = cast<wq::WeightOp>(op);
    consumed.insert(op);
    if (const st::TensorInfo *info = (*reader)->lookup(w.getName()))
      if (written.insert(name).second)
        addHalf(name, *info);
  }
  module.walk([&](wq::WeightOp w) {
    if (consumed.contains(w) || failure)
      return;
    std::string name = stripPrefix(w.getName(), prefix);
    if (StringRef(name).ends_with(".awq_scales")) {
      auto hfName = activationScaleName(opt.format, name);
      if (!hfName) {
        failure = hfName.takeError();
        return;
      }
      name = *hfName;
    }
    const st::TensorInfo *info = (*reader)->lookup(w.getName());
    if (!info || !written.insert(name).second)
      return;
    if (isFloat(info->dtype)) {
      addHalf(name, *info);
    } else {
      ArrayRef<uint8_t> b = (*reader)->bytes(*info);
      tensors.push_back({name, info->dtype, SmallVector<int64_t>(info->shape),
                         std::vector<uint8_t>(b.begin(), b.end())});
    }
  });

  if (failure)
    return std::move(*failure);

  // The layers in the format, refusing what it cannot hold.
  std::map<std::string, std::pair<int, std::string>> kernels;
  for (const QuantLayer &l : layers) {
    std::string why = checkFormat(opt.format, l);
    if (!why.empty())
      return err(why);
    for (OutTensor &t : encodeLayer(opt.format, l))
      tensors.push_back(std::move(t));
    auto &entry = kernels[vllmKernel(opt.format, l)];
    if (entry.first++ == 0)
      entry.second = l.name;
  }

  auto qcfg = quantizationConfig(opt, layers, floatLinears);
  if (!qcfg)
    return qcfg.takeError();
  auto config = buildConfig(module, prefix, opt, tied, log);
  if (!config)
    return config.takeError();
  (*config)["quantization_config"] = json::Object(*qcfg);

  auto dir = StagedDir::create(outDir, opt.force);
  if (!dir)
    return dir.takeError();
  if (Error e = writeWeights(tensors, opt.maxShardBytes, *dir, log))
    return e;
  json::Object gen{{"_from_model_config", true}};
  for (StringRef key : {"bos_token_id", "eos_token_id", "pad_token_id"})
    if (const json::Value *v = config->get(key))
      gen[key] = *v;
  gen["transformers_version"] = "4.40.2";
  if (Error e = writeJSON(dir->path("config.json"), json::Object(*config)))
    return e;
  if (Error e = writeJSON(dir->path("generation_config.json"), std::move(gen)))
    return e;
  if (opt.format == Format::GPTQ || opt.format == Format::GPTQv2)
    if (Error e = writeJSON(dir->path("quantize_config.json"), std::move(*qcfg)))
      return e;
  if (!opt.tokenizer.empty())
    if (Error e = copyTokenizer(opt.tokenizer, *dir, log))
      return e;
  if (Error e = dir->commit())
    return e;

  if (inexactScales)
    log << "quant-export: warning: " << inexactScales
        << " scales are not exact in float16 and were rounded (compile with "
           "--scale-dtype f16 for a lossless export)\n";
  if (inexactFloats)
    log << "quant-export: note: " << inexactFloats
        << " unquantized weight values were rounded to float16\n";
  log << "quant-export: " << layers.size() << " quantized layers as "
      << formatName(opt.format) << ", " << floatLinears.size()
      << " float linear layer(s), " << tensors.size() << " tensors\n";
  for (auto &[kernel, entry] : kernels)
    log << "quant-export: vLLM kernel for " << entry.first << " layer(s) (e.g. "
        << entry.second << "): " << kernel << "\n";
  return Error::success();
}

Error exportModelDir(StringRef modelDir, StringRef outDir,
                     const ExportOptions &opt, raw_ostream &log) {
  DialectRegistry registry;
  quant_mlir::registerAllDialects(registry);
  MLIRContext context(registry);
  context.loadAllAvailableDialects();
  SmallString<256> mlirPath(modelDir);
  sys::path::append(mlirPath, "model.mlir");
  if (!fs::exists(mlirPath))
    return err("'" + modelDir + "' has no model.mlir (expected a quant-compile "
                                "output directory)");
  std::string diag;
  raw_string_ostream diagOS(diag);
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler handler(sourceMgr, &context, diagOS);
  OwningOpRef<ModuleOp> module =
      parseSourceFile<ModuleOp>(mlirPath, sourceMgr, &context);
  if (!module)
    return err("cannot load '" + mlirPath + "': " + diag);
  auto archive = (*module)->getAttrOfType<StringAttr>("wq.archive");
  if (!archive)
    return err("'" + mlirPath + "' has no wq.archive attribute");
  SmallString<256> archivePath(modelDir);
  sys::path::append(archivePath, archive.getValue());
  return exportModule(*module, archivePath, outDir, opt, log);
}

} // namespace quant_mlir::hf
