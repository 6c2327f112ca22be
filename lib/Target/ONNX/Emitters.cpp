//===- Emitters.cpp - tensor emitters with ONNX semantics ----------------===//
// Broadcasting elementwise ops, reductions, reshapes, transposes, slices,
// casts, softmax and matmul as linalg/tensor ops with their result dims.
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

using namespace mlir;
using namespace llvm;

namespace quant_mlir::onnx_import {
static TypedAttr scalarAttr(Type elem, double value) {
  if (auto ft = dyn_cast<FloatType>(elem))
    return FloatAttr::get(ft, value);
  return IntegerAttr::get(elem, int64_t(value));
}

Value Importer::scalarConst(OpBuilder &bb, Location l, Type elem,
                            double value) {
  return arith::ConstantOp::create(bb, l, scalarAttr(elem, value));
}

Value Importer::tensorConst(Type elem, double value) {
  auto type = RankedTensorType::get({}, elem);
  return arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(type, scalarAttr(elem, value)));
}

Value Importer::emitFill(ArrayRef<SymInt> dims, TypedAttr value) {
  Value init = emptyTensor(dims, value.getType());
  Value c = arith::ConstantOp::create(b, loc, value);
  Value r = linalg::FillOp::create(b, loc, ValueRange{c}, ValueRange{init})
                .getResult(0);
  setDims(r, dims);
  return r;
}

std::string shapeStr(Type t) {
  std::string s;
  raw_string_ostream os(s);
  os << t;
  return s;
}

FailureOr<Value>
Importer::emitElementwise(ArrayRef<Value> operands, Type outElem, BodyFn body,
                          std::optional<ArrayRef<SymInt>> outDimsOverride) {
  struct Operand {
    Value v;
    RankedTensorType type;
    TypedAttr splat; // a splat constant becomes a scalar in the body
  };
  SmallVector<Operand> ops;
  int64_t rank = 0;
  for (Value v : operands) {
    Operand o{v, cast<RankedTensorType>(v.getType()), {}};
    DenseElementsAttr dense;
    if (matchPattern(v, m_Constant(&dense)) && dense.isSplat())
      o.splat = cast<TypedAttr>(dense.getSplatValue<Attribute>());
    rank = std::max(rank, o.type.getRank());
    ops.push_back(o);
  }
  SmallVector<SymInt> out;
  if (outDimsOverride) {
    out.assign(outDimsOverride->begin(), outDimsOverride->end());
    if (int64_t(out.size()) < rank)
      return fail("cannot broadcast rank " + Twine(rank) + " to rank " +
                  Twine(out.size()));
    rank = int64_t(out.size());
  } else {
    for (int64_t o = 0; o < rank; ++o) {
      std::optional<int64_t> fixed;
      std::optional<SymInt> dyn;
      for (const Operand &op : ops) {
        int64_t j = o - (rank - op.type.getRank());
        if (j < 0)
          continue;
        int64_t d = op.type.getDimSize(j);
        if (ShapedType::isDynamic(d)) {
          // Dynamic dims are assumed not to broadcast (never 1 at run time
          // against a larger extent), as in torch-mlir.
          if (!dyn)
            dyn = dimOf(op.v, unsigned(j));
        } else if (d != 1) {
          if (fixed && *fixed != d) {
            std::string shapes;
            for (const Operand &p : ops)
              shapes += (shapes.empty() ? "" : " vs ") + shapeStr(p.type);
            return fail("operands are not broadcast-compatible: " + shapes);
          }
          fixed = d;
        }
      }
      out.push_back(fixed ? SymInt::cst(*fixed) : dyn ? *dyn : SymInt::cst(1));
    }
  }

  SmallVector<Value> inputs;
  SmallVector<AffineMap> maps;
  for (const Operand &op : ops) {
    if (op.splat)
      continue;
    SmallVector<AffineExpr> exprs;
    int64_t r = op.type.getRank();
    for (int64_t j = 0; j < r; ++j) {
      int64_t o = j + rank - r;
      int64_t d = op.type.getDimSize(j);
      bool outIsOne = out[o].isConst() && out[o].c == 1;
      if (d == 1 && !outIsOne) {
        exprs.push_back(getAffineConstantExpr(0, ctx));
        continue;
      }
      if (!ShapedType::isDynamic(d) && out[o].isConst() && d != out[o].c)
        return fail("cannot broadcast " + shapeStr(op.type) + " to dim " +
                    Twine(o) + " of size " + Twine(out[o].c));
      exprs.push_back(getAffineDimExpr(unsigned(o), ctx));
    }
    maps.push_back(AffineMap::get(unsigned(rank), 0, exprs, ctx));
    inputs.push_back(op.v);
  }
  maps.push_back(AffineMap::getMultiDimIdentityMap(unsigned(rank), ctx));
  Value init = emptyTensor(out, outElem);
  SmallVector<utils::IteratorType> iters(rank, utils::IteratorType::parallel);
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{init.getType()}, inputs, ValueRange{init}, maps, iters,
      [&](OpBuilder &nb, Location nl, ValueRange args) {
        SmallVector<Value> scalars;
        unsigned next = 0;
        for (const Operand &op : ops)
          scalars.push_back(op.splat
                                ? Value(arith::ConstantOp::create(nb, nl, op.splat))
                                : args[next++]);
        Value r = body(nb, nl, scalars);
        linalg::YieldOp::create(nb, nl, r);
      });
  Value res = generic.getResult(0);
  setDims(res, out);
  return res;
}

