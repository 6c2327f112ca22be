//===- Facade.cpp - the driver API in standard C++ types --------------------===//
// Compiled without RTTI and exceptions like the rest of the project; maps
// Facade.h onto lib/Driver, llvm::Error onto message strings, and the
// facade's quantizer callbacks onto quant::registerCustomQuantizer.
//===----------------------------------------------------------------------===//

#include "Facade.h"

#include "quant-mlir/Data/TokenData.h"
#include "quant-mlir/Driver/Compile.h"
#include "quant-mlir/Driver/Model.h"
#include "quant-mlir/Quant/CustomQuantizer.h"
#include "quant-mlir/Support/Progress.h"
#include "quant-mlir/Support/SafeTensors.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/raw_ostream.h"

using namespace quant_mlir;
using namespace quant_mlir::python;

namespace {
/// A raw_ostream that hands each complete line to a LineSink.
class LineStream : public llvm::raw_ostream {
public:
  explicit LineStream(const LineSink &sink) : sink(sink) { SetUnbuffered(); }
  ~LineStream() override {
    if (!pending.empty() && sink)
      sink(pending);
  }

private:
  void write_impl(const char *ptr, size_t size) override {
    pos += size;
    for (size_t i = 0; i < size; ++i) {
      if (ptr[i] != '\n') {
        pending.push_back(ptr[i]);
        continue;
      }
      if (sink)
        sink(pending);
      pending.clear();
    }
  }
  uint64_t current_pos() const override { return pos; }
  const LineSink &sink;
  std::string pending;
  uint64_t pos = 0;
};

/// Routes progress bars for the duration of one call: to `sink`, or
/// nowhere when quiet.
class ScopedProgress {
public:
  ScopedProgress(bool quiet, const ProgressSink &sink) {
    if (quiet)
      Progress::setSink([](llvm::StringRef, bool) {});
    else if (sink)
      Progress::setSink(
          [&sink](llvm::StringRef line, bool done) { sink(line.str(), done); });
  }
  ~ScopedProgress() { Progress::setSink(nullptr); }
};

template <typename T> Result<T> failed(llvm::Error err) {
  Result<T> r;
  r.error = llvm::toString(std::move(err));
  if (r.error.empty())
    r.error = "unknown error";
  return r;
}

template <typename T> Result<T> failed(const std::string &msg) {
  Result<T> r;
  r.error = msg;
  return r;
}
} // namespace

Result<CompileOutput> python::compile(const CompileArgs &a, const LineSink &log,
                                      const ProgressSink &progress) {
  driver::CompileOptions o;
  o.input = a.input;
  o.outDir = a.outDir;
  o.force = a.force;
  o.quiet = a.quiet;
  o.captureDiagnostics = true;
  driver::QuantizeOptions &q = o.quant;
  if (std::optional<driver::Method> m = driver::parseMethod(a.method)) {
    q.method = *m;
  } else if (quant::hasCustomQuantizer(a.method)) {
    q.method = driver::Method::Custom;
    q.custom = a.method;
  } else {
    std::vector<std::string> names = quant::customQuantizerNames();
    return failed<CompileOutput>(
        "method must be rtn, gptq, awq, awq+gptq, none or a registered "
        "quantizer" +
        (names.empty() ? std::string(" (none registered)")
                       : " (" + llvm::join(names, ", ") + ")") +
        ", got '" + a.method + "'");
  }
  q.bits = a.bits;
  q.groupSize = a.groupSize;
  if (a.zeroPoint >= 0)
    q.zeroPoint = a.zeroPoint != 0;
  q.descAct = a.descAct;
  q.fakeQuant = a.fakeQuant;
  q.scaleType = a.scaleType;
  q.skip = a.skip;
  q.overrides = a.overrides;
  q.dampPercent = a.dampPercent;
  q.blockSize = a.blockSize;
  q.staticGroups = a.staticGroups;
  q.trueSequential = a.trueSequential;
  q.awqMode = a.awqMode;
  q.duoScaling = a.duoScaling;
  q.clip = a.clip;
  q.nGrid = a.nGrid;
  o.calib.data = a.calibData;
  o.calib.tokenizer = a.tokenizer;
  o.calib.samples = a.calibSamples;
  o.calib.seqLen = a.seqLen;
  o.calib.seed = a.seed;
  o.targets = a.targets;
  o.ptxas = a.ptxas;
  if (!a.format.empty() && !(o.format = hf::parseFormat(a.format)))
    return failed<CompileOutput>(
        "format must be gptq, gptq_v2, awq or compressed-tensors, got '" +
        a.format + "'");
  ScopedProgress bars(a.quiet, progress);
  LineStream stream(log);
  auto result = driver::compile(std::move(o), stream);
  if (!result)
    return failed<CompileOutput>(result.takeError());
  Result<CompileOutput> r;
  r.value.outDir = result->outDir;
  r.value.reportPath = result->reportPath;
  r.value.hfDir = result->hfDir;
  r.value.linears = result->linears;
  r.value.calibratedLayers = result->calibratedLayers;
  r.value.seconds = result->seconds;
  return r;
}

