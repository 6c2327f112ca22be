//===- TensorOps.cpp - ONNX constants, indexing and scatter operators -----===//
// Constant, Identity/Dropout, Gather, Range, ConstantOfShape, Trilu and
// ScatterND.
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


LogicalResult Importer::onConstant() {
  Type i64 = b.getI64Type();
    if (const auto *a = findAttr("value")) {
      storage.tensors.emplace_back();
      TensorData &t = storage.tensors.back();
      if (Error err = decodeTensor(a->t(), storage, t,
                                   /*allowBoolAndDouble=*/true, "value"))
        return fail(toString(std::move(err)));
      setOutput(0, valueFromTensorData(t, /*isInitializer=*/false));
      return success();
    }
    if (const auto *a = findAttr("value_int")) {
      setOutputSym(0, {SymInt::cst(a->i())}, true, i64);
      return success();
    }
    if (const auto *a = findAttr("value_ints")) {
      SmallVector<SymInt> e;
      for (int64_t v : a->ints())
        e.push_back(SymInt::cst(v));
      setOutputSym(0, e, false, i64);
      return success();
    }
    if (const auto *a = findAttr("value_float")) {
      setOutputTensor(0, tensorConst(b.getF32Type(), a->f()));
      return success();
    }
    if (const auto *a = findAttr("value_floats")) {
      SmallVector<float> f(a->floats().begin(), a->floats().end());
      auto type = RankedTensorType::get({int64_t(f.size())}, b.getF32Type());
      setOutputTensor(0, arith::ConstantOp::create(
                             b, loc, DenseElementsAttr::get(type, ArrayRef(f))));
      return success();
    }
    return fail("unsupported Constant attribute");
}

LogicalResult Importer::onIdentity() {
  StringRef op = node->op_type();
  FailureOr<OValue *> in = input(0);
  if (failed(in))
    return failure();
  if (op == "Dropout" && node->output_size() > 1 && !node->output(1).empty())
    return fail("the Dropout mask output is not supported");
  if (op == "Dropout" && hasInput(2)) {
    FailureOr<std::optional<int64_t>> training = constScalarInt(2);
    if (failed(training))
      return failure();
    if (!*training || **training != 0)
      return fail("training-mode Dropout is not supported (training_mode "
                  "must be a constant false)");
  }
  OValue v = **in;
  // torch.onnx dedups identical parameters into one initializer and
  // re-creates the others as Identity nodes named after them: the copy
  // keeps its own name (per-layer norm weights stay per layer).
  StringRef outName = node->output(0);
  if (v.init && op == "Identity" && isParameterName(outName) &&
      outName != v.init->name) {
    storage.tensors.emplace_back();
    TensorData &copy = storage.tensors.back();
    copy.name = outName.str();
    copy.dtype = v.init->dtype;
    copy.shape = v.init->shape;
    copy.bytes = v.init->bytes;
    copy.mapped = v.init->mapped;
    v.init = &copy;
    v.tensor = {};
  }
  setOutput(0, v);
  return success();
}

