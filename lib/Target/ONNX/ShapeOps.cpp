//===- ShapeOps.cpp - ONNX shape and data-movement operators --------------===//
// Shape/Size, Transpose, Reshape/Flatten/Squeeze/Unsqueeze, Expand, Concat,
// Slice, Split and Tile. Small integer vectors (shape arithmetic) are
// evaluated as SymInts at import time in the same handlers.
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


LogicalResult Importer::onShape() {
  StringRef op = node->op_type();
  Type i64 = b.getI64Type();
    FailureOr<OValue *> in = input(0);
    if (failed(in))
      return failure();
    SmallVector<SymInt> dims = dimsOf(**in);
    if (op == "Size") {
      SymInt n = SymInt::cst(1);
      for (const SymInt &d : dims)
        n = sMul(n, d);
      setOutputSym(0, {n}, true, i64);
      return success();
    }
    int64_t r = int64_t(dims.size());
    int64_t start = attrInt("start", 0), end = attrInt("end", r);
    if (start < 0)
      start += r;
    if (end < 0)
      end += r;
    start = std::clamp<int64_t>(start, 0, r);
    end = std::clamp<int64_t>(end, start, r);
    setOutputSym(0, SmallVector<SymInt>(dims.begin() + start, dims.begin() + end),
                 false, i64);
    return success();
}

LogicalResult Importer::onTranspose() {
  FailureOr<OValue *> in = input(0);
  if (failed(in))
    return failure();
  int64_t rank = (*in)->type.getRank();
  SmallVector<int64_t> perm;
  if (auto p = attrInts("perm"))
    perm = *p;
  else
    for (int64_t i = rank - 1; i >= 0; --i)
      perm.push_back(i);
  if (int64_t(perm.size()) != rank)
    return fail("perm has " + Twine(perm.size()) + " entries for rank " +
                Twine(rank));
  SmallVector<int64_t> sorted(perm);
  llvm::sort(sorted);
  for (int64_t i = 0; i < rank; ++i)
    if (sorted[i] != i)
      return fail("perm is not a permutation");
  if ((*in)->init && rank == 2 && perm[0] == 1) {
    // nn.Linear's weight.t(): stays lazy so a MatMul reads it as [N, K]
    // (also when the weight itself is already in use, e.g. tied).
    OValue t = **in;
    t.tensor = {};
    t.initTransposed = !t.initTransposed;
    t.type = RankedTensorType::get(
        {t.type.getDimSize(1), t.type.getDimSize(0)}, t.type.getElementType());
    setOutput(0, t);
    return success();
  }
  FailureOr<Value> x = materialize(**in);
  if (failed(x))
    return failure();
  bool identity = true;
  for (int64_t i = 0; i < rank; ++i)
    identity &= perm[i] == i;
  if (identity)
    return done(*x);
  return done(emitTranspose(*x, perm));
}

