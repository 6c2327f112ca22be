//===- BLASKernels.h - Make OpenBLAS use this CPU's kernels -----*- C++ -*-===//
//
// OpenBLAS built with DYNAMIC_ARCH (Debian's) picks its kernels from the CPU
// model number when it loads. A CPU newer than the library (OpenBLAS 0.3.21
// in Debian 12 knows no Xeon after Sapphire Rapids: family 6 model 207,
// Emerald Rapids, is one) gets its SSE3 "Prescott" kernels, about half the
// speed of the AVX-512 ones on the same core for every GEMM, Hessian and
// Cholesky this project runs.
//
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_QUANT_BLASKERNELS_H
#define QUANT_MLIR_QUANT_BLASKERNELS_H

#include <string>

namespace quant_mlir::quant {

/// When OpenBLAS fell back to its Prescott kernels on a CPU with AVX-512
/// (SkylakeX kernels) or AVX2 + FMA (Haswell kernels), re-runs its kernel
/// selection with that core type. A core type the user chose with OpenBLAS's
/// own OPENBLAS_CORETYPE is kept. Call once, before the first BLAS call;
/// later calls do nothing. Returns the core OpenBLAS uses afterwards.
std::string configureBLASKernels();

} // namespace quant_mlir::quant

#endif // QUANT_MLIR_QUANT_BLASKERNELS_H
