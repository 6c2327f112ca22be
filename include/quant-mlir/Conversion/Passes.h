//===- Passes.h - conversion passes ------------------------------*- C++ -*-===//
// Declarations and registration of the lowerings out of the wq dialect.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_CONVERSION_PASSES_H
#define QUANT_MLIR_CONVERSION_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace quant_mlir {

#define GEN_PASS_DECL
#include "quant-mlir/Conversion/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "quant-mlir/Conversion/Passes.h.inc"

} // namespace quant_mlir

#endif // QUANT_MLIR_CONVERSION_PASSES_H