LogicalResult Importer::onReshapeLike() {
  StringRef op = node->op_type();
  if (auto symArgs = symbolicArgs(); symArgs && op == "Reshape") {
    do {
      SmallVector<SymArg> &args = *symArgs;
      SmallVector<int64_t> shape;
      if (!symConsts(args, 1, shape) || shape.size() > 1) {
        break; // not all constant: the tensor path
      }
      int64_t n = int64_t(args[0].elems.size());
      if (shape.size() == 1 && shape[0] != -1 && shape[0] != n &&
          !(shape[0] == 0 && !args[0].rank0 && n == 0))
        return fail("cannot reshape " + Twine(n) + " elements to [" +
                    Twine(shape[0]) + "]");
      if (shape.empty() && n != 1)
        return fail("cannot reshape " + Twine(n) + " elements to a scalar");
      setOutputSym(0, args[0].elems, shape.empty(), args[0].elem);
      return success();
    } while (false);
  }
  if (auto symArgs = symbolicArgs();
      symArgs && (op == "Squeeze" || op == "Unsqueeze")) {
    do {
      SmallVector<SymArg> &args = *symArgs;
      SmallVector<int64_t> axes;
      if (symPresent(args, 1) && !symConsts(args, 1, axes)) {
        break; // not all constant: the tensor path
      }
      if (auto a = attrInts("axes"))
        axes = *a;
      if (op == "Unsqueeze" && args[0].rank0 && axes.size() == 1 &&
          (axes[0] == 0 || axes[0] == -1)) {
        setOutputSym(0, args[0].elems, false, args[0].elem);
        return success();
      }
      if (op == "Squeeze" && !args[0].rank0 && args[0].elems.size() == 1 &&
          (axes.empty() || (axes.size() == 1 && (axes[0] == 0 || axes[0] == -1)))) {
        setOutputSym(0, args[0].elems, true, args[0].elem);
        return success();
      }
      break; // not all constant: the tensor path
    } while (false);
  }
    FailureOr<Value> xv = inputTensor(0);
    if (failed(xv))
      return failure();
    Value x = *xv;
    SmallVector<SymInt> in = dimsOf(x), out;
    int64_t rank = int64_t(in.size());
    if (op == "Reshape") {
      FailureOr<SmallVector<SymInt>> shape = symInts(1);
      if (failed(shape))
        return failure();
      bool allowZero = attrInt("allowzero", 0) != 0;
      // A shape read from data: 0 (copy) and -1 (infer) resolved at run
      // time with selects (at most one -1, as ONNX requires).
      if (llvm::any_of(*shape, [](const SymInt &d) { return d.fromData; })) {
        SmallVector<SymInt> dims, isInfer;
        for (auto [k, d] : llvm::enumerate(*shape)) {
          SymInt v = d;
          if (d.fromData && !allowZero && int64_t(k) < rank)
            v = sSelect(sCmp(P::eq, d, SymInt::cst(0)), in[k], d);
          dims.push_back(v);
          isInfer.push_back(sCmp(P::eq, d, SymInt::cst(-1)));
        }
        SymInt total = SymInt::cst(1), rest = SymInt::cst(1);
        for (const SymInt &d : in)
          total = sMul(total, d);
        for (auto [k, d] : llvm::enumerate(dims))
          rest = sMul(rest, sSelect(isInfer[k], SymInt::cst(1), d));
        SymInt inferred = sDiv(total, rest);
        for (auto [k, d] : llvm::enumerate(dims))
          out.push_back(sSelect(isInfer[k], inferred, d));
        return done(emitReshape(x, out));
      }
      int inferIdx = -1;
      for (auto [k, s] : llvm::enumerate(*shape)) {
        if (s.isConst() && s.c == 0 && !allowZero) {
          if (int64_t(k) >= rank)
            return fail("shape entry 0 at " + Twine(k) + " has no input dim");
          out.push_back(in[k]);
        } else if (s.isConst() && s.c == -1) {
          if (inferIdx >= 0)
            return fail("more than one -1 in the target shape");
          inferIdx = int(k);
          out.push_back(SymInt::cst(1));
        } else if (s.isConst() && s.c < 0) {
          return fail("invalid target dim " + Twine(s.c));
        } else {
          out.push_back(s.isConst() ? s : SymInt{0, toIndex(s), true});
        }
      }
      // Element counts: cancel identical dynamic dims, then divide.
      SmallVector<SymInt> num, den;
      for (const SymInt &d : in)
        if (!d.isConst() || d.c != 1)
          num.push_back(d);
      for (auto [k, d] : llvm::enumerate(out))
        if (int(k) != inferIdx && (!d.isConst() || d.c != 1))
          den.push_back(d);
      int64_t cn = 1, cd = 1;
      SmallVector<SymInt> dn, dd;
      for (const SymInt &d : num)
        d.isConst() ? (void)(cn *= d.c) : dn.push_back(d);
      for (const SymInt &d : den) {
        if (d.isConst()) {
          cd *= d.c;
          continue;
        }
        auto it = llvm::find_if(dn, [&](const SymInt &x) { return sameSym(x, d); });
        if (it != dn.end())
          dn.erase(it);
        else
          dd.push_back(d);
      }
      if (inferIdx >= 0) {
        SymInt inferred;
        if (dd.empty() && cd != 0 && cn % cd == 0) {
          inferred = SymInt::cst(cn / cd);
          for (const SymInt &d : dn)
            inferred = sMul(inferred, d);
        } else {
          SymInt total = SymInt::cst(1), rest = SymInt::cst(1);
          for (const SymInt &d : in)
            total = sMul(total, d);
          for (auto [k, d] : llvm::enumerate(out))
            if (int(k) != inferIdx)
              rest = sMul(rest, d);
          inferred = sDiv(total, rest);
        }
        out[inferIdx] = inferred;
      } else if (dn.empty() && dd.empty() && cn != cd) {
        std::string s;
        raw_string_ostream os(s);
        os << x.getType();
        return fail("cannot reshape " + s + " (" + Twine(cn) +
                    " elements) to " + Twine(cd) + " elements");
      }
    } else if (op == "Flatten") {
      std::optional<int64_t> axis =
          attrInt("axis", 1) == rank
              ? std::optional<int64_t>(rank)
              : normAxis(attrInt("axis", 1), rank);
      if (!axis)
        return fail("axis out of range");
      SymInt outer = SymInt::cst(1), inner = SymInt::cst(1);
      for (int64_t k = 0; k < rank; ++k)
        (k < *axis ? outer : inner) = sMul(k < *axis ? outer : inner, in[k]);
      out = {outer, inner};
    } else {
      SmallVector<int64_t> axes;
      if (hasInput(1)) {
        FailureOr<SmallVector<int64_t>> a = constInts(1);
        if (failed(a))
          return failure();
        axes = *a;
      } else if (auto a = attrInts("axes")) {
        axes = *a;
      }
      if (op == "Squeeze") {
        SmallVector<bool> drop(rank, false);
        if (axes.empty()) {
          for (int64_t k = 0; k < rank; ++k)
            drop[k] = in[k].isConst() && in[k].c == 1;
        }
        for (int64_t a : axes) {
          std::optional<int64_t> ax = normAxis(a, rank);
          if (!ax)
            return fail("axis " + Twine(a) + " out of range");
          if (in[*ax].isConst() && in[*ax].c != 1)
            return fail("cannot squeeze dim " + Twine(*ax) + " of size " +
                        Twine(in[*ax].c));
          drop[*ax] = true;
        }
        for (int64_t k = 0; k < rank; ++k)
          if (!drop[k])
            out.push_back(in[k]);
      } else {
        int64_t outRank = rank + int64_t(axes.size());
        SmallVector<bool> isNew(outRank, false);
        for (int64_t a : axes) {
          std::optional<int64_t> ax = normAxis(a, outRank);
          if (!ax || isNew[*ax])
            return fail("invalid axis " + Twine(a));
          isNew[*ax] = true;
        }
        unsigned next = 0;
        for (int64_t k = 0; k < outRank; ++k)
          out.push_back(isNew[k] ? SymInt::cst(1) : in[next++]);
      }
    }
    return done(emitReshape(x, out));
}