LogicalResult Importer::onGather() {
  if (auto symArgs = symbolicArgs()) {
    do {
      SmallVector<SymArg> &args = *symArgs;
      SmallVector<int64_t> idx;
      int64_t axis = attrInt("axis", 0);
      if (args[0].rank0 || (axis != 0 && axis != -1) || !symConsts(args, 1, idx)) {
        break; // not all constant: the tensor path
      }
      int64_t n = int64_t(args[0].elems.size());
      SmallVector<SymInt> out;
      for (int64_t i : idx) {
        if (i < 0)
          i += n;
        if (i < 0 || i >= n)
          return fail("index " + Twine(i) + " is out of range for size " +
                      Twine(n));
        out.push_back(args[0].elems[i]);
      }
      setOutputSym(0, out, args[1].rank0, args[0].elem);
      return success();
    } while (false);
  }
    FailureOr<Value> dv = inputTensor(0), iv = inputTensor(1);
    if (failed(dv) || failed(iv))
      return failure();
    Value data = *dv, indices = *iv;
    int64_t r = rankOf(data), q = rankOf(indices);
    std::optional<int64_t> axis = normAxis(attrInt("axis", 0), r);
    if (!axis)
      return fail("axis out of range");
    if (!isa<IntegerType>(elemOf(indices)))
      return fail("indices must be integers");
    SmallVector<SymInt> dd = dimsOf(data), id = dimsOf(indices), outDims;
    outDims.append(dd.begin(), dd.begin() + *axis);
    outDims.append(id.begin(), id.end());
    outDims.append(dd.begin() + *axis + 1, dd.end());
    unsigned nLoops = unsigned(outDims.size());
    SmallVector<AffineExpr> ie;
    for (int64_t k = 0; k < q; ++k)
      ie.push_back(getAffineDimExpr(unsigned(*axis + k), ctx));
    SmallVector<AffineMap> maps = {
        AffineMap::get(nLoops, 0, ie, ctx),
        AffineMap::getMultiDimIdentityMap(nLoops, ctx)};
    Value axisDim = toIndex(dd[*axis]);
    Value init = emptyTensor(outDims, elemOf(data));
    SmallVector<utils::IteratorType> iters(nLoops, utils::IteratorType::parallel);
    int64_t ax = *axis;
    auto generic = linalg::GenericOp::create(
        b, loc, TypeRange{init.getType()}, ValueRange{indices}, ValueRange{init},
        maps, iters, [&](OpBuilder &nb, Location nl, ValueRange args) {
          Value idx = arith::IndexCastOp::create(nb, nl, nb.getIndexType(), args[0]);
          // Negative indices count from the end.
          Value zero = arith::ConstantIndexOp::create(nb, nl, 0);
          Value neg = arith::CmpIOp::create(nb, nl, P::slt, idx, zero);
          idx = arith::SelectOp::create(
              nb, nl, neg, arith::AddIOp::create(nb, nl, idx, axisDim), idx);
          SmallVector<Value> coords;
          for (int64_t k = 0; k < ax; ++k)
            coords.push_back(linalg::IndexOp::create(nb, nl, uint64_t(k)));
          coords.push_back(idx);
          for (int64_t k = ax + 1; k < r; ++k)
            coords.push_back(
                linalg::IndexOp::create(nb, nl, uint64_t(k - 1 + q)));
          Value v = tensor::ExtractOp::create(nb, nl, data, coords);
          linalg::YieldOp::create(nb, nl, v);
        });
    Value res = generic.getResult(0);
    setDims(res, outDims);
    return done(res);
}