FailureOr<Value> Importer::emitReduce(Value x, ArrayRef<int64_t> axes,
                                      ReduceKind kind, bool keepDims) {
  auto type = cast<RankedTensorType>(x.getType());
  int64_t rank = type.getRank();
  Type elem = type.getElementType();
  SmallVector<SymInt> dims = dimsOf(x), outDims, keptDims;
  SmallVector<AffineExpr> outExprs;
  SmallVector<utils::IteratorType> iters;
  for (int64_t i = 0; i < rank; ++i) {
    bool reduced = llvm::is_contained(axes, i);
    iters.push_back(reduced ? utils::IteratorType::reduction
                            : utils::IteratorType::parallel);
    keptDims.push_back(reduced ? SymInt::cst(1) : dims[i]);
    if (!reduced) {
      outDims.push_back(dims[i]);
      outExprs.push_back(getAffineDimExpr(unsigned(i), ctx));
    }
  }
  TypedAttr initAttr;
  if (auto ft = dyn_cast<FloatType>(elem)) {
    initAttr = kind == ReduceKind::Sum
                   ? FloatAttr::get(ft, 0.0)
                   : FloatAttr::get(ft, APFloat::getInf(ft.getFloatSemantics(),
                                                        /*Negative=*/true));
  } else {
    unsigned w = elem.getIntOrFloatBitWidth();
    initAttr = IntegerAttr::get(elem, kind == ReduceKind::Sum
                                          ? APInt(w, 0)
                                          : APInt::getSignedMinValue(w));
  }
  Value init = emitFill(outDims, initAttr);
  SmallVector<AffineMap> maps = {
      AffineMap::getMultiDimIdentityMap(unsigned(rank), ctx),
      AffineMap::get(unsigned(rank), 0, outExprs, ctx)};
  bool isFloat = isa<FloatType>(elem);
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{init.getType()}, ValueRange{x}, ValueRange{init}, maps,
      iters, [&](OpBuilder &nb, Location nl, ValueRange args) {
        Value r;
        if (kind == ReduceKind::Sum)
          r = isFloat ? Value(arith::AddFOp::create(nb, nl, args[0], args[1]))
                      : Value(arith::AddIOp::create(nb, nl, args[0], args[1]));
        else
          r = isFloat
                  ? Value(arith::MaximumFOp::create(nb, nl, args[0], args[1]))
                  : Value(arith::MaxSIOp::create(nb, nl, args[0], args[1]));
        linalg::YieldOp::create(nb, nl, r);
      });
  Value res = generic.getResult(0);
  setDims(res, outDims);
  if (!keepDims)
    return res;
  return emitReshape(res, keptDims);
}

