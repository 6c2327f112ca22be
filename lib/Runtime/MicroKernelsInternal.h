//===- MicroKernelsInternal.h - shared by the micro-kernel builders -*- C++ -*-===//
// What MicroKernels.cpp and QDotMicroKernel.cpp both use: index arithmetic
// at a builder and the integer-dot kernels' symbol names.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_LIB_RUNTIME_MICROKERNELSINTERNAL_H
#define QUANT_MLIR_LIB_RUNTIME_MICROKERNELSINTERNAL_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Builders.h"

#include <cstdint>
#include <string>

namespace quant_mlir::detail {
/// The index constants and arithmetic every kernel builder needs, at one
/// builder and location (a loop body has its own).
struct IndexMath {
  mlir::OpBuilder &b;
  mlir::Location loc;
  mlir::Value cst(int64_t v) const {
    return mlir::arith::ConstantIndexOp::create(b, loc, v);
  }
  mlir::Value add(mlir::Value x, mlir::Value y) const {
    return mlir::arith::AddIOp::create(b, loc, x, y);
  }
  mlir::Value mul(mlir::Value x, mlir::Value y) const {
    return mlir::arith::MulIOp::create(b, loc, x, y);
  }
};

/// The arguments of a packed decode GEMV kernel (kernels::QGemvMicroKernel)
/// as created by createQGemvFunc, the builder inside its entry block.
struct QGemvArgs {
  mlir::Value q, s, nz, x, xs, y, ldq, ldx, groups, wpg, pf;
};
/// Adds `func.func @name(memref<?xi32> q, memref<?xf32> s, nz, memref<?x
/// xElement> x, memref<?xf32> xs, y, index ldq, ldx, groups, wpg, pf)` at
/// the end of `module` and sets `b` to the start of its body.
QGemvArgs createQGemvFunc(mlir::OpBuilder &b, mlir::ModuleOp module,
                          llvm::StringRef name, mlir::Type xElement);

/// The symbol of the integer-dot decode GEMV for bits, rows and columns.
std::string qdotName(unsigned bits, int64_t rows, int64_t cols);
} // namespace quant_mlir::detail

#endif // QUANT_MLIR_LIB_RUNTIME_MICROKERNELSINTERNAL_H
