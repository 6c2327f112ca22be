//===- GPUPacking.h - the gpu_v4 packed-code layout --------------*- C++ -*-===//
// Pure functions on int32 buffers converting between the canonical `gptq`
// code layout and the `gpu_v4` layout read by the NVPTX kernels
// (docs/codegen.md). No MLIR dependency: used by `wq-pack`, the GPU runner's
// tests and the benchmark.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_QUANT_GPUPACKING_H
#define QUANT_MLIR_QUANT_GPUPACKING_H

#include <cstdint>
#include <string>
#include <vector>

namespace quant_mlir::gpupack {

/// Empty if a K x N weight of `bits`-bit codes can use gpu_v4, else why not.
/// Requires bits in {2, 3, 4, 8} and K * bits a multiple of 128.
std::string checkGPUV4(unsigned bits, int64_t k, int64_t n);

/// Position (field index) of code `c` (0 <= c < 32 / bits) inside a gpu_v4
/// word for bits in {2, 4, 8}: codes 0,2,4,.. fill the low half-word and
/// 1,3,5,.. the high one, so field(c) = (c % 2) * (16 / bits) + c / 2.
inline unsigned gpuV4Field(unsigned bits, unsigned c) {
  return (c % 2) * (16 / bits) + c / 2;
}

/// gptq codes [K*bits/32, N] (row-major int32) -> gpu_v4 codes
/// [K*bits/128, 4*N]. Element [r, 4n + j] is gptq word 4r + j of column n,
/// with its fields interleaved by gpuV4Field for 2/4/8 bits (3-bit words
/// are copied: the plain bit stream). checkGPUV4 must be empty.
std::vector<int32_t> gptqToGPUV4(const int32_t *gptq, unsigned bits,
                                 int64_t k, int64_t n);
/// The inverse of gptqToGPUV4.
std::vector<int32_t> gpuV4ToGPTQ(const int32_t *gpuV4, unsigned bits,
                                 int64_t k, int64_t n);

/// Code q[kIdx, nIdx] of a gpu_v4 buffer (for tests and host references).
uint32_t gpuV4Code(const int32_t *gpuV4, unsigned bits, int64_t k, int64_t n,
                   int64_t kIdx, int64_t nIdx);

} // namespace quant_mlir::gpupack

#endif // QUANT_MLIR_QUANT_GPUPACKING_H