FailureOr<Value> Importer::emitMean(Value x, ArrayRef<int64_t> axes,
                                    bool keepDims) {
  SmallVector<SymInt> dims = dimsOf(x);
  SymInt count = SymInt::cst(1);
  for (int64_t a : axes)
    count = sMul(count, dims[a]);
  FailureOr<Value> sum = emitReduce(x, axes, ReduceKind::Sum, keepDims);
  if (failed(sum))
    return failure();
  Type elem = cast<RankedTensorType>(x.getType()).getElementType();
  if (!isa<FloatType>(elem))
    return fail("mean of a non-float tensor");
  Value n;
  if (!count.isConst()) {
    Value i64 = toInt(count, b.getI64Type());
    n = arith::SIToFPOp::create(b, loc, elem, i64);
  }
  double c = double(count.c);
  return emitElementwise({*sum}, elem,
                         [&](OpBuilder &nb, Location nl, ArrayRef<Value> a) {
                           Value d = n ? n : scalarConst(nb, nl, elem, c);
                           return arith::DivFOp::create(nb, nl, a[0], d)
                               .getResult();
                         });
}

FailureOr<Value> Importer::emitTranspose(Value x, ArrayRef<int64_t> perm) {
  SmallVector<SymInt> dims = dimsOf(x), outDims;
  for (int64_t p : perm)
    outDims.push_back(dims[p]);
  Value init = emptyTensor(
      outDims, cast<RankedTensorType>(x.getType()).getElementType());
  Value r = linalg::TransposeOp::create(b, loc, x, init, perm).getResult()[0];
  setDims(r, outDims);
  return r;
}

FailureOr<Value> Importer::emitSlice(Value x, ArrayRef<SymInt> offsets,
                                     ArrayRef<SymInt> sizes,
                                     ArrayRef<SymInt> strides) {
  auto type = typeFor(sizes, cast<RankedTensorType>(x.getType()).getElementType());
  Value r = tensor::ExtractSliceOp::create(b, loc, type, x,
                                           foldResults(offsets),
                                           foldResults(sizes),
                                           foldResults(strides));
  setDims(r, sizes);
  return r;
}

/// Converts one scalar between element types with ONNX Cast semantics.
static Value convertScalar(OpBuilder &b, Location loc, Value v, Type to) {
  Type from = v.getType();
  if (from == to)
    return v;
  auto ff = dyn_cast<FloatType>(from), ft = dyn_cast<FloatType>(to);
  if (ff && ft)
    return ft.getWidth() > ff.getWidth()
               ? Value(arith::ExtFOp::create(b, loc, to, v))
               : Value(arith::TruncFOp::create(b, loc, to, v));
  if (!ff && ft)
    return from.isInteger(1) ? Value(arith::UIToFPOp::create(b, loc, to, v))
                             : Value(arith::SIToFPOp::create(b, loc, to, v));
  if (ff && !ft) {
    if (to.isInteger(1)) {
      Value zero = arith::ConstantOp::create(b, loc, FloatAttr::get(from, 0.0));
      return arith::CmpFOp::create(b, loc, arith::CmpFPredicate::UNE, v, zero);
    }
    return arith::FPToSIOp::create(b, loc, to, v);
  }
  unsigned fw = from.getIntOrFloatBitWidth(), tw = to.getIntOrFloatBitWidth();
  if (tw == 1) {
    Value zero = arith::ConstantOp::create(b, loc, IntegerAttr::get(from, 0));
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne, v, zero);
  }
  if (fw == 1)
    return arith::ExtUIOp::create(b, loc, to, v);
  return tw > fw ? Value(arith::ExtSIOp::create(b, loc, to, v))
                 : Value(arith::TruncIOp::create(b, loc, to, v));
}

