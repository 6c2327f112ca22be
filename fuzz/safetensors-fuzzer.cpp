//===- safetensors-fuzzer.cpp - libFuzzer target: safetensors Reader --------===//
// Reader::open validates header, dtypes, shapes and offsets up front; then
// every accessor must stay inside the file (ASan checks each byte read).

#include "FuzzFile.h"

#include "quant-mlir/Support/SafeTensors.h"

using namespace quant_mlir;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string path = fuzz::writeInput("input.safetensors", data, size);
  auto reader = safetensors::Reader::open(path);
  if (!reader) {
    llvm::consumeError(reader.takeError());
    return 0;
  }
  uint64_t sum = 0;
  for (const safetensors::TensorInfo &t : (*reader)->tensors()) {
    const safetensors::TensorInfo *found = (*reader)->lookup(t.name);
    if (!found || found->name != t.name)
      __builtin_trap(); // lookup must find every listed tensor
    llvm::ArrayRef<uint8_t> bytes = (*reader)->bytes(t);
    if (bytes.size() != t.numBytes() ||
        uint64_t(t.numElements()) * safetensors::dtypeSize(t.dtype) !=
            t.numBytes())
      __builtin_trap();
    for (uint8_t b : bytes)
      sum += b;
  }
  for (const auto &[key, value] : (*reader)->metadata())
    sum += key.size() + value.size();
  volatile uint64_t sink = sum;
  (void)sink;
  return 0;
}
