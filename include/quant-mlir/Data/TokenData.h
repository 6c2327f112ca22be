//===- TokenData.h - tokenizers and token-id datasets ------------*- C++ -*-===//
// Evaluation and calibration data: text through the model's tokenizer
// (sentencepiece or llama2.c), or token ids from jsonl, txt or npy files.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_DATA_TOKENDATA_H
#define QUANT_MLIR_DATA_TOKENDATA_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace quant_mlir::data {

class Tokenizer {
public:
  virtual ~Tokenizer();
  /// A sentencepiece `tokenizer.model`, or a llama2.c `tokenizer.bin`
  /// (detected by content).
  static llvm::Expected<std::unique_ptr<Tokenizer>> open(llvm::StringRef path);
  virtual llvm::Expected<std::vector<int64_t>> encode(llvm::StringRef text,
                                                      bool addBos) const = 0;
  /// The text of `ids` (special tokens dropped); error for ids outside the
  /// vocabulary.
  virtual llvm::Expected<std::string>
  decode(llvm::ArrayRef<int64_t> ids) const = 0;
  virtual int64_t vocabSize() const = 0;
  virtual int64_t bosId() const = 0;
  virtual int64_t eosId() const = 0;
};

/// Loads a token stream. `.npy`: an integer array, flattened. `.jsonl`: per
/// line an array of ids, or an object with "input_ids" or "text". Anything
/// else: whitespace-separated integers, or plain text when `tokenizer` is
/// given and the file is not all integers. Text documents (jsonl "text"
/// lines, or a whole text file) are encoded with a BOS each.
llvm::Expected<std::vector<int64_t>> loadTokens(llvm::StringRef path,
                                                const Tokenizer *tokenizer);

/// Error (naming the file and position) if an id is negative or >= vocab.
llvm::Error checkVocabulary(llvm::ArrayRef<int64_t> tokens, int64_t vocab,
                            llvm::StringRef path);

/// Start offsets of `count` calibration samples of `seqLen` tokens drawn
/// uniformly from the stream with a seeded generator (std::mt19937_64, so the
/// choice is reproducible across platforms); error when the stream is shorter
/// than one sample, when `count` exceeds its distinct windows, or when
/// count * seqLen exceeds kMaxSampledTokens.
constexpr int64_t kMaxSampledTokens = int64_t(1) << 31;
llvm::Expected<std::vector<int64_t>>
sampleWindows(int64_t numTokens, int64_t seqLen, int64_t count, uint64_t seed,
              llvm::StringRef path);

} // namespace quant_mlir::data

#endif // QUANT_MLIR_DATA_TOKENDATA_H
