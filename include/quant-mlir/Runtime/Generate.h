//===- Generate.h - text generation and choice scoring on the CPU -*- C++ -*-===//
// Autoregressive decoding of a language model directory: a Decoder feeds
// tokens and returns next-token logits (full recompute, the graph's own
// past_key_values, or the step derived by wq-derive-kv-cache), a seeded
// sampler picks tokens, and multiple-choice scoring sums continuation
// log-likelihoods the way lm-evaluation-harness does.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_RUNTIME_GENERATE_H
#define QUANT_MLIR_RUNTIME_GENERATE_H

#include "quant-mlir/Runtime/CPURunner.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace quant_mlir {

/// How a Decoder keeps its context between steps.
enum class CacheMode {
  Auto,      ///< past inputs if the graph has them, else a derived cache,
             ///< else (pass refused) recompute
  Recompute, ///< run the full graph on the whole context every step
  Past,      ///< the graph's own past_key_values.N.* / present.N.* (concat)
  Derived,   ///< the wq-derive-kv-cache step with a preallocated cache
};

struct DecoderOptions {
  std::string func;        ///< entry function (empty: the only public one)
  CacheMode mode = CacheMode::Auto;
  int64_t maxSeqLen = 512; ///< context limit (the derived cache's size)
  bool warn = true;        ///< note on stderr when Auto falls back
  /// Keep the full-sequence function next to a derived step (allLogits);
  /// without it only the step is compiled (half the JIT time).
  bool fullGraph = true;
  /// Lowering and JIT settings (kernel family, host target, ...).
  CPUCompileOptions compile;
};

/// A model that consumes tokens one chunk at a time and returns the logits
/// after the chunk's last token.
class Decoder {
public:
  virtual ~Decoder();
  /// Compiles the model (takes the parsed model.mlir of `modelDir`).
  static llvm::Expected<std::unique_ptr<Decoder>>
  open(mlir::OwningOpRef<mlir::ModuleOp> module, llvm::StringRef modelDir,
       const DecoderOptions &options);

  /// Appends `tokens` to the context; returns the logits [vocab] of the last
  /// one. Error when the context would exceed maxSeqLen.
  virtual llvm::Expected<std::vector<float>>
  feed(llvm::ArrayRef<int64_t> tokens) = 0;
  /// Logits [n, vocab] of every position of `tokens` as one fresh sequence
  /// (the full-sequence graph; the context is left empty afterwards).
  virtual llvm::Expected<std::vector<float>>
  allLogits(llvm::ArrayRef<int64_t> tokens) = 0;
  /// Empties the context.
  virtual void reset() = 0;
  virtual int64_t contextLength() const = 0;
  int64_t vocabSize() const { return vocab; }
  int64_t maxSeqLen() const { return maxLen; }
  /// "recompute", "past" or "derived".
  virtual llvm::StringRef modeName() const = 0;

protected:
  int64_t vocab = 0;
  int64_t maxLen = 0;
};

struct SamplingOptions {
  double temperature = 0; ///< 0: greedy (argmax, lowest id on ties)
  double topP = 1;        ///< nucleus: smallest set with mass >= topP
  int64_t topK = 0;       ///< 0: no limit
  uint64_t seed = 0;
};

/// Seeded token sampler; the same seed gives the same tokens on every
/// platform (std::mt19937_64 and our own uniform mapping).
class Sampler {
public:
  explicit Sampler(const SamplingOptions &options);
  int64_t next(llvm::ArrayRef<float> logits);

private:
  SamplingOptions options;
  std::mt19937_64 rng;
};

struct GenerateOptions {
  int64_t maxNewTokens = 64;
  int64_t eosId = -1; ///< stop after emitting it (-1: never)
  SamplingOptions sampling;
};

struct GenerateResult {
  std::vector<int64_t> ids;         ///< generated tokens (without prompt)
  double timeToFirstToken = 0;      ///< seconds: prompt feed + first sample
  std::vector<double> tokenSeconds; ///< latency of each later token
  double decodeCpuSeconds = 0;      ///< process CPU time of the later tokens
  bool stoppedAtEos = false;
  bool stoppedAtMaxLen = false;
};

/// Feeds `prompt`, then samples up to maxNewTokens, calling `onToken` with
/// each new token as soon as it is chosen.
llvm::Expected<GenerateResult>
generate(Decoder &decoder, llvm::ArrayRef<int64_t> prompt,
         const GenerateOptions &options,
         llvm::function_ref<void(int64_t)> onToken = nullptr);

/// Share of the n-grams of `ids` that occurred earlier in `ids` (0 when
/// there are fewer than n + 1 tokens).
double repetitionRate(llvm::ArrayRef<int64_t> ids, int64_t n = 4);

/// The p-quantile (0..1) of `values`, linear interpolation (numpy default).
double quantile(std::vector<double> values, double p);

/// Sum of log p(continuation[i] | context, continuation[:i]) and whether
/// every continuation token is the argmax (lm-eval's `is_greedy`).
struct ContinuationScore {
  double logLikelihood = 0;
  bool greedy = true;
};
llvm::Expected<ContinuationScore>
scoreContinuation(Decoder &decoder, llvm::ArrayRef<int64_t> context,
                  llvm::ArrayRef<int64_t> continuation);

/// Max |logit difference| between feeding `tokens` one at a time through
/// the decoder's cache and the full-sequence graph on all of them, over
/// every position.
llvm::Expected<double> compareWithRecompute(Decoder &decoder,
                                            llvm::ArrayRef<int64_t> tokens);

} // namespace quant_mlir

#endif // QUANT_MLIR_RUNTIME_GENERATE_H
