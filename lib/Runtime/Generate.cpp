//===- Generate.cpp - text generation and choice scoring on the CPU -------===//
// Decoders over a JIT-compiled model directory (full recompute, the graph's
// own past_key_values, or the wq-derive-kv-cache step), the seeded sampler
// and continuation scoring; see Generate.h.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Runtime/Generate.h"
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h"
#include "quant-mlir/Runtime/CPURunner.h"
#include "quant-mlir/Runtime/LanguageModel.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/StringExtras.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

#include <time.h>

using namespace quant_mlir;
using llvm::ArrayRef;
using llvm::StringRef;
using llvm::Twine;
using safetensors::DType;

static llvm::Error makeError(const Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

Decoder::~Decoder() = default;

namespace {

/// The entry function as generation runs it: each input's role (the table
/// scoring uses, LanguageModel.h), the logits result and, for graphs with
/// their own cache, the past_key_values / present pairs per layer.
struct EntryLayout {
  LanguageModelEntry entry; // name, input names and roles, vocab
  int64_t logits = -1;
  // Per layer: {key, value} argument and result indices.
  std::vector<std::pair<int64_t, int64_t>> pastArgs, presentResults;
  std::vector<mlir::RankedTensorType> pastTypes; // key type per layer
};

/// Parses "past_key_values.N.key" style names into (N, isValue).
bool parseCacheName(StringRef name, StringRef prefix, int64_t &layer,
                    bool &isValue) {
  if (!name.consume_front(prefix))
    return false;
  auto [num, rest] = name.split('.');
  if (num.getAsInteger(10, layer) || layer < 0)
    return false;
  if (rest == "key" || rest == "value") {
    isValue = rest == "value";
    return true;
  }
  return false;
}

llvm::Expected<EntryLayout> analyzeEntry(mlir::ModuleOp module,
                                         StringRef funcName) {
  mlir::func::FuncOp fn;
  int64_t publicCount = 0;
  for (auto f : module.getOps<mlir::func::FuncOp>()) {
    if (f.isPrivate() || f.isExternal())
      continue;
    ++publicCount;
    if (funcName.empty() ? !fn : f.getSymName() == funcName)
      fn = f;
  }
  if (!fn)
    return makeError(funcName.empty()
                         ? Twine("the model has no public function")
                         : "no public function '" + funcName + "'");
  if (funcName.empty() && publicCount > 1)
    return makeError("the model has " + Twine(publicCount) +
                     " public functions; pick one with --func");
  EntryLayout layout;
  LanguageModelEntry &entry = layout.entry;
  entry.name = fn.getSymName().str();
  auto fnType = fn.getFunctionType();
  std::map<int64_t, std::pair<int64_t, int64_t>> past, present;
  std::map<int64_t, mlir::RankedTensorType> pastType;
  bool hasIds = false;
  for (int64_t i = 0; i < int64_t(fnType.getNumInputs()); ++i) {
    auto nameAttr = fn.getArgAttrOfType<mlir::StringAttr>(i, "onnx.name");
    StringRef name = nameAttr ? nameAttr.getValue() : StringRef();
    auto type = llvm::dyn_cast<mlir::RankedTensorType>(fnType.getInput(i));
    std::optional<InputRole> role = inputRole(name);
    if (!role && fnType.getNumInputs() == 1)
      role = InputRole::InputIds; // a graph whose only input is the ids
    if (!role)
      return makeError("input #" + Twine(i) + " '" + name + "' of '" +
                       entry.name +
                       "' is none of input_ids, attention_mask, position_ids, "
                       "token_type_ids, past_key_values.N.key/value");
    entry.inputNames.push_back(name.str());
    entry.roles.push_back(*role);
    hasIds |= *role == InputRole::InputIds;
    if (*role != InputRole::PastKeyValue) {
      if (!type || type.getRank() != 2 || !type.getElementType().isInteger(64))
        return makeError("input '" + name + "' of '" + entry.name +
                         "' must be tensor<BxSxi64>");
      continue;
    }
    int64_t layer;
    bool isValue;
    if (!parseCacheName(name, "past_key_values.", layer, isValue))
      return makeError("input '" + name + "' of '" + entry.name +
                       "' is not past_key_values.N.key/value");
    if (!type || type.getRank() != 4 || !type.getElementType().isF32() ||
        type.isDynamicDim(1) || type.isDynamicDim(3))
      return makeError("input '" + name + "' of '" + entry.name +
                       "' must be tensor<Bx" "HxSxDxf32> with static H and D");
    auto &slot = past.try_emplace(layer, -1, -1).first->second;
    (isValue ? slot.second : slot.first) = i;
    if (!isValue)
      pastType[layer] = type;
  }
  for (int64_t r = 0; r < int64_t(fnType.getNumResults()); ++r) {
    auto nameAttr = fn.getResultAttrOfType<mlir::StringAttr>(r, "onnx.name");
    StringRef name = nameAttr ? nameAttr.getValue() : StringRef();
    int64_t layer;
    bool isValue;
    if (name == "logits" || (name.empty() && r == 0))
      layout.logits = r;
    else if (parseCacheName(name, "present.", layer, isValue)) {
      auto &slot = present.try_emplace(layer, -1, -1).first->second;
      (isValue ? slot.second : slot.first) = r;
    }
  }
  if (!hasIds || layout.logits < 0)
    return makeError("function '" + entry.name +
                     "' needs an input_ids input and a logits result");
  auto logitsType =
      llvm::dyn_cast<mlir::RankedTensorType>(fnType.getResult(layout.logits));
  if (!logitsType || logitsType.getRank() != 3 ||
      !logitsType.getElementType().isF32() || logitsType.isDynamicDim(2))
    return makeError("the logits of '" + entry.name +
                     "' must be tensor<BxSxVxf32> with a static vocabulary V");
  entry.vocab = logitsType.getDimSize(2);
  for (int64_t l = 0; l < int64_t(past.size()); ++l) {
    auto p = past.find(l), q = present.find(l);
    if (p == past.end() || p->second.first < 0 || p->second.second < 0)
      return makeError("past_key_values." + Twine(l) +
                       ".key/value missing from '" + entry.name + "'");
    if (q == present.end() || q->second.first < 0 || q->second.second < 0)
      return makeError("present." + Twine(l) + ".key/value missing from '" +
                       entry.name + "' (it has past_key_values." + Twine(l) +
                       ")");
    layout.pastArgs.push_back(p->second);
    layout.presentResults.push_back(q->second);
    layout.pastTypes.push_back(pastType[l]);
  }
  return layout;
}

/// A decoder over the compiled entry: the one place that builds the
/// entry's inputs (LanguageModelEntry::inputs, then the pasts) and reads
/// its logits.
class GraphDecoder : public Decoder {
public:
  GraphDecoder(std::unique_ptr<CPUModule> module, EntryLayout layout,
               int64_t maxSeqLen)
      : module(std::move(module)), layout(std::move(layout)) {
    vocab = this->layout.entry.vocab;
    maxLen = maxSeqLen;
  }
  llvm::Expected<std::vector<float>>
  allLogits(ArrayRef<int64_t> tokens) override {
    reset();
    if (!module->lookup(layout.entry.name))
      return makeError("the full-sequence graph was not compiled "
                       "(DecoderOptions::fullGraph)");
    auto out = runEntry(tokens, 0, {});
    if (!out)
      return out.takeError();
    return logitsOf(*out, false);
  }

protected:
  llvm::Error checkRoom(size_t tokens) const {
    if (contextLength() + int64_t(tokens) > maxLen)
      return makeError("the context would exceed --max-seq-len " +
                       Twine(maxLen));
    return llvm::Error::success();
  }
  /// Runs the entry on `tokens` after a past of `pastLen` positions with
  /// `pasts` (key, value per layer; empty: zero-length pasts) bound.
  llvm::Expected<std::vector<HostTensor>>
  runEntry(ArrayRef<int64_t> tokens, int64_t pastLen,
           ArrayRef<HostTensor> pasts) const {
    std::vector<HostTensor> owned =
        layout.entry.inputs(tokens, 1, tokens.size(), {}, pastLen);
    std::vector<const HostTensor *> refs;
    for (const HostTensor &t : owned)
      refs.push_back(&t);
    for (auto [l, args] : llvm::enumerate(layout.pastArgs)) {
      if (!pasts.empty()) {
        refs[args.first] = &pasts[2 * l];
        refs[args.second] = &pasts[2 * l + 1];
        continue;
      }
      auto type = layout.pastTypes[l];
      HostTensor empty{DType::F32,
                       {1, type.getDimSize(1), 0, type.getDimSize(3)},
                       {}};
      owned[args.first] = owned[args.second] = empty;
    }
    return module->run(layout.entry.name, refs);
  }
  /// The logits result of a run: every position's, or the last one's.
  std::vector<float> logitsOf(ArrayRef<HostTensor> out, bool lastOnly) const {
    auto v = out[layout.logits].as<float>();
    return std::vector<float>(lastOnly ? v.end() - vocab : v.begin(), v.end());
  }

  std::unique_ptr<CPUModule> module;
  EntryLayout layout;
};

/// Full recompute: the whole context through the full-sequence graph.
class RecomputeDecoder : public GraphDecoder {
public:
  using GraphDecoder::GraphDecoder;
  llvm::Expected<std::vector<float>> feed(ArrayRef<int64_t> tokens) override {
    if (llvm::Error err = checkRoom(tokens.size()))
      return std::move(err);
    context.insert(context.end(), tokens.begin(), tokens.end());
    auto out = runEntry(context, 0, {});
    if (!out)
      return out.takeError();
    return logitsOf(*out, true);
  }
  void reset() override { context.clear(); }
  int64_t contextLength() const override { return context.size(); }
  StringRef modeName() const override { return "recompute"; }

private:
  std::vector<int64_t> context;
};

/// The graph's own cache: present.N.* of one step are the next step's
/// past_key_values.N.* (the graph concatenates).
class PastDecoder : public GraphDecoder {
public:
  using GraphDecoder::GraphDecoder;
  llvm::Expected<std::vector<float>> feed(ArrayRef<int64_t> tokens) override {
    if (llvm::Error err = checkRoom(tokens.size()))
      return std::move(err);
    auto out = runEntry(tokens, length, pasts);
    if (!out)
      return out.takeError();
    std::vector<HostTensor> next;
    for (auto [k, v] : layout.presentResults) {
      next.push_back(std::move((*out)[k]));
      next.push_back(std::move((*out)[v]));
    }
    int64_t expected = length + tokens.size();
    for (const HostTensor &t : next)
      if (t.shape.size() != 4 || t.shape[2] != expected)
        return makeError("a present.* output of '" + layout.entry.name +
                         "' does not hold " + Twine(expected) + " positions");
    pasts = std::move(next);
    length = expected;
    return logitsOf(*out, true);
  }
  void reset() override {
    pasts.clear();
    length = 0;
  }
  int64_t contextLength() const override { return length; }
  StringRef modeName() const override { return "past"; }

private:
  std::vector<HostTensor> pasts;
  int64_t length = 0;
};

/// The wq-derive-kv-cache step: cache buffers [1, Hkv, M, D] allocated
/// once here; each step writes its tokens' slots in place (the step's
/// memref arguments), so nothing of the cache's size moves per token.
/// Slots at and after the context length are never read, so a reset only
/// rewinds the length.
class DerivedDecoder : public GraphDecoder {
public:
  DerivedDecoder(std::unique_ptr<CPUModule> module, EntryLayout layout,
                 const FunctionSignature &step, int64_t maxSeqLen)
      : GraphDecoder(std::move(module), std::move(layout), maxSeqLen),
        stepName(step.name) {
    for (auto [type, inOut] : llvm::zip(step.inputs, step.inOut)) {
      if (!inOut)
        continue;
      HostTensor cache{DType::F32, llvm::SmallVector<int64_t>(type.getShape()),
                       {}};
      cache.data.assign(cache.numElements() * sizeof(float), 0);
      caches.push_back(std::move(cache));
    }
  }
  llvm::Expected<std::vector<float>> feed(ArrayRef<int64_t> tokens) override {
    if (llvm::Error err = checkRoom(tokens.size()))
      return std::move(err);
    HostTensor ids =
        HostTensor::from<int64_t>(DType::I64, {1, int64_t(tokens.size())},
                                  tokens);
    HostTensor pos = HostTensor::from<int64_t>(DType::I64, {1}, {length});
    std::vector<HostTensor *> buffers;
    for (HostTensor &c : caches)
      buffers.push_back(&c);
    auto out = module->run(stepName, {&ids, &pos}, buffers);
    if (!out)
      return out.takeError();
    length += tokens.size();
    auto v = (*out)[0].as<float>();
    return std::vector<float>(v.end() - vocab, v.end());
  }
  void reset() override { length = 0; }
  int64_t contextLength() const override { return length; }
  StringRef modeName() const override { return "derived"; }

private:
  std::string stepName;
  std::vector<HostTensor> caches;
  int64_t length = 0;
};

} // namespace

/// Runs wq-derive-kv-cache on `module`; the error holds its diagnostics.
static llvm::Error deriveCache(mlir::ModuleOp module, StringRef func,
                               int64_t maxSeqLen) {
  std::string messages;
  mlir::ScopedDiagnosticHandler handler(
      module.getContext(), [&](mlir::Diagnostic &diag) {
        if (diag.getSeverity() == mlir::DiagnosticSeverity::Error)
          messages += (messages.empty() ? "" : "; ") + diag.str();
        return mlir::success();
      });
  mlir::PassManager pm(module.getContext());
  wq::WQDeriveKVCacheOptions opts;
  opts.maxSeqLen = maxSeqLen;
  opts.func = func.str();
  pm.addPass(wq::createWQDeriveKVCache(opts));
  if (mlir::failed(pm.run(module)))
    return makeError(messages.empty() ? "wq-derive-kv-cache failed"
                                      : messages);
  return llvm::Error::success();
}

llvm::Expected<std::unique_ptr<Decoder>>
Decoder::open(mlir::OwningOpRef<mlir::ModuleOp> module, StringRef modelDir,
              const DecoderOptions &options) {
  if (options.maxSeqLen < 1)
    return makeError("--max-seq-len must be positive");
  auto layout = analyzeEntry(*module, options.func);
  if (!layout)
    return layout.takeError();
  bool hasPast = !layout->pastArgs.empty();
  CacheMode mode = options.mode;
  if (mode == CacheMode::Past && !hasPast)
    return makeError("'" + layout->entry.name +
                     "' has no past_key_values inputs (use --kv-cache "
                     "derived or recompute)");
  if (mode == CacheMode::Auto)
    mode = hasPast ? CacheMode::Past : CacheMode::Derived;
  if (mode == CacheMode::Derived) {
    if (llvm::Error err =
            deriveCache(*module, layout->entry.name, options.maxSeqLen)) {
      if (options.mode == CacheMode::Derived)
        return err;
      // Auto: a graph the pass refuses still generates, by recompute.
      if (options.warn)
        llvm::errs() << "quant-run: note: no derived KV cache ("
                     << llvm::toString(std::move(err))
                     << "); recomputing the whole context per token\n";
      else
        llvm::consumeError(std::move(err));
      mode = CacheMode::Recompute;
    } else if (!options.fullGraph) {
      if (auto entry = module->lookupSymbol<mlir::func::FuncOp>(layout->entry.name))
        entry.erase();
    }
  }
  auto compiled = CPUModule::compile(std::move(module), modelDir, options.compile);
  if (!compiled)
    return compiled.takeError();
  if (mode == CacheMode::Past)
    return std::unique_ptr<Decoder>(new PastDecoder(
        std::move(*compiled), std::move(*layout), options.maxSeqLen));
  if (mode == CacheMode::Derived) {
    const FunctionSignature *step =
        (*compiled)->lookup(layout->entry.name + ".decode_step");
    if (!step)
      return makeError("wq-derive-kv-cache produced no decode step");
    return std::unique_ptr<Decoder>(new DerivedDecoder(
        std::move(*compiled), std::move(*layout), *step, options.maxSeqLen));
  }
  return std::unique_ptr<Decoder>(new RecomputeDecoder(
      std::move(*compiled), std::move(*layout), options.maxSeqLen));
}

//===----------------------------------------------------------------------===//
// Sampling and generation
//===----------------------------------------------------------------------===//

Sampler::Sampler(const SamplingOptions &options)
    : options(options), rng(options.seed) {}

int64_t Sampler::next(ArrayRef<float> logits) {
  int64_t vocab = logits.size();
  if (options.temperature <= 0) {
    int64_t best = 0;
    for (int64_t v = 1; v < vocab; ++v)
      if (logits[v] > logits[best])
        best = v;
    return best;
  }
  // Candidates by descending logit (ties: lower id first), cut to top-k.
  std::vector<int64_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return logits[a] > logits[b];
  });
  if (options.topK > 0 && options.topK < vocab)
    order.resize(options.topK);
  std::vector<double> probs(order.size());
  double maxLogit = logits[order[0]] / options.temperature, sum = 0;
  for (auto [i, v] : llvm::enumerate(order)) {
    probs[i] = std::exp(logits[v] / options.temperature - maxLogit);
    sum += probs[i];
  }
  // Nucleus: keep the shortest prefix whose mass reaches topP.
  size_t keep = probs.size();
  if (options.topP < 1) {
    double mass = 0;
    for (size_t i = 0; i < probs.size(); ++i) {
      mass += probs[i] / sum;
      if (mass >= options.topP) {
        keep = i + 1;
        break;
      }
    }
  }
  double kept = std::accumulate(probs.begin(), probs.begin() + keep, 0.0);
  // 53 random bits -> [0, 1), identical on every platform.
  double u = double(rng() >> 11) * 0x1.0p-53 * kept;
  for (size_t i = 0; i < keep; ++i) {
    u -= probs[i];
    if (u < 0)
      return order[i];
  }
  return order[keep - 1];
}

