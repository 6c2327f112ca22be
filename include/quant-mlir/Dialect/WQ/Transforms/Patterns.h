//===- Patterns.h - reusable wq rewrite patterns -----------------*- C++ -*-===//
// Patterns shared between wq passes and the lowerings out of wq.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_DIALECT_WQ_TRANSFORMS_PATTERNS_H
#define QUANT_MLIR_DIALECT_WQ_TRANSFORMS_PATTERNS_H

#include "mlir/IR/PatternMatch.h"

namespace quant_mlir::wq {
/// wq.quantized_linear -> wq.linear(wq.dequantize(...)).
void populateExpandQuantizedLinearPatterns(mlir::RewritePatternSet &patterns);
} // namespace quant_mlir::wq

#endif // QUANT_MLIR_DIALECT_WQ_TRANSFORMS_PATTERNS_H
