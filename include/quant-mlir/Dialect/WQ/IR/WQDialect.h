//===- WQDialect.h - the wq dialect ------------------------------*- C++ -*-===//
// Declares the weight-quantization dialect, its attributes and operations.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_DIALECT_WQ_IR_WQDIALECT_H
#define QUANT_MLIR_DIALECT_WQ_IR_WQDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "quant-mlir/Dialect/WQ/IR/WQDialect.h.inc"
#include "quant-mlir/Dialect/WQ/IR/WQEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "quant-mlir/Dialect/WQ/IR/WQAttrs.h.inc"

#define GET_OP_CLASSES
#include "quant-mlir/Dialect/WQ/IR/WQOps.h.inc"

namespace quant_mlir::wq {

/// Checks the shapes and element types of packed codes, scales, zeros and
/// g_idx against `scheme` and `packing` for a weight of K inputs and N
/// outputs. Shared by wq.dequantize, wq.quantized_linear and the passes that
/// create them.
mlir::LogicalResult
verifyPackedWeight(llvm::function_ref<mlir::InFlightDiagnostic()> emitError,
                   SchemeAttr scheme, Packing packing, int64_t k, int64_t n,
                   mlir::RankedTensorType codes, mlir::RankedTensorType scales,
                   mlir::RankedTensorType zeros, mlir::RankedTensorType gIdx);

/// The archive file named by the module enclosing `op`, or an empty string.
llvm::StringRef getArchivePath(mlir::Operation *op);

} // namespace quant_mlir::wq

#endif // QUANT_MLIR_DIALECT_WQ_IR_WQDIALECT_H