/// CPU time of all threads of the process (load-independent, unlike the
/// wall clock on a shared machine).
static double processCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

llvm::Expected<GenerateResult>
quant_mlir::generate(Decoder &decoder, ArrayRef<int64_t> prompt,
                     const GenerateOptions &options,
                     llvm::function_ref<void(int64_t)> onToken) {
  using Clock = std::chrono::steady_clock;
  if (prompt.empty())
    return makeError("the prompt holds no tokens");
  for (auto [i, t] : llvm::enumerate(prompt))
    if (t < 0 || t >= decoder.vocabSize())
      return makeError("prompt token #" + Twine(i) + " is " + Twine(t) +
                       ", outside the model's vocabulary [0, " +
                       Twine(decoder.vocabSize()) + ")");
  if (int64_t(prompt.size()) > decoder.maxSeqLen())
    return makeError("the prompt holds " + Twine(prompt.size()) +
                     " tokens, more than --max-seq-len " +
                     Twine(decoder.maxSeqLen()));
  decoder.reset();
  Sampler sampler(options.sampling);
  GenerateResult result;
  auto start = Clock::now();
  double cpuStart = 0;
  auto logits = decoder.feed(prompt);
  if (!logits)
    return logits.takeError();
  for (int64_t i = 0; i < options.maxNewTokens; ++i) {
    int64_t token = sampler.next(*logits);
    result.ids.push_back(token);
    auto now = Clock::now();
    double seconds = std::chrono::duration<double>(now - start).count();
    if (i == 0) {
      result.timeToFirstToken = seconds;
    } else {
      result.tokenSeconds.push_back(seconds);
      result.decodeCpuSeconds += processCpuSeconds() - cpuStart;
    }
    if (onToken)
      onToken(token);
    if (token == options.eosId) {
      result.stoppedAtEos = true;
      break;
    }
    if (i + 1 == options.maxNewTokens)
      break;
    if (decoder.contextLength() + 1 > decoder.maxSeqLen()) {
      result.stoppedAtMaxLen = true;
      break;
    }
    start = Clock::now();
    cpuStart = processCpuSeconds();
    logits = decoder.feed({token});
    if (!logits)
      return logits.takeError();
  }
  return result;
}