FailureOr<Value> Importer::emitCast(Value x, Type to) {
  if (cast<RankedTensorType>(x.getType()).getElementType() == to)
    return x;
  return emitElementwise({x}, to,
                         [&](OpBuilder &nb, Location nl, ArrayRef<Value> a) {
                           return convertScalar(nb, nl, a[0], to);
                         });
}

FailureOr<Value> Importer::emitSoftmax(Value x, int64_t axis) {
  Type elem = cast<RankedTensorType>(x.getType()).getElementType();
  FailureOr<Value> m = emitReduce(x, {axis}, ReduceKind::Max, true);
  if (failed(m))
    return failure();
  FailureOr<Value> e = emitElementwise(
      {x, *m}, elem, [&](OpBuilder &nb, Location nl, ArrayRef<Value> a) {
        Value d = arith::SubFOp::create(nb, nl, a[0], a[1]);
        return math::ExpOp::create(nb, nl, d).getResult();
      });
  if (failed(e))
    return failure();
  FailureOr<Value> s = emitReduce(*e, {axis}, ReduceKind::Sum, true);
  if (failed(s))
    return failure();
  return emitElementwise({*e, *s}, elem,
                         [&](OpBuilder &nb, Location nl, ArrayRef<Value> a) {
                           return arith::DivFOp::create(nb, nl, a[0], a[1])
                               .getResult();
                         });
}