LogicalResult Importer::onRange() {
  if (auto symArgs = symbolicArgs()) {
    do {
      SmallVector<SymArg> &args = *symArgs;
      if (!args[0].rank0 || args[0].elems.size() != 1 ||
          args[1].elems.size() != 1 || args[2].elems.size() != 1) {
        break; // not all constant: the tensor path
      }
      SymInt start = args[0].elems[0], limit = args[1].elems[0],
             delta = args[2].elems[0];
      if (!start.isConst() || !limit.isConst() || !delta.isConst()) {
        break; // not all constant: the tensor path
      }
      if (delta.c == 0)
        return fail("Range delta is 0");
      int64_t n = std::max<int64_t>(sCeilDiv(sSub(limit, start), delta).c, 0);
      if (n > 64) {
        break; // not all constant: the tensor path
      }
      SmallVector<SymInt> out;
      for (int64_t k = 0; k < n; ++k)
        out.push_back(SymInt::cst(start.c + k * delta.c));
      setOutputSym(0, out, false, args[0].elem);
      return success();
    } while (false);
  }
    FailureOr<OValue *> s = input(0), l = input(1), d = input(2);
    if (failed(s) || failed(l) || failed(d))
      return failure();
    Type elem = (*s)->type.getElementType();
    Value init;
    Value startV, deltaV;
    SymInt n;
    if ((*s)->sym && (*l)->sym && (*d)->sym) {
      SymInt start = (*(*s)->sym)[0], limit = (*(*l)->sym)[0],
             delta = (*(*d)->sym)[0];
      if (delta.isConst() && delta.c == 0)
        return fail("Range delta is 0");
      n = sMax(sCeilDiv(sSub(limit, start), delta), SymInt::cst(0));
      startV = toInt(start, elem);
      deltaV = toInt(delta, elem);
    } else {
      // Constant bounds fold; bounds computed from data (a float arange of
      // the dynamic sequence length, a bound read from a tensor) are read
      // at run time and give a dynamic length.
      FailureOr<Value> sv = materialize(**s), lv = materialize(**l),
                       dv = materialize(**d);
      if (failed(sv) || failed(lv) || failed(dv))
        return failure();
      std::optional<double> a = splatFloat(*sv), z = splatFloat(*lv),
                            st = splatFloat(*dv);
      if (st && *st == 0.0)
        return fail("Range delta is 0");
      bool isFloatRange = isa<FloatType>(elem);
      if (a && z && st && isFloatRange) {
        n = SymInt::cst(
            std::max<int64_t>(int64_t(std::ceil((*z - *a) / *st)), 0));
        startV = scalarConst(b, loc, elem, *a);
        deltaV = scalarConst(b, loc, elem, *st);
      } else {
        auto scalar = [&](Value t) -> FailureOr<Value> {
          auto tt = cast<RankedTensorType>(t.getType());
          if (tt.getNumElements() != 1 || !tt.hasStaticShape())
            return fail("Range bounds must be scalars, got " + shapeStr(tt));
          SmallVector<Value> at(tt.getRank(), indexConst(0));
          return tensor::ExtractOp::create(b, loc, t, at).getResult();
        };
        FailureOr<Value> a0 = scalar(*sv), z0 = scalar(*lv), d0 = scalar(*dv);
        if (failed(a0) || failed(z0) || failed(d0))
          return failure();
        startV = *a0;
        deltaV = *d0;
        Value count;
        if (isFloatRange) {
          Value q = arith::DivFOp::create(
              b, loc, arith::SubFOp::create(b, loc, *z0, *a0), *d0);
          q = math::CeilOp::create(b, loc, q);
          count = arith::FPToSIOp::create(b, loc, b.getI64Type(), q);
          count = arith::IndexCastOp::create(b, loc, b.getIndexType(), count);
        } else {
          auto idx = [&](Value v) -> Value {
            return arith::IndexCastOp::create(b, loc, b.getIndexType(), v);
          };
          count = arith::CeilDivSIOp::create(
              b, loc,
              arith::SubIOp::create(b, loc, idx(*z0), idx(*a0)), idx(*d0));
        }
        count = arith::MaxSIOp::create(b, loc, count, indexConst(0));
        n = SymInt{0, count, true};
      }
    }
    init = emptyTensor({n}, elem);
    auto generic = linalg::GenericOp::create(
        b, loc, TypeRange{init.getType()}, ValueRange{}, ValueRange{init},
        SmallVector<AffineMap>{AffineMap::getMultiDimIdentityMap(1, ctx)},
        SmallVector<utils::IteratorType>{utils::IteratorType::parallel},
        [&](OpBuilder &nb, Location nl, ValueRange) {
          Value i = linalg::IndexOp::create(nb, nl, 0);
          Value v;
          if (isa<FloatType>(elem)) {
            Value i64 = arith::IndexCastOp::create(nb, nl, nb.getI64Type(), i);
            Value f = arith::SIToFPOp::create(nb, nl, elem, i64);
            v = arith::AddFOp::create(nb, nl, startV,
                                      arith::MulFOp::create(nb, nl, f, deltaV));
          } else {
            Value k = arith::IndexCastOp::create(nb, nl, elem, i);
            v = arith::AddIOp::create(nb, nl, startV,
                                      arith::MulIOp::create(nb, nl, k, deltaV));
          }
          linalg::YieldOp::create(nb, nl, v);
        });
    Value res = generic.getResult(0);
    setDims(res, {n});
    return done(res);
}