double quant_mlir::repetitionRate(ArrayRef<int64_t> ids, int64_t n) {
  if (int64_t(ids.size()) <= n)
    return 0;
  std::set<std::vector<int64_t>> seen;
  int64_t repeated = 0, total = 0;
  for (size_t i = 0; i + n <= ids.size(); ++i, ++total)
    if (!seen.insert(std::vector<int64_t>(ids.begin() + i,
                                          ids.begin() + i + n))
             .second)
      ++repeated;
  return double(repeated) / total;
}

double quant_mlir::quantile(std::vector<double> values, double p) {
  if (values.empty())
    return 0;
  std::sort(values.begin(), values.end());
  double pos = p * (values.size() - 1);
  size_t lo = size_t(std::floor(pos)), hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (pos - lo) * (values[hi] - values[lo]);
}

llvm::Expected<ContinuationScore>
quant_mlir::scoreContinuation(Decoder &decoder, ArrayRef<int64_t> context,
                              ArrayRef<int64_t> continuation) {
  if (context.empty() || continuation.empty())
    return makeError("a choice needs a non-empty context and continuation");
  std::vector<int64_t> whole(context.begin(), context.end());
  whole.insert(whole.end(), continuation.begin(), continuation.end());
  int64_t vocab = decoder.vocabSize();
  for (auto [i, t] : llvm::enumerate(whole))
    if (t < 0 || t >= vocab)
      return makeError("token #" + Twine(i) + " is " + Twine(t) +
                       ", outside the model's vocabulary [0, " + Twine(vocab) +
                       ")");
  if (int64_t(whole.size()) > decoder.maxSeqLen())
    return makeError("context + choice hold " + Twine(whole.size()) +
                     " tokens, more than --max-seq-len " +
                     Twine(decoder.maxSeqLen()));
  auto logits = decoder.allLogits(whole);
  if (!logits)
    return logits.takeError();
  ContinuationScore score;
  for (size_t i = context.size(); i < whole.size(); ++i) {
    const float *row = logits->data() + (i - 1) * vocab;
    double maxLogit = row[0];
    int64_t best = 0;
    for (int64_t v = 1; v < vocab; ++v)
      if (row[v] > row[best])
        best = v;
    maxLogit = row[best];
    double z = 0;
    for (int64_t v = 0; v < vocab; ++v)
      z += std::exp(double(row[v]) - maxLogit);
    score.logLikelihood += double(row[whole[i]]) - maxLogit - std::log(z);
    score.greedy &= best == whole[i];
  }
  return score;
}

llvm::Expected<double>
quant_mlir::compareWithRecompute(Decoder &decoder, ArrayRef<int64_t> tokens) {
  if (tokens.empty() || int64_t(tokens.size()) > decoder.maxSeqLen())
    return makeError("need 1 to --max-seq-len tokens to compare");
  auto full = decoder.allLogits(tokens);
  if (!full)
    return full.takeError();
  decoder.reset();
  int64_t vocab = decoder.vocabSize();
  double maxDiff = 0;
  for (auto [i, t] : llvm::enumerate(tokens)) {
    auto step = decoder.feed({t});
    if (!step)
      return step.takeError();
    for (int64_t v = 0; v < vocab; ++v)
      maxDiff = std::max(
          maxDiff, std::abs(double((*step)[v]) - (*full)[i * vocab + v]));
  }
  decoder.reset();
  return maxDiff;
}