FailureOr<Value> Importer::emitMatMul(Value a, Value bv) {
  auto at = cast<RankedTensorType>(a.getType());
  auto bt = cast<RankedTensorType>(bv.getType());
  Type elem = at.getElementType();
  if (bt.getElementType() != elem)
    return fail("operand element types differ: " + shapeStr(at) + " vs " +
                shapeStr(bt));
  if (at.getRank() == 0 || bt.getRank() == 0)
    return fail("MatMul operands must have rank >= 1");
  bool squeezeM = false, squeezeN = false;
  // numpy.matmul semantics: promote 1-D operands, drop the dim afterwards.
  if (at.getRank() == 1) {
    FailureOr<Value> r = emitReshape(a, {SymInt::cst(1), dimOf(a, 0)});
    if (failed(r))
      return failure();
    a = *r;
    squeezeM = true;
  }
  if (bt.getRank() == 1) {
    FailureOr<Value> r = emitReshape(bv, {dimOf(bv, 0), SymInt::cst(1)});
    if (failed(r))
      return failure();
    bv = *r;
    squeezeN = true;
  }
  at = cast<RankedTensorType>(a.getType());
  bt = cast<RankedTensorType>(bv.getType());
  int64_t ra = at.getRank(), rb = bt.getRank();
  int64_t nb = std::max(ra, rb) - 2;
  SmallVector<SymInt> aDims = dimsOf(a), bDims = dimsOf(bv);
  SymInt ka = aDims[ra - 1], kb = bDims[rb - 2];
  if (ka.isConst() && kb.isConst() && ka.c != kb.c)
    return fail("contraction dims differ: " + shapeStr(at) + " x " +
                shapeStr(bt));
  // Broadcast the batch dims.
  SmallVector<SymInt> outDims;
  for (int64_t o = 0; o < nb; ++o) {
    int64_t ja = o - (nb - (ra - 2)), jb = o - (nb - (rb - 2));
    std::optional<SymInt> da, db;
    if (ja >= 0)
      da = aDims[ja];
    if (jb >= 0)
      db = bDims[jb];
    auto isOne = [](const std::optional<SymInt> &d) {
      return !d || (d->isConst() && d->c == 1);
    };
    if (isOne(da))
      outDims.push_back(db ? *db : SymInt::cst(1));
    else if (isOne(db))
      outDims.push_back(*da);
    else {
      if (da->isConst() && db->isConst() && da->c != db->c)
        return fail("batch dims are not broadcast-compatible: " +
                    shapeStr(at) + " x " + shapeStr(bt));
      outDims.push_back(da->isConst() ? *da : *db);
    }
  }
  outDims.push_back(aDims[ra - 2]);
  outDims.push_back(bDims[rb - 1]);
  unsigned nLoops = unsigned(nb + 3);
  unsigned dm = unsigned(nb), dn = unsigned(nb + 1), dk = unsigned(nb + 2);
  auto batchExprs = [&](RankedTensorType t, int64_t r) {
    SmallVector<AffineExpr> e;
    for (int64_t j = 0; j < r - 2; ++j) {
      int64_t o = j + nb - (r - 2);
      bool outIsOne = outDims[o].isConst() && outDims[o].c == 1;
      e.push_back(t.getDimSize(j) == 1 && !outIsOne
                      ? getAffineConstantExpr(0, ctx)
                      : getAffineDimExpr(unsigned(o), ctx));
    }
    return e;
  };
  SmallVector<AffineExpr> ea = batchExprs(at, ra), eb = batchExprs(bt, rb),
                          eo;
  ea.push_back(getAffineDimExpr(dm, ctx));
  ea.push_back(getAffineDimExpr(dk, ctx));
  eb.push_back(getAffineDimExpr(dk, ctx));
  eb.push_back(getAffineDimExpr(dn, ctx));
  for (unsigned i = 0; i < unsigned(nb + 2); ++i)
    eo.push_back(getAffineDimExpr(i, ctx));
  SmallVector<AffineMap> maps = {AffineMap::get(nLoops, 0, ea, ctx),
                                 AffineMap::get(nLoops, 0, eb, ctx),
                                 AffineMap::get(nLoops, 0, eo, ctx)};
  SmallVector<utils::IteratorType> iters(nLoops, utils::IteratorType::parallel);
  iters[dk] = utils::IteratorType::reduction;
  // Half-precision products accumulate in f32.
  Type acc = elem;
  if (elem.isF16() || elem.isBF16())
    acc = b.getF32Type();
  bool isFloat = isa<FloatType>(elem);
  Value init = emitFill(outDims, isFloat ? TypedAttr(FloatAttr::get(acc, 0.0))
                                         : TypedAttr(IntegerAttr::get(acc, 0)));
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{init.getType()}, ValueRange{a, bv}, ValueRange{init},
      maps, iters, [&](OpBuilder &nb2, Location nl, ValueRange args) {
        Value x = convertScalar(nb2, nl, args[0], acc);
        Value y = convertScalar(nb2, nl, args[1], acc);
        Value r;
        if (isFloat)
          r = arith::AddFOp::create(nb2, nl, args[2],
                                    arith::MulFOp::create(nb2, nl, x, y));
        else
          r = arith::AddIOp::create(nb2, nl, args[2],
                                    arith::MulIOp::create(nb2, nl, x, y));
        linalg::YieldOp::create(nb2, nl, r);
      });
  Value res = generic.getResult(0);
  setDims(res, outDims);
  if (acc != elem) {
    FailureOr<Value> c = emitCast(res, elem);
    if (failed(c))
      return failure();
    res = *c;
  }
  if (squeezeM || squeezeN) {
    SmallVector<SymInt> dims(outDims.begin(), outDims.end() - 2);
    if (!squeezeM)
      dims.push_back(outDims[nb]);
    if (!squeezeN)
      dims.push_back(outDims[nb + 1]);
    return emitReshape(res, dims);
  }
  return res;
}