Result<std::vector<int64_t>> python::loadTokens(const std::string &path,
                                                const std::string &tokenizer) {
  std::unique_ptr<data::Tokenizer> tok;
  if (!tokenizer.empty()) {
    auto opened = data::Tokenizer::open(tokenizer);
    if (!opened)
      return failed<std::vector<int64_t>>(opened.takeError());
    tok = std::move(*opened);
  }
  auto tokens = data::loadTokens(path, tok.get());
  if (!tokens)
    return failed<std::vector<int64_t>>(tokens.takeError());
  return {std::move(*tokens), ""};
}

//===----------------------------------------------------------------------===//
// Model
//===----------------------------------------------------------------------===//

struct Model::Impl {
  std::unique_ptr<driver::Model> model;
};

Model::Model(std::unique_ptr<Impl> impl) : impl(std::move(impl)) {}
Model::~Model() = default;

Result<std::shared_ptr<Model>> Model::load(const std::string &dir,
                                           const std::string &tokenizer,
                                           const std::string &func) {
  driver::ModelOptions options;
  options.tokenizer = tokenizer;
  options.func = func;
  auto loaded = driver::Model::load(dir, options);
  if (!loaded)
    return failed<std::shared_ptr<Model>>(loaded.takeError());
  auto impl = std::make_unique<Impl>();
  impl->model = std::move(*loaded);
  return {std::shared_ptr<Model>(new Model(std::move(impl))), ""};
}

std::string Model::dir() const { return impl->model->dir().str(); }

bool Model::hasTokenizer() const { return impl->model->tokenizer(); }

Result<std::vector<int64_t>> Model::encode(const std::string &text,
                                           bool bos) const {
  auto ids = impl->model->encode(text, bos);
  if (!ids)
    return failed<std::vector<int64_t>>(ids.takeError());
  return {std::move(*ids), ""};
}

Result<std::string> Model::decode(const std::vector<int64_t> &ids) const {
  const data::Tokenizer *tok = impl->model->tokenizer();
  if (!tok)
    return failed<std::string>(
        "decoding needs a tokenizer (load the model with one)");
  auto text = tok->decode(ids);
  if (!text)
    return failed<std::string>(text.takeError());
  return {std::move(*text), ""};
}

Result<int64_t> Model::vocabSize() {
  auto v = impl->model->vocabSize();
  if (!v)
    return failed<int64_t>(v.takeError());
  return {*v, ""};
}

Result<PerplexityOutput> Model::perplexity(const std::vector<int64_t> &tokens,
                                           int64_t seqLen, int64_t maxWindows,
                                           bool quiet,
                                           const ProgressSink &progress) {
  ScopedProgress bars(quiet, progress);
  auto r = impl->model->perplexity(tokens, seqLen, maxWindows, quiet);
  if (!r)
    return failed<PerplexityOutput>(r.takeError());
  PerplexityOutput out;
  out.windows = r->windows;
  out.predicted = r->predicted;
  out.seqLen = r->seqLen;
  out.meanNLL = r->meanNLL;
  out.perplexity = r->perplexity;
  out.tokensPerSecond = r->tokensPerSecond;
  out.compileSeconds = r->compileSeconds;
  out.evalSeconds = r->evalSeconds;
  return {out, ""};
}

Result<std::vector<float>> Model::logits(const std::vector<int64_t> &ids,
                                         int64_t batch, int64_t seq,
                                         int64_t &vocab) {
  auto t = impl->model->logits(ids, batch, seq);
  if (!t)
    return failed<std::vector<float>>(t.takeError());
  if (t->dtype != safetensors::DType::F32 || t->shape.size() != 3)
    return failed<std::vector<float>>(
        "the entry's logits are not an f32 [batch, seq, vocab] tensor");
  vocab = t->shape[2];
  llvm::ArrayRef<float> v = t->as<float>();
  return {std::vector<float>(v.begin(), v.end()), ""};
}

Result<GenerateOutput>
Model::generate(const std::vector<int64_t> &prompt, const GenerateArgs &a,
                const std::function<void(int64_t)> &onToken) {
  std::optional<CacheMode> mode =
      llvm::StringSwitch<std::optional<CacheMode>>(a.kvCache)
          .Case("auto", CacheMode::Auto)
          .Case("recompute", CacheMode::Recompute)
          .Case("past", CacheMode::Past)
          .Case("derived", CacheMode::Derived)
          .Default(std::nullopt);
  if (!mode)
    return failed<GenerateOutput>(
        "kv_cache must be auto, recompute, past or derived, got '" +
        a.kvCache + "'");
  GenerateOptions options;
  options.maxNewTokens = a.maxNewTokens;
  const data::Tokenizer *tok = impl->model->tokenizer();
  options.eosId = tok && a.stopAtEos ? tok->eosId() : -1;
  options.sampling = {a.temperature, a.topP, a.topK, a.seed};
  driver::DecodeOptions decode;
  decode.mode = *mode;
  decode.maxSeqLen = a.maxSeqLen;
  auto r = impl->model->generate(prompt, options, decode, [&](int64_t id) {
    if (onToken)
      onToken(id);
  });
  if (!r)
    return failed<GenerateOutput>(r.takeError());
  GenerateOutput out;
  out.ids = r->ids;
  if (tok)
    out.text = driver::continuationText(*tok, prompt, r->ids);
  out.stop = r->stoppedAtEos      ? "eos"
             : r->stoppedAtMaxLen ? "max_seq_len"
                                  : "max_new_tokens";
  out.kvCache = impl->model->decoderMode().str();
  out.timeToFirstToken = r->timeToFirstToken;
  out.tokenSeconds = r->tokenSeconds;
  return {std::move(out), ""};
}

