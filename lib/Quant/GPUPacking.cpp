//===- GPUPacking.cpp - gptq <-> gpu_v4 repacking ----------------------------===//
// Moved from lib/Conversion/WQToGPU: the Dialect layer (wq-pack) uses it, and
// numerics belong in lib/Quant.

#include "quant-mlir/Quant/GPUPacking.h"

#include <cassert>

using namespace quant_mlir::gpupack;

std::string quant_mlir::gpupack::checkGPUV4(unsigned bits, int64_t k,
                                            int64_t n) {
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
    return "gpu_v4 holds 2, 3, 4 or 8-bit codes, got " + std::to_string(bits);
  if (k <= 0 || n <= 0)
    return "K and N must be positive";
  if ((k * bits) % 128 != 0)
    return "K * bits = " + std::to_string(k * bits) +
           " is not a multiple of 128 (one 128-bit chunk per column)";
  return {};
}

namespace {
/// Moves the fields of a word between stream order (code c at field c) and
/// the interleaved order; `toGPU` selects the direction.
uint32_t permuteFields(uint32_t word, unsigned bits, bool toGPU) {
  if (32 % bits != 0)
    return word; // 3-bit: the stream is kept as is
  unsigned per = 32 / bits;
  uint32_t mask = (uint32_t(1) << bits) - 1, out = 0;
  for (unsigned c = 0; c < per; ++c) {
    unsigned from = toGPU ? c : gpuV4Field(bits, c);
    unsigned to = toGPU ? gpuV4Field(bits, c) : c;
    out |= ((word >> (from * bits)) & mask) << (to * bits);
  }
  return out;
}
} // namespace

std::vector<int32_t> quant_mlir::gpupack::gptqToGPUV4(const int32_t *gptq,
                                                      unsigned bits, int64_t k,
                                                      int64_t n) {
  assert(checkGPUV4(bits, k, n).empty() && "unsupported gpu_v4 shape");
  int64_t words = k * bits / 32;
  std::vector<int32_t> out(words * n);
  for (int64_t w = 0; w < words; ++w)
    for (int64_t c = 0; c < n; ++c)
      out[(w / 4) * 4 * n + 4 * c + w % 4] = int32_t(
          permuteFields(uint32_t(gptq[w * n + c]), bits, /*toGPU=*/true));
  return out;
}

std::vector<int32_t> quant_mlir::gpupack::gpuV4ToGPTQ(const int32_t *gpuV4,
                                                      unsigned bits, int64_t k,
                                                      int64_t n) {
  assert(checkGPUV4(bits, k, n).empty() && "unsupported gpu_v4 shape");
  int64_t words = k * bits / 32;
  std::vector<int32_t> out(words * n);
  for (int64_t w = 0; w < words; ++w)
    for (int64_t c = 0; c < n; ++c)
      out[w * n + c] = int32_t(permuteFields(
          uint32_t(gpuV4[(w / 4) * 4 * n + 4 * c + w % 4]), bits, false));
  return out;
}

uint32_t quant_mlir::gpupack::gpuV4Code(const int32_t *gpuV4, unsigned bits,
                                        int64_t k, int64_t n, int64_t kIdx,
                                        int64_t nIdx) {
  auto word = [&](int64_t w) -> uint64_t {
    if (w >= k * bits / 32)
      return 0;
    return uint32_t(gpuV4[(w / 4) * 4 * n + 4 * nIdx + w % 4]);
  };
  uint32_t mask = (uint32_t(1) << bits) - 1;
  if (32 % bits != 0) {
    int64_t pos = kIdx * bits;
    uint64_t v = word(pos / 32) | (word(pos / 32 + 1) << 32);
    return uint32_t(v >> (pos % 32)) & mask;
  }
  unsigned per = 32 / bits;
  return uint32_t(word(kIdx / per) >> (gpuV4Field(bits, kIdx % per) * bits)) &
         mask;
}
