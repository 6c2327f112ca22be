//===- tokens-fuzzer.cpp - libFuzzer target: token-data readers -------------===//
// loadTokens picks the format by extension, so the first input byte chooses
// .npy, .jsonl or .txt; the rest is the file. Successful loads then go
// through checkVocabulary and sampleWindows with sizes from the data.

#include "FuzzFile.h"

#include "quant-mlir/Data/TokenData.h"

using namespace quant_mlir;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  static const char *const kNames[] = {"tokens.npy", "tokens.jsonl",
                                       "tokens.txt"};
  const char *name = kNames[data[0] % 3];
  std::string path = fuzz::writeInput(name, data + 1, size - 1);
  auto tokens = data::loadTokens(path, /*tokenizer=*/nullptr);
  if (!tokens) {
    llvm::consumeError(tokens.takeError());
    return 0;
  }
  int64_t n = int64_t(tokens->size());
  // Sizes an attacker controls through the data: the first ids.
  int64_t vocab = (*tokens)[0];
  int64_t seqLen = n > 1 ? (*tokens)[1] : 1;
  int64_t count = n > 2 ? (*tokens)[2] : 1;
  if (llvm::Error err = data::checkVocabulary(*tokens, vocab, path))
    llvm::consumeError(std::move(err));
  auto starts = data::sampleWindows(n, seqLen, count, /*seed=*/0, path);
  if (!starts) {
    llvm::consumeError(starts.takeError());
    return 0;
  }
  for (int64_t s : *starts)
    if (s < 0 || s + seqLen > n)
      __builtin_trap(); // every window must lie inside the stream
  return 0;
}