//===----------------------------------------------------------------------===//
// Stats
//===----------------------------------------------------------------------===//

struct Stats::Impl {
  std::unique_ptr<safetensors::Reader> reader;
};

Stats::Stats(std::unique_ptr<Impl> impl) : impl(std::move(impl)) {}
Stats::~Stats() = default;

Result<std::shared_ptr<Stats>> Stats::open(const std::string &path) {
  // A single file, an index, or a name whose index holds the shards.
  auto reader = safetensors::openArchive(path);
  if (!reader)
    return failed<std::shared_ptr<Stats>>(reader.takeError());
  auto impl = std::make_unique<Impl>();
  impl->reader = std::move(*reader);
  return {std::shared_ptr<Stats>(new Stats(std::move(impl))), ""};
}

std::string Stats::path() const { return impl->reader->path().str(); }

std::vector<std::string> Stats::layers() const {
  std::vector<std::string> out;
  for (const safetensors::TensorInfo &t : impl->reader->tensors()) {
    llvm::StringRef name(t.name);
    if (name.consume_back(".hessian"))
      out.push_back(name.str());
  }
  return out;
}

bool Stats::view(const std::string &name, TensorView &out) const {
  const safetensors::TensorInfo *info = impl->reader->lookup(name);
  if (!info)
    return false;
  out.data = impl->reader->bytes(*info).data();
  out.dtype = safetensors::dtypeName(info->dtype).str();
  out.shape.assign(info->shape.begin(), info->shape.end());
  out.itemSize = safetensors::dtypeSize(info->dtype);
  return true;
}

std::map<std::string, std::string> Stats::metadata() const {
  return impl->reader->metadata();
}

//===----------------------------------------------------------------------===//
// Custom quantizers
//===----------------------------------------------------------------------===//

std::string python::registerQuantizer(const std::string &name, Quantizer fn) {
  auto adapter = [fn = std::move(fn)](const quant::CustomQuantizeInput &in)
      -> llvm::Expected<quant::QuantizedWeight> {
    LayerInput li;
    li.layer = in.layer.str();
    li.weight = in.weight.data();
    li.n = in.n;
    li.k = in.k;
    li.bits = in.scheme.bits;
    li.groupSize = in.scheme.groupSize;
    li.symmetric = in.scheme.symmetric;
    li.actOrder = in.scheme.actOrder;
    li.hessian = in.hessian.empty() ? nullptr : in.hessian.data();
    li.xMean = in.xMean.empty() ? nullptr : in.xMean.data();
    li.rows = in.rows.empty() ? nullptr : in.rows.data();
    li.numRows = in.numRows;
    LayerOutput lo;
    std::string err = fn(li, lo);
    if (!err.empty())
      return llvm::createStringError(llvm::inconvertibleErrorCode(), err);
    int64_t n = in.n, k = in.k, groups = in.scheme.numGroups(k);
    if (lo.codes.size() != size_t(n * k) ||
        lo.scales.size() != size_t(n * groups) ||
        lo.zeros.size() != size_t(n * groups))
      return llvm::createStringError(
          llvm::inconvertibleErrorCode(),
          "codes, scales or zeros have the wrong size for [N, K] = [%lld, "
          "%lld] and %lld groups",
          (long long)n, (long long)k, (long long)groups);
    // The facade's [N][K] / [N][G] orientation to QuantizedWeight's [K][N]
    // / [G][N].
    quant::QuantizedWeight q;
    q.n = n;
    q.k = k;
    q.scheme = in.scheme;
    q.q.resize(size_t(n * k));
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < k; ++c)
        q.q[size_t(c * n + r)] = lo.codes[size_t(r * k + c)];
    q.scales.resize(size_t(groups * n));
    q.zeros.resize(size_t(groups * n));
    for (int64_t r = 0; r < n; ++r)
      for (int64_t g = 0; g < groups; ++g) {
        q.scales[size_t(g * n + r)] = lo.scales[size_t(r * groups + g)];
        q.zeros[size_t(g * n + r)] = lo.zeros[size_t(r * groups + g)];
      }
    q.gIdx = std::move(lo.gIdx);
    return q;
  };
  if (llvm::Error err = quant::registerCustomQuantizer(name, adapter))
    return llvm::toString(std::move(err));
  return "";
}

bool python::unregisterQuantizer(const std::string &name) {
  return quant::unregisterCustomQuantizer(name);
}

std::vector<std::string> python::quantizerNames() {
  return quant::customQuantizerNames();
}