LogicalResult Importer::onConstantOfShape() {
  if (auto symArgs = symbolicArgs()) {
    do {
      SmallVector<SymArg> &args = *symArgs;
      SmallVector<int64_t> shape;
      if (!symConsts(args, 0, shape) || shape.size() > 1 ||
          (shape.size() == 1 && shape[0] > 64)) {
        break; // not all constant: the tensor path
      }
      int64_t value = 0;
      Type elem = b.getF32Type();
      if (const auto *a = findAttr("value")) {
        storage.tensors.emplace_back();
        TensorData &t = storage.tensors.back();
        if (Error err = decodeTensor(a->t(), storage, t, true, "value"))
          return fail(toString(std::move(err)));
        elem = dtypeToType(t.dtype, ctx);
        if (isa<IntegerType>(elem) && t.numElements() == 1) {
          OValue v = valueFromTensorData(t, false);
          value = (*v.sym)[0].c;
        } else {
          elem = {};
        }
      }
      if (!elem || !isa<IntegerType>(elem)) {
        break; // not all constant: the tensor path
      }
      int64_t n = shape.empty() ? 1 : shape[0];
      setOutputSym(0, SmallVector<SymInt>(n, SymInt::cst(value)), shape.empty(),
                   elem);
      return success();
    } while (false);
  }
    FailureOr<SmallVector<SymInt>> shape = symInts(0);
    if (failed(shape))
      return failure();
    TypedAttr value = FloatAttr::get(b.getF32Type(), 0.0);
    if (const auto *a = findAttr("value")) {
      storage.tensors.emplace_back();
      TensorData &t = storage.tensors.back();
      if (Error err = decodeTensor(a->t(), storage, t, true, "value"))
        return fail(toString(std::move(err)));
      if (t.numElements() != 1)
        return fail("value must have one element");
      Type elem = dtypeToType(t.dtype, ctx);
      if (isa<IntegerType>(elem)) {
        OValue v = valueFromTensorData(t, false);
        value = IntegerAttr::get(elem, (*v.sym)[0].c);
      } else {
        auto type = RankedTensorType::get({}, elem);
        auto dense = DenseElementsAttr::getFromRawBuffer(
            type, ArrayRef<char>(reinterpret_cast<const char *>(t.bytes.data()),
                                 t.bytes.size()));
        value = cast<TypedAttr>(dense.getSplatValue<Attribute>());
      }
    }
    return done(emitFill(*shape, value));
}

LogicalResult Importer::onTrilu() {
  FailureOr<Value> xv = inputTensor(0);
  if (failed(xv))
    return failure();
  Value x = *xv;
  int64_t rank = rankOf(x);
  if (rank < 2)
    return fail("Trilu needs rank >= 2");
  SymInt k = SymInt::cst(0);
  if (hasInput(1)) {
    FailureOr<SmallVector<SymInt>> kv = symInts(1);
    if (failed(kv))
      return failure();
    k = (*kv)[0];
  }
  bool upper = attrInt("upper", 1) != 0;
  Value kIdx = toIndex(k);
  Type elem = elemOf(x);
  return done(emitElementwise(
      {x}, elem, [&](OpBuilder &nb, Location nl, ArrayRef<Value> a) {
        Value i = linalg::IndexOp::create(nb, nl, uint64_t(rank - 2));
        Value j = linalg::IndexOp::create(nb, nl, uint64_t(rank - 1));
        Value diff = arith::SubIOp::create(nb, nl, j, i);
        Value keep = arith::CmpIOp::create(nb, nl, upper ? P::sge : P::sle,
                                           diff, kIdx);
        Value zero = isa<FloatType>(elem)
                         ? scalarConst(nb, nl, elem, 0.0)
                         : Value(arith::ConstantOp::create(
                               nb, nl, IntegerAttr::get(elem, 0)));
        return arith::SelectOp::create(nb, nl, keep, a[0], zero).getResult();
      }));
}

