//===- Symbolic.cpp - shape arithmetic on symbolic integers --------------===//
// SymInt folding (constants stay constants, dynamic values become index
// arith) and the dims of tensors as SymInts.
//===----------------------------------------------------------------------===//

#include "Importer.h"

#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Path.h"

#include <cstring>
#include <limits>

using namespace mlir;
using namespace llvm;

namespace quant_mlir::onnx_import {
//===----------------------------------------------------------------------===//
// Symbolic integers
//===----------------------------------------------------------------------===//

// Folded constants wrap as the index arithmetic they stand for would (two's
// complement, as arith.addi/muli on i64): a corrupt model's huge dims then
// reach the shape checks as wrong numbers instead of undefined behaviour.
static int64_t wrapAdd(int64_t a, int64_t b) {
  return int64_t(uint64_t(a) + uint64_t(b));
}
static int64_t wrapSub(int64_t a, int64_t b) {
  return int64_t(uint64_t(a) - uint64_t(b));
}
static int64_t wrapMul(int64_t a, int64_t b) {
  return int64_t(uint64_t(a) * uint64_t(b));
}
/// INT64_MIN / -1 is the one quotient that overflows; it wraps to INT64_MIN
/// (and its remainder is 0).
static bool divOverflows(int64_t a, int64_t b) {
  return a == std::numeric_limits<int64_t>::min() && b == -1;
}

Value Importer::indexConst(int64_t c) {
  return arith::ConstantIndexOp::create(b, loc, c);
}

Value Importer::toIndex(const SymInt &s) {
  if (s.isConst())
    return indexConst(s.c);
  if (s.v.getType().isIndex())
    return s.v;
  return arith::IndexCastUIOp::create(b, loc, b.getIndexType(), s.v);
}

Value Importer::toInt(const SymInt &s, Type intType) {
  if (s.isConst())
    return arith::ConstantIntOp::create(b, loc, intType,
                                        intType.isInteger(1) ? s.c != 0 : s.c);
  if (s.v.getType() == intType)
    return s.v;
  if (s.v.getType().isIndex()) {
    if (intType.isInteger(1))
      return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne, s.v,
                                   indexConst(0));
    return arith::IndexCastOp::create(b, loc, intType, s.v);
  }
  // An i1 value to a wider integer.
  return arith::ExtUIOp::create(b, loc, intType, s.v);
}

bool Importer::sameSym(const SymInt &a, const SymInt &b) {
  if (a.isConst() != b.isConst())
    return false;
  return a.isConst() ? a.c == b.c : a.v == b.v;
}

SymInt Importer::sAdd(SymInt x, SymInt y) {
  if (x.isConst() && y.isConst())
    return SymInt::cst(wrapAdd(x.c, y.c));
  if (x.isConst() && x.c == 0)
    return y;
  if (y.isConst() && y.c == 0)
    return x;
  Value v = arith::AddIOp::create(b, loc, toIndex(x), toIndex(y));
  return SymInt{0, v, x.nonNeg && y.nonNeg};
}

SymInt Importer::sSub(SymInt x, SymInt y) {
  if (x.isConst() && y.isConst())
    return SymInt::cst(wrapSub(x.c, y.c));
  if (y.isConst() && y.c == 0)
    return x;
  if (sameSym(x, y))
    return SymInt::cst(0);
  Value v = arith::SubIOp::create(b, loc, toIndex(x), toIndex(y));
  return SymInt{0, v, false};
}

SymInt Importer::sMul(SymInt x, SymInt y) {
  if (x.isConst() && y.isConst())
    return SymInt::cst(wrapMul(x.c, y.c));
  if ((x.isConst() && x.c == 0) || (y.isConst() && y.c == 0))
    return SymInt::cst(0);
  if (x.isConst() && x.c == 1)
    return y;
  if (y.isConst() && y.c == 1)
    return x;
  Value v = arith::MulIOp::create(b, loc, toIndex(x), toIndex(y));
  return SymInt{0, v, x.nonNeg && y.nonNeg};
}

SymInt Importer::sDiv(SymInt x, SymInt y) {
  if (x.isConst() && y.isConst())
    return SymInt::cst(y.c == 0               ? 0
                       : divOverflows(x.c, y.c) ? x.c
                                                : x.c / y.c);
  if (y.isConst() && y.c == 1)
    return x;
  if (sameSym(x, y))
    return SymInt::cst(1);
  Value v = arith::DivSIOp::create(b, loc, toIndex(x), toIndex(y));
  return SymInt{0, v, x.nonNeg && y.nonNeg};
}

SymInt Importer::sMod(SymInt x, SymInt y) {
  if (x.isConst() && y.isConst()) {
    if (y.c == 0 || divOverflows(x.c, y.c))
      return SymInt::cst(0);
    int64_t r = x.c % y.c;
    if (r != 0 && ((r < 0) != (y.c < 0))) // sign of the divisor, like numpy
      r += y.c;
    return SymInt::cst(r);
  }
  if (y.isConst() && (y.c == 1 || y.c == -1))
    return SymInt::cst(0);
  Value v = arith::RemSIOp::create(b, loc, toIndex(x), toIndex(y));
  return SymInt{0, v, x.nonNeg && y.nonNeg};
}