FailureOr<Value> Importer::emitReshape(Value x, ArrayRef<SymInt> outDims) {
  auto type = cast<RankedTensorType>(x.getType());
  Type elem = type.getElementType();
  SmallVector<SymInt> in = dimsOf(x);
  RankedTensorType outType = typeFor(outDims, elem);
  if (in.size() == outDims.size() &&
      llvm::all_of(llvm::zip(in, outDims), [](auto p) {
        return sameSym(std::get<0>(p), std::get<1>(p));
      })) {
    if (outType == type)
      return x;
    Value c = tensor::CastOp::create(b, loc, outType, x);
    setDims(c, outDims);
    return c;
  }
  auto isOne = [](const SymInt &s) { return s.isConst() && s.c == 1; };
  // Group input and output dims so that each group is a pure collapse or
  // expansion: identical dynamic dims pair up, static runs match products.
  // Size-1 dims join a neighbouring group.
  SmallVector<ReassociationIndices> gin, gout;
  size_t i = 0, j = 0, nI = in.size(), nO = outDims.size();
  bool ok = true;
  ReassociationIndices pi, pj; // leading size-1 dims
  while (i < nI && isOne(in[i]))
    pi.push_back(int64_t(i++));
  while (j < nO && isOne(outDims[j]))
    pj.push_back(int64_t(j++));
  while (ok && (i < nI || j < nO)) {
    ReassociationIndices ri = pi, rj = pj;
    pi.clear();
    pj.clear();
    if (i < nI && j < nO && !in[i].isConst() && sameSym(in[i], outDims[j])) {
      ri.push_back(int64_t(i++));
      rj.push_back(int64_t(j++));
    } else {
      if (i >= nI || j >= nO || !in[i].isConst() || !outDims[j].isConst()) {
        ok = false;
        break;
      }
      int64_t p = in[i].c, q = outDims[j].c;
      ri.push_back(int64_t(i++));
      rj.push_back(int64_t(j++));
      while (p != q) {
        if (p < q) {
          if (i >= nI || !in[i].isConst()) {
            ok = false;
            break;
          }
          p *= in[i].c;
          ri.push_back(int64_t(i++));
        } else {
          if (j >= nO || !outDims[j].isConst()) {
            ok = false;
            break;
          }
          q *= outDims[j].c;
          rj.push_back(int64_t(j++));
        }
      }
    }
    while (i < nI && isOne(in[i]))
      ri.push_back(int64_t(i++));
    while (j < nO && isOne(outDims[j]))
      rj.push_back(int64_t(j++));
    gin.push_back(ri);
    gout.push_back(rj);
  }
  if (ok && gin.empty() && (!pi.empty() || !pj.empty())) {
    // Only size-1 dims on both sides: collapse to rank 0, expand back.
    if (nI && nO) {
      gin.push_back(pi);
      gout.push_back(pj);
    }
  }
  if (ok) {
    Value cur = x;
    bool needCollapse = nO == 0 || llvm::any_of(gin, [](auto &g) {
                          return g.size() != 1;
                        });
    bool needExpand = nI == 0 || llvm::any_of(gout, [](auto &g) {
                        return g.size() != 1;
                      });
    if (needCollapse) {
      SmallVector<SymInt> mid;
      for (auto &g : gin) {
        SymInt p = SymInt::cst(1);
        for (int64_t k : g)
          p = sMul(p, in[k]);
        mid.push_back(p);
      }
      RankedTensorType midType = typeFor(mid, elem);
      cur = tensor::CollapseShapeOp::create(b, loc, midType, cur,
                                            nO == 0 ? SmallVector<ReassociationIndices>{}
                                                    : gin);
      setDims(cur, mid);
    }
    if (needExpand) {
      cur = tensor::ExpandShapeOp::create(
          b, loc, outType, cur,
          nI == 0 ? SmallVector<ReassociationIndices>{} : gout,
          foldResults(outDims));
    } else if (cast<RankedTensorType>(cur.getType()) != outType) {
      cur = tensor::CastOp::create(b, loc, outType, cur);
    }
    setDims(cur, outDims);
    return cur;
  }
  // General case: a reshape through a shape operand.
  SmallVector<Value> shapeElems;
  for (const SymInt &d : outDims)
    shapeElems.push_back(toInt(d, b.getI64Type()));
  Value shape = tensor::FromElementsOp::create(
      b, loc, RankedTensorType::get({int64_t(outDims.size())}, b.getI64Type()),
      shapeElems);
  Value r = tensor::ReshapeOp::create(b, loc, outType, x, shape);
  setDims(r, outDims);
  return r;
}

//===----------------------------------------------------------------------===//
// Weights
//===----------------------------------------------------------------------===//

} // namespace quant_mlir::onnx_import