LogicalResult Importer::onExpand() {
  FailureOr<Value> xv = inputTensor(0);
  FailureOr<SmallVector<SymInt>> shape = symInts(1);
  if (failed(xv) || failed(shape))
    return failure();

  Value x = *xv;
  SmallVector<SymInt> in = dimsOf(x);
  int64_t r = int64_t(in.size()), s = int64_t(shape->size());
  int64_t rank = std::max(r, s);
  SmallVector<SymInt> out;
  bool same = r == rank;
  for (int64_t o = 0; o < rank; ++o) {
    int64_t ji = o - (rank - r), js = o - (rank - s);
    std::optional<SymInt> di, ds;
    if (ji >= 0)
      di = in[ji];
    if (js >= 0)
      ds = (*shape)[js];
    auto isOne = [](const std::optional<SymInt> &d) {
      return !d || (d->isConst() && d->c == 1);
    };
    SymInt d;
    if (ds && ds->fromData && !ds->isConst()) // broadcast-compatible: max
      d = di ? sMax(*di, *ds) : *ds;
    else if (isOne(ds))
      d = di ? *di : SymInt::cst(1);
    else if (isOne(di))
      d = *ds;
    else {
      if (di->isConst() && ds->isConst() && di->c != ds->c)
        return fail("cannot expand dim of size " + Twine(di->c) + " to " +
                    Twine(ds->c));
      d = *di;
    }
    same &= di && sameSym(*di, d);
    out.push_back(d);
  }
  if (same)
    return done(x);
  return done(emitElementwise(
      {x}, elemOf(x),
      [](OpBuilder &, Location, ArrayRef<Value> a) { return a[0]; },
      ArrayRef<SymInt>(out)));
}

