//===- Model.h - typed driver API: run a model directory ---------*- C++ -*-===//
// A loaded model directory (model.mlir + its weight archive) and what the
// tools and the Python package do with it: perplexity over token windows,
// logits of a batch, and generation with a KV cache. The JIT-compiled forms
// (the scoring entry, the decoder) are built on first use and kept.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_DRIVER_MODEL_H
#define QUANT_MLIR_DRIVER_MODEL_H

#include "quant-mlir/Runtime/CPURunner.h"
#include "quant-mlir/Runtime/Generate.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace quant_mlir::data {
class Tokenizer;
} // namespace quant_mlir::data

namespace quant_mlir::driver {

struct ModelOptions {
  /// sentencepiece tokenizer.model or llama2.c tokenizer.bin ("": none; text
  /// input is then an error).
  std::string tokenizer;
  /// Entry function ("": the only public one).
  std::string func;
  /// The kernels quant-run uses by default (the generated vector
  /// micro-kernels), so Python and the tool give the same numbers.
  CPUCompileOptions cpu = [] {
    CPUCompileOptions o;
    o.lowering.kernels = CPUKernels::Vector;
    return o;
  }();
};

struct PerplexityResult {
  int64_t windows = 0, predicted = 0, seqLen = 0;
  double meanNLL = 0, perplexity = 0;
  double tokensPerSecond = 0, compileSeconds = 0, evalSeconds = 0;
};

struct DecodeOptions {
  CacheMode mode = CacheMode::Auto;
  int64_t maxSeqLen = 512;
};

class Model {
public:
  /// Parses `dir`/model.mlir and opens the tokenizer; compiles nothing yet.
  static llvm::Expected<std::unique_ptr<Model>>
  load(llvm::StringRef dir, const ModelOptions &options = {});
  ~Model();

  llvm::StringRef dir() const;
  /// nullptr without one.
  const data::Tokenizer *tokenizer() const;
  /// `text` through the tokenizer (BOS first when `addBos`); error without
  /// a tokenizer.
  llvm::Expected<std::vector<int64_t>> encode(llvm::StringRef text,
                                              bool addBos = true) const;
  /// The vocabulary of the logits (compiles the scoring form).
  llvm::Expected<int64_t> vocabSize();

  /// Mean NLL and perplexity over consecutive windows of `seqLen` tokens
  /// (at most `maxWindows`, 0: all), each scored alone as quant-run does.
  llvm::Expected<PerplexityResult> perplexity(llvm::ArrayRef<int64_t> tokens,
                                              int64_t seqLen,
                                              int64_t maxWindows = 0,
                                              bool quiet = true);
  /// Logits [batch, seq, vocab] of `batch` rows of `seq` ids (row-major).
  llvm::Expected<HostTensor> logits(llvm::ArrayRef<int64_t> ids, int64_t batch,
                                    int64_t seq);
  /// Feeds `prompt` and samples (Generate.h); the decoder for `decode` is
  /// compiled on first use and kept for later calls with the same options.
  llvm::Expected<GenerateResult>
  generate(llvm::ArrayRef<int64_t> prompt, const GenerateOptions &options,
           const DecodeOptions &decode = {},
           llvm::function_ref<void(int64_t)> onToken = nullptr);
  /// The cache mode the last generate() ran with ("" before one).
  llvm::StringRef decoderMode() const;

  struct Impl;

private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl;
};

/// Adds the NLL terms of one window: -log softmax(logits[t])[window[t+1]]
/// for every t but the last, in float64.
void accumulateNLL(llvm::ArrayRef<float> logits, int64_t vocab,
                   llvm::ArrayRef<int64_t> window, double &sum,
                   int64_t &count);

/// The decoded text of `ids` after `prompt`: decode(prompt + ids) minus
/// decode(prompt), so word-initial spaces survive (sentencepiece drops a
/// leading space when a piece is decoded alone).
std::string continuationText(const data::Tokenizer &tokenizer,
                             llvm::ArrayRef<int64_t> prompt,
                             llvm::ArrayRef<int64_t> ids);

} // namespace quant_mlir::driver

#endif // QUANT_MLIR_DRIVER_MODEL_H
