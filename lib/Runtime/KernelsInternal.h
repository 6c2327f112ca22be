//===- KernelsInternal.h - pieces the BLAS and vector kernels share -*- C++ -*-===//
// Fixed-chunk threading, the gptq block dequantizer and the small-GEMM loop,
// used by Kernels.cpp (OpenBLAS family) and KernelsVector.cpp (generated
// micro-kernels). Not installed; lib/Runtime only.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_LIB_RUNTIME_KERNELSINTERNAL_H
#define QUANT_MLIR_LIB_RUNTIME_KERNELSINTERNAL_H

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include "llvm/ADT/STLFunctionalExtras.h"

extern "C" {
int openblas_get_num_threads(void);
void openblas_set_num_threads(int);
}

namespace quant_mlir::kernels::detail {
using i64 = int64_t;

/// Below this many multiply-adds a plain loop beats any call overhead.
constexpr i64 kSmallGemm = 4096;

/// Columns of C per task. Every GEMM is cut into these fixed column chunks
/// whatever the thread count, and each chunk is computed by one thread in a
/// fixed order, so results are bitwise identical for any thread count
/// (OpenBLAS's own threading picks different code paths for 1 and N
/// threads; calibration statistics must not depend on it).
constexpr i64 kChunkN = 128;

/// Runs `worker` on `threads` - 1 threads of a process-wide pool (started on
/// first use, kept: a thread start costs ~20-40 us, as much as a decode
/// GEMV of a 100M layer; idle workers spin ~300 us before they sleep) and
/// on the calling thread, and returns when all of them have returned. A
/// call from inside a worker function, or while another thread's call
/// runs, runs `worker` on the calling thread alone (WorkerPool.cpp).
void runOnWorkers(int threads, llvm::function_ref<void()> worker);

/// Runs task(chunk) for chunk in [0, chunks) on the BLAS thread count
/// (OPENBLAS_NUM_THREADS / openblas_set_num_threads) with OpenBLAS itself
/// single-threaded meanwhile.
template <typename Task>
void parallelChunks(i64 chunks, i64 work, const Task &task) {
  int threads = openblas_get_num_threads();
  openblas_set_num_threads(1);
  int useThreads = int(std::min<i64>(threads, chunks));
  // Tiny problems are not worth waking a thread.
  if (work < (i64(1) << 21))
    useThreads = 1;
  if (useThreads <= 1) {
    for (i64 c = 0; c < chunks; ++c)
      task(c);
  } else {
    std::atomic<i64> next{0};
    runOnWorkers(useThreads, [&] {
      for (i64 c = next++; c < chunks; c = next++)
        task(c);
    });
  }
  openblas_set_num_threads(threads);
}

/// C[M,N] += A[M,K] * B[K,N], all strided, as a plain loop (tiny GEMMs).
inline void smallGemm(i64 M, i64 N, i64 K, const float *a, i64 sam, i64 sak,
                      const float *b, i64 sbk, i64 sbn, float *c, i64 scm,
                      i64 scn) {
  for (i64 m = 0; m < M; ++m)
    for (i64 n = 0; n < N; ++n) {
      float acc = c[m * scm + n * scn];
      for (i64 k = 0; k < K; ++k)
        acc += a[m * sam + k * sak] * b[k * sbk + n * sbn];
      c[m * scm + n * scn] = acc;
    }
}

/// Dequantizes rows [k0, k0 + kb) and columns [n0, n0 + nc) of W^T ([K, N])
/// from the gptq bit stream: row kk of the block to dst[kk * dstStride ...].
/// zeroRow is scratch of at least nc floats.
void dequantBlock(i64 N, i64 K, unsigned bits, i64 groupSize, i64 groups,
                  const int32_t *codes, const float *scales,
                  const int32_t *zeros, const int32_t *gIdx, i64 k0, i64 kb,
                  i64 n0, i64 nc, float *dst, i64 dstStride,
                  std::vector<float> &zeroRow);

/// The BLAS-family strided GEMM (C += A * B).
void blasGemm(i64 M, i64 N, i64 K, const float *a, i64 sam, i64 sak,
              const float *b, i64 sbk, i64 sbn, float *c, i64 scm, i64 scn);
} // namespace quant_mlir::kernels::detail

#endif // QUANT_MLIR_LIB_RUNTIME_KERNELSINTERNAL_H