LogicalResult Importer::onConcat() {
  if (auto symArgs = symbolicArgs()) {
    do {
      SmallVector<SymArg> &args = *symArgs;
      SmallVector<SymInt> out;
      for (const SymArg &a : args) {
        if (a.rank0)
          return fail("Concat of scalars");
        out.append(a.elems.begin(), a.elems.end());
      }
      setOutputSym(0, out, false, args[0].elem);
      return success();
    } while (false);
  }
    SmallVector<Value> ins;
    for (int i = 0; i < node->input_size(); ++i) {
      FailureOr<Value> v = inputTensor(unsigned(i));
      if (failed(v))
        return failure();
      ins.push_back(*v);
    }
    int64_t rank = rankOf(ins[0]);
    std::optional<int64_t> axis = normAxis(attrInt("axis", 0), rank);
    if (!axis)
      return fail("axis out of range");
    Type elem = elemOf(ins[0]);
    SmallVector<SymInt> outDims = dimsOf(ins[0]);
    SmallVector<Value> pieces;
    SymInt total = SymInt::cst(0);
    for (Value v : ins) {
      if (rankOf(v) != rank || elemOf(v) != elem)
        return fail("inputs differ in rank or element type");
      SmallVector<SymInt> d = dimsOf(v);
      for (int64_t k = 0; k < rank; ++k)
        if (k != *axis && d[k].isConst() && outDims[k].isConst() &&
            d[k].c != outDims[k].c)
          return fail("input dims differ outside the concat axis");
      if (d[*axis].isConst() && d[*axis].c == 0)
        continue;
      pieces.push_back(v);
      total = sAdd(total, d[*axis]);
    }
    if (pieces.size() == 1 && rankOf(pieces[0]) == rank)
      return done(pieces[0]);
    outDims[*axis] = total;
    Value acc = emptyTensor(outDims, elem);
    SymInt offset = SymInt::cst(0);
    for (Value v : pieces) {
      SmallVector<SymInt> d = dimsOf(v);
      SmallVector<SymInt> offs(rank, SymInt::cst(0)), strides(rank, SymInt::cst(1));
      offs[*axis] = offset;
      acc = tensor::InsertSliceOp::create(b, loc, v, acc, foldResults(offs),
                                          foldResults(d), foldResults(strides));
      setDims(acc, outDims);
      offset = sAdd(offset, d[*axis]);
    }
    return done(acc);
}

