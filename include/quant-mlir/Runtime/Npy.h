//===- Npy.h - numpy .npy files as host tensors -------------------*- C++ -*-===//
// The exchange format of quant-run's raw runs (--input NAME=FILE.npy,
// --outputs DIR) with the numpy/torch references.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_RUNTIME_NPY_H
#define QUANT_MLIR_RUNTIME_NPY_H

#include "quant-mlir/Runtime/CPURunner.h"

namespace quant_mlir {

/// Reads a C-order .npy of f64/f32/f16/i64/i32/i8/u8/bool.
llvm::Expected<HostTensor> readNpy(llvm::StringRef path);
/// Writes `t` as a .npy (removed again if writing fails).
llvm::Error writeNpy(llvm::StringRef path, const HostTensor &t);

} // namespace quant_mlir

#endif // QUANT_MLIR_RUNTIME_NPY_H
