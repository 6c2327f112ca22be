//===- ReductionOps.cpp - ONNX normalization, reduction and scan operators ===//
// Softmax/LogSoftmax, ReduceMean/Sum/Max, LayerNormalization and CumSum.
//===----------------------------------------------------------------------===//

#include "Importer.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Matchers.h"
#include "llvm/ADT/STLExtras.h"

#include <cmath>

using namespace mlir;
using namespace llvm;

namespace quant_mlir::onnx_import {

using P = arith::CmpIPredicate;


LogicalResult Importer::onSoftmax() {
  StringRef op = node->op_type();
  FailureOr<Value> xv = floatInput(0);
  if (failed(xv))
    return failure();
  std::optional<int64_t> axis = normAxis(attrInt("axis", -1), rankOf(*xv));
  if (!axis)
    return fail("axis out of range");
  FailureOr<Value> sm = emitSoftmax(*xv, *axis);
  if (failed(sm) || op == "Softmax")
    return done(sm);
  return done(emitElementwise(
      {*sm}, elemOf(*sm), [](OpBuilder &nb, Location nl, ArrayRef<Value> a) {
        return math::LogOp::create(nb, nl, a[0]).getResult();
      }));
}

LogicalResult Importer::onReduce() {
  StringRef op = node->op_type();
  FailureOr<Value> xv = inputTensor(0);
  if (failed(xv))
    return failure();
  Value x = *xv;
  int64_t rank = rankOf(x);
  SmallVector<int64_t> axes;
  if (hasInput(1)) {
    FailureOr<SmallVector<int64_t>> a = constInts(1);
    if (failed(a))
      return failure();
    axes = *a;
  } else if (auto a = attrInts("axes")) {
    axes = *a;
  }
  bool keep = attrInt("keepdims", 1) != 0;
  if (axes.empty()) {
    if (attrInt("noop_with_empty_axes", 0))
      return done(x);
    for (int64_t k = 0; k < rank; ++k)
      axes.push_back(k);
  }
  for (int64_t &a : axes) {
    std::optional<int64_t> ax = normAxis(a, rank);
    if (!ax)
      return fail("axis " + Twine(a) + " out of range");
    a = *ax;
  }
  llvm::sort(axes);
  axes.erase(std::unique(axes.begin(), axes.end()), axes.end());
  if (op == "ReduceMean")
    return done(emitMean(x, axes, keep));
  return done(emitReduce(x, axes,
                         op == "ReduceSum" ? ReduceKind::Sum : ReduceKind::Max,
                         keep));
}

LogicalResult Importer::onLayerNormalization() {
  for (int i = 1; i < node->output_size(); ++i)
    if (!node->output(i).empty())
      return fail("the Mean / InvStdDev outputs are not supported");
  FailureOr<Value> xv = floatInput(0), sv = inputTensor(1);
  if (failed(xv) || failed(sv))
    return failure();
  Value x = *xv;
  int64_t rank = rankOf(x);
  std::optional<int64_t> axis = normAxis(attrInt("axis", -1), rank);
  if (!axis)
    return fail("axis out of range");
  double eps = attrFloat("epsilon", 1e-5f);
  Type elem = elemOf(x);
  SmallVector<int64_t> axes;
  for (int64_t k = *axis; k < rank; ++k)
    axes.push_back(k);
  FailureOr<Value> mean = emitMean(x, axes, true);
  if (failed(mean))
    return failure();
  FailureOr<Value> d = emitElementwise(
      {x, *mean}, elem, [](OpBuilder &nb, Location nl, ArrayRef<Value> a) {
        return arith::SubFOp::create(nb, nl, a[0], a[1]).getResult();
      });
  if (failed(d))
    return failure();
  FailureOr<Value> sq = emitElementwise(
      {*d}, elem, [](OpBuilder &nb, Location nl, ArrayRef<Value> a) {
        return arith::MulFOp::create(nb, nl, a[0], a[0]).getResult();
      });
  if (failed(sq))
    return failure();
  FailureOr<Value> var = emitMean(*sq, axes, true);
  if (failed(var))
    return failure();
  SmallVector<Value> ops = {*d, *var, *sv};
  if (hasInput(2)) {
    FailureOr<Value> bv = inputTensor(2);
    if (failed(bv))
      return failure();
    ops.push_back(*bv);
  }
  return done(emitElementwise(
      ops, elem, [&](OpBuilder &nb, Location nl, ArrayRef<Value> a) {
        Value s = math::SqrtOp::create(
            nb, nl,
            arith::AddFOp::create(nb, nl, a[1],
                                  scalarConst(nb, nl, elem, eps)));
        Value y = arith::DivFOp::create(nb, nl, a[0], s);
        y = arith::MulFOp::create(nb, nl, y, a[2]);
        if (a.size() > 3)
          y = arith::AddFOp::create(nb, nl, y, a[3]);
        return y;
      }));
}

/// CumSum along a constant axis: out[i] = sum of x[j] for j <= i (j < i
/// when exclusive; j >= i / j > i when reversed), as a linalg.generic with
/// a masked reduction over the axis. Quadratic in the axis length, which is
/// a sequence length at most (position ids from a mask).
LogicalResult Importer::onCumSum() {
  FailureOr<Value> xv = inputTensor(0);
  FailureOr<SmallVector<int64_t>> av = constInts(1);
  if (failed(xv) || failed(av))
    return failure();
  Value x = *xv;
  if (av->size() != 1)
    return fail("axis must be a scalar");
  int64_t rank = rankOf(x);
  std::optional<int64_t> axis = normAxis((*av)[0], rank);
  if (!axis)
    return fail("axis " + Twine((*av)[0]) + " out of range");
  bool exclusive = attrInt("exclusive", 0) != 0;
  bool reverse = attrInt("reverse", 0) != 0;
  Type elem = elemOf(x);
  bool isFloat = isa<FloatType>(elem);
  SmallVector<SymInt> dims = dimsOf(x);
  unsigned n = unsigned(rank) + 1; // the extra loop is j, last
  SmallVector<AffineExpr> inExprs, outExprs;
  for (int64_t d = 0; d < rank; ++d) {
    inExprs.push_back(getAffineDimExpr(d == *axis ? unsigned(rank) : unsigned(d), ctx));
    outExprs.push_back(getAffineDimExpr(unsigned(d), ctx));
  }
  SmallVector<AffineMap> maps = {AffineMap::get(n, 0, inExprs, ctx),
                                 AffineMap::get(n, 0, outExprs, ctx)};
  SmallVector<utils::IteratorType> iters(rank, utils::IteratorType::parallel);
  iters.push_back(utils::IteratorType::reduction);
  Value init = emitFill(dims, isFloat ? TypedAttr(FloatAttr::get(elem, 0.0))
                                      : TypedAttr(IntegerAttr::get(elem, 0)));
  int64_t ax = *axis;
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{init.getType()}, ValueRange{x}, ValueRange{init}, maps,
      iters, [&](OpBuilder &nb, Location nl, ValueRange a) {
        Value i = linalg::IndexOp::create(nb, nl, uint64_t(ax));
        Value j = linalg::IndexOp::create(nb, nl, uint64_t(rank));
        P pred = reverse ? (exclusive ? P::ugt : P::uge)
                         : (exclusive ? P::ult : P::ule);
        Value take = arith::CmpIOp::create(nb, nl, pred, j, i);
        Value zero = scalarConst(nb, nl, elem, 0.0);
        Value v = arith::SelectOp::create(nb, nl, take, a[0], zero);
        Value s = isFloat ? Value(arith::AddFOp::create(nb, nl, a[1], v))
                          : Value(arith::AddIOp::create(nb, nl, a[1], v));
        linalg::YieldOp::create(nb, nl, s);
      });
  Value res = generic.getResult(0);
  setDims(res, dims);
  return done(res);
}

void registerReductionOps(OpRegistry &r) {
  r.onOp("Softmax", 13, {1, 1}, &Importer::onSoftmax);
  r.onOp("LogSoftmax", 13, {1, 1}, &Importer::onSoftmax);
  r.onOp("ReduceMean", 13, {1, 2}, &Importer::onReduce);
  r.onOp("ReduceSum", 13, {1, 2}, &Importer::onReduce);
  r.onOp("ReduceMax", 13, {1, 2}, &Importer::onReduce);
  r.onOp("LayerNormalization", 17, {2, 3, 1, 3}, &Importer::onLayerNormalization);
  r.onOp("CumSum", 13, {2, 2}, &Importer::onCumSum);
}

} // namespace quant_mlir::onnx_import
