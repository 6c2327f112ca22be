//===- InitAllDialects.h - the dialects every quant-mlir tool loads -*- C++ -*-===//
// Upstream dialects and extensions plus `wq`, in one place for the tools and
// tests that parse or build quant-mlir IR.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_INITALLDIALECTS_H
#define QUANT_MLIR_INITALLDIALECTS_H

#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"

namespace quant_mlir {
inline void registerAllDialects(mlir::DialectRegistry &registry) {
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  registry.insert<wq::WQDialect>();
}
} // namespace quant_mlir

#endif // QUANT_MLIR_INITALLDIALECTS_H
