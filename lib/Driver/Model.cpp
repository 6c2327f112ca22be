//===- Model.cpp - load a model directory, score and generate --------------===//
// The run side of the driver API (Model.h). Parse errors are captured from
// the context's diagnostics into the returned error, so callers without a
// terminal (Python) see the message.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Driver/Model.h"

#include "quant-mlir/Data/TokenData.h"
#include "quant-mlir/InitAllDialects.h"
#include "quant-mlir/Runtime/LanguageModel.h"
#include "quant-mlir/Support/InputFiles.h"
#include "quant-mlir/Support/Progress.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/Support/Path.h"

#include <chrono>
#include <cmath>
#include <optional>

using namespace quant_mlir;
using namespace quant_mlir::driver;

static llvm::Error error(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

static double secondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
      .count();
}

struct Model::Impl {
  std::string dir;
  ModelOptions options;
  // Declared first: destroyed after every module that lives in it.
  std::unique_ptr<mlir::MLIRContext> context;
  mlir::OwningOpRef<mlir::ModuleOp> module;
  std::unique_ptr<data::Tokenizer> tokenizer;
  LanguageModelEntry entry;
  std::unique_ptr<CPUModule> scoring;
  double scoringCompileSeconds = 0;
  std::unique_ptr<Decoder> decoder;
  std::optional<DecodeOptions> decoderOptions;

  llvm::Error compileScoring();
  llvm::Error openDecoder(const DecodeOptions &decode);
};

Model::Model(std::unique_ptr<Impl> impl) : impl(std::move(impl)) {}
Model::~Model() = default;

llvm::Expected<std::unique_ptr<Model>> Model::load(llvm::StringRef dir,
                                                   const ModelOptions &options) {
  auto impl = std::make_unique<Impl>();
  impl->dir = dir.str();
  impl->options = options;
  mlir::DialectRegistry registry;
  quant_mlir::registerAllDialects(registry);
  impl->context = std::make_unique<mlir::MLIRContext>(registry);
  impl->context->loadAllAvailableDialects();
  if (!options.tokenizer.empty()) {
    auto tok = data::Tokenizer::open(options.tokenizer);
    if (!tok)
      return tok.takeError();
    impl->tokenizer = std::move(*tok);
  }
  llvm::SmallString<256> path(dir);
  llvm::sys::path::append(path, "model.mlir");
  if (llvm::Error err = checkRegularFile(path)) // a FIFO would block
    return std::move(err);
  std::string diagnostics;
  mlir::ScopedDiagnosticHandler capture(
      impl->context.get(), [&](mlir::Diagnostic &d) {
        if (d.getSeverity() == mlir::DiagnosticSeverity::Error)
          diagnostics += (diagnostics.empty() ? "" : "\n") + d.str();
        return mlir::success();
      });
  impl->module =
      mlir::parseSourceFile<mlir::ModuleOp>(path.str(), impl->context.get());
  if (!impl->module)
    return error("cannot load '" + path + "'" +
                 (diagnostics.empty() ? "" : ": " + diagnostics));
  return std::unique_ptr<Model>(new Model(std::move(impl)));
}

llvm::StringRef Model::dir() const { return impl->dir; }

const data::Tokenizer *Model::tokenizer() const {
  return impl->tokenizer.get();
}

llvm::Expected<std::vector<int64_t>> Model::encode(llvm::StringRef text,
                                                   bool addBos) const {
  if (!impl->tokenizer)
    return error("text input needs a tokenizer (load the model with one)");
  return impl->tokenizer->encode(text, addBos);
}

llvm::Error Model::Impl::compileScoring() {
  if (scoring)
    return llvm::Error::success();
  auto t0 = std::chrono::steady_clock::now();
  auto specialized = specializeForScoring(*module, options.func, entry);
  if (!specialized)
    return specialized.takeError();
  auto compiled = CPUModule::compile(std::move(*specialized), dir, options.cpu);
  if (!compiled)
    return compiled.takeError();
  scoring = std::move(*compiled);
  scoringCompileSeconds = secondsSince(t0);
  return llvm::Error::success();
}

llvm::Expected<int64_t> Model::vocabSize() {
  if (llvm::Error err = impl->compileScoring())
    return std::move(err);
  return impl->entry.vocab;
}

void driver::accumulateNLL(llvm::ArrayRef<float> logits, int64_t vocab,
                           llvm::ArrayRef<int64_t> window, double &sum,
                           int64_t &count) {
  for (size_t t = 0; t + 1 < window.size(); ++t) {
    const float *row = logits.data() + t * vocab;
    double maxLogit = row[0];
    for (int64_t v = 1; v < vocab; ++v)
      maxLogit = std::max(maxLogit, double(row[v]));
    double z = 0;
    for (int64_t v = 0; v < vocab; ++v)
      z += std::exp(double(row[v]) - maxLogit);
    sum += maxLogit + std::log(z) - double(row[window[t + 1]]);
    ++count;
  }
}

