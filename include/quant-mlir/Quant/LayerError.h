//===- LayerError.h - relative errors of a quantized layer -------*- C++ -*-===//
// The per-layer error measures of the quantization report.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_QUANT_LAYERERROR_H
#define QUANT_MLIR_QUANT_LAYERERROR_H

#include "llvm/ADT/ArrayRef.h"

#include <cstdint>

namespace quant_mlir::quant {

/// Relative errors of one layer: ||dW||_F / ||W||_F and, given H, the GPTQ
/// objective tr(dW H dW^T) / tr(W H W^T) (arXiv 2210.17323, eq. 1); -1 when
/// there is no H.
struct LayerError {
  double weight = 0, output = -1;
};

/// The report's output measure from its two traces: error / reference, 0
/// when the reference is 0.
inline double relativeOutputError(double error, double reference) {
  return reference > 0 ? error / reference : 0;
}

/// `w` and `wq` are [N][K] row-major, `h` is [K][K] symmetric or empty. The
/// output measure is one dsymm ([dW; W] H, 2N x K x K multiply-adds in BLAS)
/// and two dot products; without `h` only O(N K) sums. GPTQ computes its own
/// output error for a fraction of that (GPTQOutputError).
LayerError measureLayerError(llvm::ArrayRef<float> w, llvm::ArrayRef<float> wq,
                             int64_t n, int64_t k, llvm::ArrayRef<double> h);

} // namespace quant_mlir::quant

#endif // QUANT_MLIR_QUANT_LAYERERROR_H
