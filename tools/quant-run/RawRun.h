//===- RawRun.h - quant-run's raw mode ---------------------------*- C++ -*-===//
#ifndef QUANT_MLIR_TOOLS_QUANT_RUN_RAWRUN_H
#define QUANT_MLIR_TOOLS_QUANT_RUN_RAWRUN_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/Support/Error.h"

#include <string>

namespace quant_mlir {
/// Runs entry `func` (empty: the only one) on the named .npy inputs
/// ("NAME=FILE.npy") and writes every output as `outDir/NAME.npy`.
llvm::Error runRaw(mlir::OwningOpRef<mlir::ModuleOp> module,
                   llvm::StringRef modelDir, llvm::StringRef func,
                   llvm::ArrayRef<std::string> inputSpecs,
                   llvm::StringRef outDir);
} // namespace quant_mlir

#endif