llvm::Expected<PerplexityResult>
Model::perplexity(llvm::ArrayRef<int64_t> tokens, int64_t seqLen,
                  int64_t maxWindows, bool quiet) {
  if (seqLen < 2)
    return error("seq_len must be at least 2, got " + llvm::Twine(seqLen));
  if (llvm::Error err = impl->compileScoring())
    return std::move(err);
  if (llvm::Error err =
          data::checkVocabulary(tokens, impl->entry.vocab, "tokens"))
    return std::move(err);
  PerplexityResult r;
  r.seqLen = seqLen;
  r.windows = int64_t(tokens.size()) / seqLen;
  if (r.windows == 0)
    return error("the data holds " + llvm::Twine(tokens.size()) +
                 " tokens, fewer than one window of seq_len " +
                 llvm::Twine(seqLen));
  if (maxWindows > 0)
    r.windows = std::min(r.windows, maxWindows);
  double nllSum = 0;
  Progress progress("perplexity", r.windows, !quiet);
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t w = 0; w < r.windows; ++w) {
    llvm::ArrayRef<int64_t> window = tokens.slice(w * seqLen, seqLen);
    auto out = impl->scoring->run(impl->entry.name,
                                  impl->entry.inputs(window, 1, seqLen));
    if (!out)
      return out.takeError();
    accumulateNLL((*out)[0].as<float>(), impl->entry.vocab, window, nllSum,
                  r.predicted);
    progress.advance();
  }
  progress.finish();
  r.evalSeconds = secondsSince(t0);
  r.compileSeconds = impl->scoringCompileSeconds;
  r.meanNLL = nllSum / double(r.predicted);
  r.perplexity = std::exp(r.meanNLL);
  r.tokensPerSecond = double(r.windows * seqLen) / r.evalSeconds;
  return r;
}

llvm::Expected<HostTensor> Model::logits(llvm::ArrayRef<int64_t> ids,
                                         int64_t batch, int64_t seq) {
  if (batch < 1 || seq < 1 || int64_t(ids.size()) != batch * seq)
    return error("logits need batch x seq ids, got " +
                 llvm::Twine(ids.size()) + " for [" + llvm::Twine(batch) +
                 ", " + llvm::Twine(seq) + "]");
  if (llvm::Error err = impl->compileScoring())
    return std::move(err);
  if (llvm::Error err =
          data::checkVocabulary(ids, impl->entry.vocab, "ids"))
    return std::move(err);
  auto out =
      impl->scoring->run(impl->entry.name, impl->entry.inputs(ids, batch, seq));
  if (!out)
    return out.takeError();
  return std::move((*out)[0]);
}

llvm::Error Model::Impl::openDecoder(const DecodeOptions &decode) {
  if (decoder && decoderOptions && decoderOptions->mode == decode.mode &&
      decoderOptions->maxSeqLen == decode.maxSeqLen)
    return llvm::Error::success();
  decoder.reset();
  DecoderOptions options;
  options.func = this->options.func;
  options.mode = decode.mode;
  options.maxSeqLen = decode.maxSeqLen;
  options.fullGraph = false;
  auto opened = Decoder::open(module->clone(), dir, options);
  if (!opened)
    return opened.takeError();
  decoder = std::move(*opened);
  decoderOptions = decode;
  return llvm::Error::success();
}

llvm::Expected<GenerateResult>
Model::generate(llvm::ArrayRef<int64_t> prompt, const GenerateOptions &options,
                const DecodeOptions &decode,
                llvm::function_ref<void(int64_t)> onToken) {
  if (prompt.empty())
    return error("the prompt holds no tokens");
  if (options.maxNewTokens < 1)
    return error("max_new_tokens must be at least 1");
  const SamplingOptions &s = options.sampling;
  if (s.temperature < 0 || s.topP <= 0 || s.topP > 1 || s.topK < 0)
    return error("need temperature >= 0, 0 < top_p <= 1, top_k >= 0");
  if (int64_t(prompt.size()) > decode.maxSeqLen)
    return error("the prompt holds " + llvm::Twine(prompt.size()) +
                 " tokens, more than max_seq_len " +
                 llvm::Twine(decode.maxSeqLen));
  if (llvm::Error err = impl->openDecoder(decode))
    return std::move(err);
  Decoder &decoder = *impl->decoder;
  if (llvm::Error err =
          data::checkVocabulary(prompt, decoder.vocabSize(), "prompt"))
    return std::move(err);
  decoder.reset();
  return quant_mlir::generate(decoder, prompt, options, onToken);
}

llvm::StringRef Model::decoderMode() const {
  return impl->decoder ? impl->decoder->modeName() : "";
}

std::string driver::continuationText(const data::Tokenizer &tokenizer,
                                     llvm::ArrayRef<int64_t> prompt,
                                     llvm::ArrayRef<int64_t> ids) {
  std::vector<int64_t> all(prompt.begin(), prompt.end());
  all.insert(all.end(), ids.begin(), ids.end());
  auto head = tokenizer.decode(prompt), whole = tokenizer.decode(all);
  if (head && whole && llvm::StringRef(*whole).starts_with(*head))
    return whole->substr(head->size());
  llvm::consumeError(head.takeError());
  llvm::consumeError(whole.takeError());
  auto alone = tokenizer.decode(ids);
  if (!alone) {
    llvm::consumeError(alone.takeError());
    return "";
  }
  return *alone;
}
