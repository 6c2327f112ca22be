//===- WQBuilders.h - IR the wq passes and importers both build --*- C++ -*-===//
// Small IR constructions that more than one layer creates the same way (the
// AWQ pass and the checkpoint importer), so both produce one form.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_DIALECT_WQ_IR_WQBUILDERS_H
#define QUANT_MLIR_DIALECT_WQ_IR_WQBUILDERS_H

#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringRef.h"

namespace quant_mlir::wq {

/// AutoAWQ's ScaledActivation (awq/modules/act.py: act(x) / scales): `input`
/// divided along its last dimension by the archive tensor `scaleName` [K]
/// (a wq.weight of the input's element type), as one linalg.generic built at
/// `b`'s insertion point. Returns the quotient; the caller rewires readers.
mlir::Value buildActivationScale(mlir::OpBuilder &b, mlir::Location loc,
                                 mlir::Value input, llvm::StringRef scaleName);

} // namespace quant_mlir::wq

#endif // QUANT_MLIR_DIALECT_WQ_IR_WQBUILDERS_H