LogicalResult Importer::onSlice() {
  if (auto symArgs = symbolicArgs()) {
    do {
      SmallVector<SymArg> &args = *symArgs;
      SmallVector<int64_t> starts, ends, axes, steps;
      if (args[0].rank0 || !symConsts(args, 1, starts) || !symConsts(args, 2, ends) ||
          (symPresent(args, 3) && !symConsts(args, 3, axes)) ||
          (symPresent(args, 4) && !symConsts(args, 4, steps)) || starts.size() != 1) {
        break; // not all constant: the tensor path
      }
      int64_t n = int64_t(args[0].elems.size());
      int64_t s = starts[0], e = ends[0], st = steps.empty() ? 1 : steps[0];
      if (st == 0)
        return fail("Slice step is 0");
      if (s < 0)
        s += n;
      if (e < 0)
        e += n;
      SmallVector<SymInt> out;
      if (st > 0) {
        s = std::clamp<int64_t>(s, 0, n);
        e = std::clamp<int64_t>(e, 0, n);
        for (int64_t k = s; k < e; k += st)
          out.push_back(args[0].elems[k]);
      } else {
        s = std::clamp<int64_t>(s, -1, n - 1);
        e = std::clamp<int64_t>(e, -1, n - 1);
        for (int64_t k = s; k > e; k += st)
          out.push_back(args[0].elems[k]);
      }
      setOutputSym(0, out, false, args[0].elem);
      return success();
    } while (false);
  }
    FailureOr<Value> xv = inputTensor(0);
    FailureOr<SmallVector<SymInt>> starts = symInts(1), ends = symInts(2);
    if (failed(xv) || failed(starts) || failed(ends))
      return failure();
    Value x = *xv;
    int64_t rank = rankOf(x);
    SmallVector<int64_t> axes, steps;
    if (hasInput(3)) {
      FailureOr<SmallVector<int64_t>> a = constInts(3);
      if (failed(a))
        return failure();
      axes = *a;
    } else {
      for (int64_t k = 0; k < int64_t(starts->size()); ++k)
        axes.push_back(k);
    }
    if (hasInput(4)) {
      FailureOr<SmallVector<int64_t>> s = constInts(4);
      if (failed(s))
        return failure();
      steps = *s;
    } else {
      steps.assign(axes.size(), 1);
    }
    if (starts->size() != axes.size() || ends->size() != axes.size() ||
        steps.size() != axes.size())
      return fail("starts, ends, axes and steps differ in length");
    SmallVector<SymInt> dims = dimsOf(x);
    SmallVector<SymInt> offs(rank, SymInt::cst(0)), sizes(dims),
        strides(rank, SymInt::cst(1));
    for (auto [k, a] : llvm::enumerate(axes)) {
      std::optional<int64_t> ax = normAxis(a, rank);
      if (!ax)
        return fail("axis " + Twine(a) + " out of range");
      int64_t step = steps[k];
      if (step <= 0)
        return fail("only positive Slice steps are supported, got " +
                    Twine(step));
      SymInt dim = dims[*ax];
      // Clamp like numpy: negative indices count from the end, then the
      // range is clipped to [0, dim].
      auto norm = [&](SymInt s) {
        if (s.isConst()) {
          if (s.c < 0)
            s = sAdd(s, dim);
          else if (dim.isConst() && s.c > dim.c)
            return dim;
          else if (s.c >= (int64_t(1) << 62))
            return dim;
          else if (!dim.isConst())
            return sMin(s, dim);
          return sMin(sMax(s, SymInt::cst(0)), dim);
        }
        SymInt neg = sCmp(P::slt, s, SymInt::cst(0));
        s = sSelect(neg, sAdd(s, dim), s);
        return sMin(sMax(s, SymInt::cst(0)), dim);
      };
      SymInt st = norm((*starts)[k]), en = norm((*ends)[k]);
      SymInt size = sMax(sCeilDiv(sSub(en, st), SymInt::cst(step)),
                         SymInt::cst(0));
      offs[*ax] = st;
      sizes[*ax] = size;
      strides[*ax] = SymInt::cst(step);
    }
    return done(emitSlice(x, offs, sizes, strides));
}

LogicalResult Importer::onSplit() {
  FailureOr<Value> xv = inputTensor(0);
  if (failed(xv))
    return failure();
  Value x = *xv;
  int64_t rank = rankOf(x);
  std::optional<int64_t> axis = normAxis(attrInt("axis", 0), rank);
  if (!axis)
    return fail("axis out of range");
  SmallVector<SymInt> dims = dimsOf(x);
  SmallVector<SymInt> sizes;
  int64_t nOut = node->output_size();
  if (hasInput(1)) {
    FailureOr<SmallVector<SymInt>> s = symInts(1);
    if (failed(s))
      return failure();
    sizes = *s;
  } else if (auto s = attrInts("split")) {
    for (int64_t v : *s)
      sizes.push_back(SymInt::cst(v));
  } else {
    SymInt d = dims[*axis];
    if (!d.isConst())
      return fail("equal Split of a dynamic dim");
    int64_t n = attrInt("num_outputs", nOut);
    int64_t chunk = (d.c + n - 1) / n;
    for (int64_t k = 0; k < n; ++k)
      sizes.push_back(SymInt::cst(std::min(chunk, d.c - k * chunk)));
  }
  if (int64_t(sizes.size()) != nOut)
    return fail("Split has " + Twine(nOut) + " outputs but " +
                Twine(sizes.size()) + " sizes");
  SymInt offset = SymInt::cst(0);
  for (int64_t k = 0; k < nOut; ++k) {
    SmallVector<SymInt> offs(rank, SymInt::cst(0)), sz(dims),
        strides(rank, SymInt::cst(1));
    offs[*axis] = offset;
    sz[*axis] = sizes[k];
    FailureOr<Value> r =
        sizes[k].isConst() && sizes[k].c == 0
            ? FailureOr<Value>(emptyTensor(sz, elemOf(x)))
            : emitSlice(x, offs, sz, strides);
    if (failed(r))
      return failure();
    setOutputTensor(unsigned(k), *r);
    offset = sAdd(offset, sizes[k]);
  }
  if (dims[*axis].isConst() && offset.isConst() && offset.c != dims[*axis].c)
    return fail("Split sizes add up to " + Twine(offset.c) + ", not " +
                Twine(dims[*axis].c));
  return success();
}

