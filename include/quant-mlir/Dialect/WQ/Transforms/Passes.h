//===- Passes.h - wq transformation passes -----------------------*- C++ -*-===//
// Declarations and registration of the passes in Passes.td.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_DIALECT_WQ_TRANSFORMS_PASSES_H
#define QUANT_MLIR_DIALECT_WQ_TRANSFORMS_PASSES_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Pass/Pass.h"

namespace quant_mlir::wq {

#define GEN_PASS_DECL
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h.inc"

} // namespace quant_mlir::wq

#endif // QUANT_MLIR_DIALECT_WQ_TRANSFORMS_PASSES_H