/// ScatterND: out = data, then for every index tuple of `indices` (its
/// last dim holds k coordinates) the slice of updates is written (or
/// added/multiplied/maxed/minned) at those coordinates, in order. torch
/// exports in-place slice assignment (the causal mask's masked_fill of a
/// slice) this way. Sequential scf.for loops over the update elements keep
/// ONNX's ordering for duplicate indices.
LogicalResult Importer::onScatterND() {
  FailureOr<Value> dv = inputTensor(0), iv = inputTensor(1),
                   uv = inputTensor(2);
  if (failed(dv) || failed(iv) || failed(uv))
    return failure();
  Value data = *dv, indices = *iv, updates = *uv;
  std::string reduction = attrString("reduction", "none");
  if (reduction != "none" && reduction != "add" && reduction != "mul" &&
      reduction != "max" && reduction != "min")
    return fail("unsupported reduction '" + reduction + "'");
  if (!isa<IntegerType>(elemOf(indices)))
    return fail("indices must be integers");
  if (elemOf(updates) != elemOf(data))
    return fail("updates and data differ in element type");
  int64_t r = rankOf(data), q = rankOf(indices);
  auto itype = cast<RankedTensorType>(indices.getType());
  if (q < 1 || itype.isDynamicDim(q - 1))
    return fail("the last dim of indices must be static");
  int64_t k = itype.getDimSize(q - 1);
  if (k < 1 || k > r)
    return fail("indices address " + Twine(k) + " dims of a rank-" +
                Twine(r) + " tensor");
  if (rankOf(updates) != q - 1 + r - k)
    return fail("updates must have rank " + Twine(q - 1 + r - k) + ", got " +
                Twine(rankOf(updates)));
  SmallVector<SymInt> dd = dimsOf(data), id = dimsOf(indices);
  SmallVector<Value> lbs, ubs, steps;
  for (int64_t i = 0; i < q - 1; ++i)
    ubs.push_back(toIndex(id[i]));
  for (int64_t i = k; i < r; ++i)
    ubs.push_back(toIndex(dd[i]));
  Value zero = indexConst(0), one = indexConst(1);
  lbs.assign(ubs.size(), zero);
  steps.assign(ubs.size(), one);
  SmallVector<Value> dataDims;
  for (int64_t i = 0; i < k; ++i)
    dataDims.push_back(toIndex(dd[i]));
  Type elem = elemOf(data);
  bool isFloat = isa<FloatType>(elem);
  scf::LoopNest nest = scf::buildLoopNest(
      b, loc, lbs, ubs, steps, ValueRange{data},
      [&](OpBuilder &nb, Location nl, ValueRange ivs,
          ValueRange iter) -> scf::ValueVector {
        SmallVector<Value> batch(ivs.begin(), ivs.begin() + (q - 1));
        SmallVector<Value> coords;
        for (int64_t j = 0; j < k; ++j) {
          SmallVector<Value> at(batch);
          at.push_back(arith::ConstantIndexOp::create(nb, nl, j));
          Value c = tensor::ExtractOp::create(nb, nl, indices, at);
          c = arith::IndexCastOp::create(nb, nl, nb.getIndexType(), c);
          Value neg = arith::CmpIOp::create(
              nb, nl, P::slt, c, arith::ConstantIndexOp::create(nb, nl, 0));
          c = arith::SelectOp::create(
              nb, nl, neg, arith::AddIOp::create(nb, nl, c, dataDims[j]), c);
          coords.push_back(c);
        }
        coords.append(ivs.begin() + (q - 1), ivs.end());
        Value u = tensor::ExtractOp::create(nb, nl, updates, ivs);
        if (reduction != "none") {
          Value old = tensor::ExtractOp::create(nb, nl, iter[0], coords);
          if (reduction == "add")
            u = isFloat ? Value(arith::AddFOp::create(nb, nl, old, u))
                        : Value(arith::AddIOp::create(nb, nl, old, u));
          else if (reduction == "mul")
            u = isFloat ? Value(arith::MulFOp::create(nb, nl, old, u))
                        : Value(arith::MulIOp::create(nb, nl, old, u));
          else if (reduction == "max")
            u = isFloat ? Value(arith::MaximumFOp::create(nb, nl, old, u))
                        : Value(arith::MaxSIOp::create(nb, nl, old, u));
          else
            u = isFloat ? Value(arith::MinimumFOp::create(nb, nl, old, u))
                        : Value(arith::MinSIOp::create(nb, nl, old, u));
        }
        return {tensor::InsertOp::create(nb, nl, u, iter[0], coords)};
      });
  Value res = nest.results.empty() ? data : nest.results[0];
  setDims(res, dd);
  return done(res);
}

void registerTensorOps(OpRegistry &r) {
  r.onOp("Constant", 13, {0, 0}, &Importer::onConstant);
  r.onOp("Identity", 13, {1, 1}, &Importer::onIdentity);
  r.onOp("Dropout", 13, {1, 3, 1, 2}, &Importer::onIdentity);
  r.onOp("Gather", 13, {2, 2}, &Importer::onGather);
  r.onOp("Range", 13, {3, 3}, &Importer::onRange);
  r.onOp("ConstantOfShape", 13, {1, 1}, &Importer::onConstantOfShape);
  r.onOp("Trilu", 14, {1, 2}, &Importer::onTrilu);
  r.onOp("ScatterND", 13, {3, 3}, &Importer::onScatterND);
}

} // namespace quant_mlir::onnx_import