/// Tile: out[i] = x[i mod d] per dim, repeats known at import time (or
/// computed at run time from shape arithmetic).
LogicalResult Importer::onTile() {
  FailureOr<OValue *> in = input(0);
  FailureOr<SmallVector<SymInt>> reps = symInts(1);
  if (failed(in) || failed(reps))
    return failure();
  SmallVector<SymInt> dims = dimsOf(**in);
  int64_t rank = int64_t(dims.size());
  if (int64_t(reps->size()) != rank)
    return fail("repeats has " + Twine(reps->size()) + " entries for rank " +
                Twine(rank));
  for (const SymInt &r : *reps)
    if (r.isConst() && r.c < 0)
      return fail("negative repeat " + Twine(r.c));
  // A small integer vector tiled by constants stays symbolic.
  if ((*in)->sym && rank == 1 && (*reps)[0].isConst()) {
    SmallVector<SymInt> out;
    for (int64_t k = 0; k < (*reps)[0].c; ++k)
      out.append((*in)->sym->begin(), (*in)->sym->end());
    setOutputSym(0, out, false, (*in)->type.getElementType());
    return success();
  }
  FailureOr<Value> xv = materialize(**in);
  if (failed(xv))
    return failure();
  Value x = *xv;
  SmallVector<SymInt> outDims;
  bool identity = true;
  for (int64_t k = 0; k < rank; ++k) {
    outDims.push_back(sMul(dims[k], (*reps)[k]));
    identity &= (*reps)[k].isConst() && (*reps)[k].c == 1;
  }
  if (identity)
    return done(x);
  SmallVector<Value> dimVals;
  for (const SymInt &d : dims)
    dimVals.push_back(toIndex(d));
  Value init = emptyTensor(outDims, elemOf(x));
  SmallVector<utils::IteratorType> iters(rank, utils::IteratorType::parallel);
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{init.getType()}, ValueRange{}, ValueRange{init},
      SmallVector<AffineMap>{AffineMap::getMultiDimIdentityMap(unsigned(rank), ctx)},
      iters, [&](OpBuilder &nb, Location nl, ValueRange) {
        SmallVector<Value> coords;
        for (int64_t k = 0; k < rank; ++k) {
          Value i = linalg::IndexOp::create(nb, nl, uint64_t(k));
          bool repeated = !((*reps)[k].isConst() && (*reps)[k].c == 1);
          coords.push_back(repeated
                               ? Value(arith::RemUIOp::create(nb, nl, i, dimVals[k]))
                               : i);
        }
        linalg::YieldOp::create(nb, nl,
                                tensor::ExtractOp::create(nb, nl, x, coords).getResult());
      });
  Value res = generic.getResult(0);
  setDims(res, outDims);
  return done(res);
}

void registerShapeOps(OpRegistry &r) {
  r.onOp("Shape", 13, {1, 1}, &Importer::onShape);
  r.onOp("Size", 13, {1, 1}, &Importer::onShape);
  r.onOp("Transpose", 13, {1, 1}, &Importer::onTranspose);
  r.onOp("Reshape", 13, {2, 2}, &Importer::onReshapeLike);
  r.onOp("Flatten", 13, {1, 1}, &Importer::onReshapeLike);
  r.onOp("Squeeze", 13, {1, 2}, &Importer::onReshapeLike);
  r.onOp("Unsqueeze", 13, {1, 2}, &Importer::onReshapeLike);
  r.onOp("Expand", 13, {2, 2}, &Importer::onExpand);
  r.onOp("Concat", 13, {1, -1}, &Importer::onConcat);
  r.onOp("Slice", 13, {3, 5}, &Importer::onSlice);
  r.onOp("Split", 13, {1, 2, 1, -1}, &Importer::onSplit);
  r.onOp("Tile", 13, {2, 2}, &Importer::onTile);
}

} // namespace quant_mlir::onnx_import
