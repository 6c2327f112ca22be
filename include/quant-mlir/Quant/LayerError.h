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

/// `w` and `wq` are [N][K] row-major, `h` is [K][K] symmetric or empty. The
/// output measure is one dsymm ([dW; W] H, 2N x K x K flops in BLAS) and two
/// dot products, so it costs a fraction of the quantization itself.
LayerError measureLayerError(llvm::ArrayRef<float> w, llvm::ArrayRef<float> wq,
                             int64_t n, int64_t k, llvm::ArrayRef<double> h);

} // namespace quant_mlir::quant

#endif // QUANT_MLIR_QUANT_LAYERERROR_H