SymInt Importer::sCeilDiv(SymInt x, SymInt y) {
  if (x.isConst() && y.isConst()) {
    if (y.c == 0)
      return SymInt::cst(0);
    if (divOverflows(x.c, y.c))
      return SymInt::cst(x.c);
    int64_t q = x.c / y.c, r = x.c % y.c;
    if (r != 0 && ((r > 0) == (y.c > 0)))
      ++q;
    return SymInt::cst(q);
  }
  if (y.isConst() && y.c == 1)
    return x;
  Value v = arith::CeilDivSIOp::create(b, loc, toIndex(x), toIndex(y));
  return SymInt{0, v, x.nonNeg && y.nonNeg};
}

SymInt Importer::sMax(SymInt x, SymInt y) {
  if (x.isConst() && y.isConst())
    return SymInt::cst(std::max(x.c, y.c));
  if (sameSym(x, y))
    return x;
  if (x.nonNeg && y.isConst() && y.c <= 0)
    return x;
  if (y.nonNeg && x.isConst() && x.c <= 0)
    return y;
  Value v = arith::MaxSIOp::create(b, loc, toIndex(x), toIndex(y));
  return SymInt{0, v, x.nonNeg || y.nonNeg};
}

SymInt Importer::sMin(SymInt x, SymInt y) {
  if (x.isConst() && y.isConst())
    return SymInt::cst(std::min(x.c, y.c));
  if (sameSym(x, y))
    return x;
  Value v = arith::MinSIOp::create(b, loc, toIndex(x), toIndex(y));
  return SymInt{0, v, x.nonNeg && y.nonNeg};
}

SymInt Importer::sCmp(arith::CmpIPredicate pred, SymInt x, SymInt y) {
  using P = arith::CmpIPredicate;
  auto eval = [&](int64_t l, int64_t r) {
    switch (pred) {
    case P::eq:
      return l == r;
    case P::ne:
      return l != r;
    case P::slt:
      return l < r;
    case P::sle:
      return l <= r;
    case P::sgt:
      return l > r;
    case P::sge:
      return l >= r;
    default:
      return false;
    }
  };
  if (x.isConst() && y.isConst())
    return SymInt::cst(eval(x.c, y.c));
  if (sameSym(x, y))
    return SymInt::cst(eval(0, 0));
  // A tensor dim is never negative: `dim == -1` (torch's "infer this dim"
  // test in Expand/Reshape shape arithmetic) folds to false.
  if (x.nonNeg && y.isConst() && y.c < 0)
    return SymInt::cst(eval(0, -1));
  if (y.nonNeg && x.isConst() && x.c < 0)
    return SymInt::cst(eval(-1, 0));
  Value v = arith::CmpIOp::create(b, loc, pred, toIndex(x), toIndex(y));
  return SymInt{0, v, true};
}

SymInt Importer::sSelect(SymInt c, SymInt x, SymInt y) {
  if (c.isConst())
    return c.c ? x : y;
  if (sameSym(x, y))
    return x;
  Value cond = c.v.getType().isInteger(1) ? c.v : toInt(c, b.getI1Type());
  Value v = arith::SelectOp::create(b, loc, cond, toIndex(x), toIndex(y));
  return SymInt{0, v, x.nonNeg && y.nonNeg};
}

//===----------------------------------------------------------------------===//
// Shapes
//===----------------------------------------------------------------------===//

SymInt Importer::dimOf(Value t, unsigned i) {
  auto type = cast<RankedTensorType>(t.getType());
  if (!type.isDynamicDim(i))
    return SymInt::cst(type.getDimSize(i));
  auto it = dimCache.find({t, i});
  if (it != dimCache.end())
    return it->second;
  Value d = tensor::DimOp::create(b, loc, t, int64_t(i));
  SymInt s{0, d, true};
  dimCache[{t, i}] = s;
  return s;
}

SmallVector<SymInt> Importer::dimsOf(Value t) {
  SmallVector<SymInt> dims;
  for (unsigned i = 0, e = cast<RankedTensorType>(t.getType()).getRank();
       i < e; ++i)
    dims.push_back(dimOf(t, i));
  return dims;
}

SmallVector<SymInt> Importer::dimsOf(OValue &v) {
  if (v.tensor)
    return dimsOf(v.tensor);
  // Weights and symbolic values have static shapes.
  SmallVector<SymInt> dims;
  for (int64_t d : v.type.getShape())
    dims.push_back(SymInt::cst(d));
  return dims;
}

void Importer::setDims(Value t, ArrayRef<SymInt> dims) {
  auto type = cast<RankedTensorType>(t.getType());
  for (auto [i, d] : llvm::enumerate(dims))
    if (type.isDynamicDim(i) && !d.isConst())
      dimCache[{t, unsigned(i)}] = d;
}

RankedTensorType Importer::typeFor(ArrayRef<SymInt> dims, Type elem) {
  SmallVector<int64_t> shape;
  for (const SymInt &d : dims)
    shape.push_back(d.isConst() ? d.c : ShapedType::kDynamic);
  return RankedTensorType::get(shape, elem);
}

SmallVector<OpFoldResult> Importer::foldResults(ArrayRef<SymInt> s) {
  SmallVector<OpFoldResult> out;
  for (const SymInt &d : s)
    out.push_back(d.isConst() ? OpFoldResult(b.getIndexAttr(d.c))
                              : OpFoldResult(toIndex(d)));
  return out;
}

Value Importer::emptyTensor(ArrayRef<SymInt> dims, Type elem) {
  Value e = tensor::EmptyOp::create(b, loc, foldResults(dims), elem);
  setDims(e, dims);
  return e;
}

} // namespace quant_mlir::onnx_import
