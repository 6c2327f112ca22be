//===- Importer.cpp - ONNX graph to MLIR: values, shapes, weights ---------===//
// The importer's infrastructure: symbolic shape integers, tensor emitters
// with ONNX broadcasting, the weight archive, and the driver.
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

//===----------------------------------------------------------------------===//
// Names
//===----------------------------------------------------------------------===//

std::string modulePathFromNodeName(StringRef nodeName) {
  // torch.onnx names nodes after the module scope that emitted them.
  if (!nodeName.consume_front("/"))
    return "";
  SmallVector<StringRef> parts;
  nodeName.split(parts, '/');
  if (parts.size() < 2)
    return "";
  parts.pop_back();
  return join(parts, ".");
}

bool isParameterName(StringRef name) {
  return !name.empty() && !name.contains("::") && !name.contains('/') &&
         !name.starts_with("_");
}

//===----------------------------------------------------------------------===//
// Errors and values
//===----------------------------------------------------------------------===//

Importer::Importer(ImportedModel &result, MLIRContext *ctx,
                   const ImportOptions &options)
    : result(result), storage(*result.storage), ctx(ctx), options(options),
      b(ctx), loc(UnknownLoc::get(ctx)) {}

LogicalResult Importer::fail(const Twine &msg) {
  if (!error.empty())
    return failure();
  if (!node) {
    error = msg.str();
    return failure();
  }
  std::string name = node->name();
  if (name.empty() && node->output_size())
    name = node->output(0);
  error = ("node '" + name + "' (" + node->op_type() + "): " + msg).str();
  return failure();
}

bool Importer::hasInput(unsigned i) const {
  return int(i) < node->input_size() && !node->input(int(i)).empty();
}

FailureOr<OValue *> Importer::input(unsigned i) {
  if (!hasInput(i))
    return fail("missing input #" + Twine(i));
  auto it = values.find(node->input(int(i)));
  if (it == values.end())
    return fail("input '" + node->input(int(i)) +
                "' is not defined before use");
  return &it->second;
}

FailureOr<Value> Importer::inputTensor(unsigned i) {
  FailureOr<OValue *> v = input(i);
  if (failed(v))
    return failure();
  return materialize(**v);
}

FailureOr<SmallVector<SymInt>> Importer::symInts(unsigned i) {
  FailureOr<OValue *> v = input(i);
  if (failed(v))
    return failure();
  if (!(*v)->sym)
    return fail("input '" + node->input(int(i)) +
                "' must be a small integer tensor known at import time "
                "(shape arithmetic)");
  return *(*v)->sym;
}

FailureOr<SmallVector<int64_t>> Importer::constInts(unsigned i) {
  FailureOr<SmallVector<SymInt>> s = symInts(i);
  if (failed(s))
    return failure();
  SmallVector<int64_t> out;
  for (const SymInt &e : *s) {
    if (!e.isConst())
      return fail("input '" + node->input(int(i)) +
                  "' must be a constant at import time");
    out.push_back(e.c);
  }
  return out;
}

void Importer::setOutput(unsigned i, OValue v) {
  if (int(i) >= node->output_size() || node->output(int(i)).empty())
    return;
  values[node->output(int(i))] = std::move(v);
}

void Importer::setOutputTensor(unsigned i, Value v) {
  OValue o;
  o.type = cast<RankedTensorType>(v.getType());
  o.tensor = v;
  setOutput(i, std::move(o));
}

void Importer::setOutputSym(unsigned i, SmallVector<SymInt> elems, bool rank0,
                            Type elemType) {
  OValue o;
  SmallVector<int64_t> shape;
  if (!rank0)
    shape.push_back(int64_t(elems.size()));
  o.type = RankedTensorType::get(shape, elemType);
  o.sym = std::move(elems);
  setOutput(i, std::move(o));
}

/// Reads element `i` of an integer payload as int64.
static int64_t readInt(const TensorData &t, int64_t i) {
  const uint8_t *p = t.bytes.data() + i * dtypeSize(t.dtype);
  switch (t.dtype) {
  case onnx::TensorProto::INT64: {
    int64_t v;
    std::memcpy(&v, p, 8);
    return v;
  }
  case onnx::TensorProto::INT32: {
    int32_t v;
    std::memcpy(&v, p, 4);
    return v;
  }
  case onnx::TensorProto::INT8:
    return int8_t(*p);
  default: // uint8, bool
    return *p;
  }
}

OValue Importer::valueFromTensorData(const TensorData &t, bool isInitializer) {
  OValue v;
  Type elem = dtypeToType(t.dtype, ctx);
  v.type = RankedTensorType::get(t.shape, elem);
  int64_t numel = t.numElements();
  bool isInt = isa<IntegerType>(elem);
  // Shape-like integers are evaluated at import time.
  if (isInt && t.shape.size() <= 1 && numel <= 64) {
    SmallVector<SymInt> elems;
    for (int64_t i = 0; i < numel; ++i)
      elems.push_back(SymInt::cst(readInt(t, i)));
    v.sym = std::move(elems);
    return v;
  }
  // Parameters go to the archive; only scalars and small integer tensors
  // are inlined.
  if (isInitializer && !t.shape.empty() && !(isInt && numel < 64)) {
    v.init = &t;
    return v;
  }
  DenseElementsAttr attr;
  if (elem.isInteger(1)) {
    SmallVector<bool> bits;
    for (int64_t i = 0; i < numel; ++i)
      bits.push_back(t.bytes[i] != 0);
    attr = DenseElementsAttr::get(v.type, bits);
  } else {
    size_t es = dtypeSize(t.dtype);
    bool splat = numel > 0;
    for (int64_t i = 1; splat && i < numel; ++i)
      splat = std::memcmp(t.bytes.data(), t.bytes.data() + i * es, es) == 0;
    // A one-element buffer is read as a splat.
    ArrayRef<char> raw(reinterpret_cast<const char *>(t.bytes.data()),
                       splat ? es : t.bytes.size());
    attr = DenseElementsAttr::getFromRawBuffer(v.type, raw);
  }
  v.tensor = arith::ConstantOp::create(b, loc, attr);
  return v;
}

FailureOr<Value> Importer::materialize(OValue &v) {
  if (v.tensor)
    return v.tensor;
  if (v.init) {
    Value w = weightRef(v.init, /*transposed=*/false, v.init->name);
    if (v.initTransposed) {
      FailureOr<Value> t = emitTranspose(w, {1, 0});
      if (failed(t))
        return failure();
      w = *t;
    }
    v.tensor = w;
    return w;
  }
  if (v.sym) {
    Type elem = v.type.getElementType();
    bool allConst = llvm::all_of(*v.sym, [](const SymInt &s) { return s.isConst(); });
    if (allConst) {
      SmallVector<APInt> ints;
      for (const SymInt &s : *v.sym)
        ints.push_back(APInt(elem.getIntOrFloatBitWidth(), uint64_t(s.c),
                             /*isSigned=*/true, /*implicitTrunc=*/true));
      v.tensor = arith::ConstantOp::create(
          b, loc, DenseElementsAttr::get(v.type, ints));
    } else {
      SmallVector<Value> elems;
      for (const SymInt &s : *v.sym)
        elems.push_back(toInt(s, elem));
      v.tensor = tensor::FromElementsOp::create(b, loc, v.type, elems);
    }
    return v.tensor;
  }
  return fail("value has no definition");
}

//===----------------------------------------------------------------------===//
// Symbolic integers
//===----------------------------------------------------------------------===//

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
    return SymInt::cst(x.c + y.c);
  if (x.isConst() && x.c == 0)
    return y;
  if (y.isConst() && y.c == 0)
    return x;
  Value v = arith::AddIOp::create(b, loc, toIndex(x), toIndex(y));
  return SymInt{0, v, x.nonNeg && y.nonNeg};
}

SymInt Importer::sSub(SymInt x, SymInt y) {
  if (x.isConst() && y.isConst())
    return SymInt::cst(x.c - y.c);
  if (y.isConst() && y.c == 0)
    return x;
  if (sameSym(x, y))
    return SymInt::cst(0);
  Value v = arith::SubIOp::create(b, loc, toIndex(x), toIndex(y));
  return SymInt{0, v, false};
}

SymInt Importer::sMul(SymInt x, SymInt y) {
  if (x.isConst() && y.isConst())
    return SymInt::cst(x.c * y.c);
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
    return SymInt::cst(y.c == 0 ? 0 : x.c / y.c);
  if (y.isConst() && y.c == 1)
    return x;
  if (sameSym(x, y))
    return SymInt::cst(1);
  Value v = arith::DivSIOp::create(b, loc, toIndex(x), toIndex(y));
  return SymInt{0, v, x.nonNeg && y.nonNeg};
}

SymInt Importer::sMod(SymInt x, SymInt y) {
  if (x.isConst() && y.isConst()) {
    if (y.c == 0)
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

static std::string shapeStr(Type t) {
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

std::string Importer::archiveKey(const TensorData *t, bool transposed,
                                 StringRef preferredKey) {
  auto k = std::make_pair(t, transposed);
  auto it = keyOf.find(k);
  if (it != keyOf.end())
    return it->second;
  std::string base = preferredKey.empty() ? t->name : preferredKey.str();
  if (base.empty())
    base = "tensor";
  std::string key = base;
  // Two different tensors asking for one name (a weight needed both as is
  // and transposed): the later one gets a numbered key.
  for (int n = 1; archive.count(key); ++n)
    key = base + "." + std::to_string(n);
  archive[key] = {t, transposed};
  keyOf[k] = key;
  return key;
}

Value Importer::weightRef(const TensorData *t, bool transposed,
                          StringRef preferredKey) {
  std::string key = archiveKey(t, transposed, preferredKey);
  auto it = weightOps.find(key);
  if (it != weightOps.end())
    return it->second;
  SmallVector<int64_t> shape(t->shape.begin(), t->shape.end());
  if (transposed)
    std::swap(shape[0], shape[1]);
  Type compute = dtypeToType(t->dtype, ctx);
  Type stored = t->dtype == onnx::TensorProto::UINT8
                    ? IntegerType::get(ctx, 8, IntegerType::Unsigned)
                    : compute;
  // Weights are defined at the top of the function so that every later use
  // is dominated, whichever node referenced them first.
  OpBuilder::InsertionGuard guard(b);
  if (weightAnchor)
    b.setInsertionPointAfter(weightAnchor);
  else
    b.setInsertionPointToStart(b.getInsertionBlock());
  Value w = quant_mlir::wq::WeightOp::create(
      b, loc, RankedTensorType::get(shape, stored), b.getStringAttr(key));
  if (stored != compute)
    w = tensor::BitcastOp::create(b, loc, RankedTensorType::get(shape, compute),
                                  w);
  weightAnchor = w.getDefiningOp();
  weightOps[key] = w;
  return w;
}

std::string Importer::linearName(StringRef module) {
  std::string base = module.empty() ? "linear" : module.str();
  std::string name = base;
  for (int n = 1; linearNames.contains(name); ++n)
    name = base + "_" + std::to_string(n);
  linearNames.insert(name);
  return name;
}

FailureOr<Value> Importer::emitLinear(Value x, const OValue &w,
                                      const TensorData *bias,
                                      StringRef moduleName) {
  const TensorData *t = w.init;
  auto xt = cast<RankedTensorType>(x.getType());
  Type elem = xt.getElementType();
  if (dtypeToType(t->dtype, ctx) != elem)
    return fail("weight '" + t->name + "' is " + dtypeName(t->dtype) +
                " but the activation is " + shapeStr(elem));
  // [N, K] when the graph transposes the initializer (nn.Linear), else the
  // initializer is [K, N] (Conv1D, folded graphs) and is stored transposed.
  bool isNK = w.initTransposed;
  int64_t n = isNK ? t->shape[0] : t->shape[1];
  int64_t k = isNK ? t->shape[1] : t->shape[0];
  SmallVector<SymInt> xDims = dimsOf(x);
  if (xDims.empty())
    return fail("linear input must have rank >= 1");
  if (xDims.back().isConst() && xDims.back().c != k)
    return fail("input " + shapeStr(xt) + " does not match weight '" +
                t->name + "' with K = " + Twine(k));
  std::string name = linearName(moduleName);
  std::string preferred = isNK && isParameterName(t->name)
                              ? t->name
                              : name + ".weight";
  Value wv = weightRef(t, !isNK, preferred);
  Value bv;
  if (bias)
    bv = weightRef(bias, false,
                   isParameterName(bias->name) ? bias->name : name + ".bias");
  SmallVector<SymInt> outDims(xDims.begin(), xDims.end() - 1);
  outDims.push_back(SymInt::cst(n));
  if (!xDims.back().isConst()) {
    // wq.linear wants a static K; the weight fixes it.
    SmallVector<SymInt> fixed(xDims);
    fixed.back() = SymInt::cst(k);
    Value c = tensor::CastOp::create(b, loc, typeFor(fixed, elem), x);
    setDims(c, fixed);
    x = c;
  }
  Value r = quant_mlir::wq::LinearOp::create(b, loc, typeFor(outDims, elem), x,
                                             wv, bv, b.getStringAttr(name),
                                             /*stats=*/{}, /*scheme=*/{});
  setDims(r, outDims);
  ++linearCount;
  return r;
}

//===----------------------------------------------------------------------===//
// Driver
//===----------------------------------------------------------------------===//

Error Importer::run(StringRef path) {
  if (Error err = loadModelProto(path, storage.proto))
    return err;
  StringRef dir = sys::path::parent_path(path);
  storage.modelDir = dir.empty() ? "." : dir.str();
  const onnx::ModelProto &model = storage.proto;

  opset = -1;
  for (const auto &o : model.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx")
      opset = o.version();
  if (opset < 0)
    return createStringError("'" + path + "' imports no default ONNX opset");
  if (opset < 13 || opset > 21)
    return createStringError("opset " + Twine(opset) +
                             " is not supported (supported: 13..21)");

  const onnx::GraphProto &g = model.graph();
  loc = NameLoc::get(b.getStringAttr(g.name().empty() ? "graph" : g.name()));
  result.module = ModuleOp::create(UnknownLoc::get(ctx));
  ModuleOp module = *result.module;
  module->setAttr(quant_mlir::wq::WQDialect::kArchiveAttrName,
                  b.getStringAttr(options.archiveName));

  llvm::StringSet<> initNames;
  for (const auto &t : g.initializer())
    initNames.insert(t.name());

  // Graph inputs become function arguments; batch and sequence stay dynamic.
  SmallVector<Type> argTypes;
  SmallVector<std::string> argNames;
  for (const auto &in : g.input()) {
    if (initNames.contains(in.name()))
      continue;
    if (!in.type().has_tensor_type())
      return createStringError("graph input '" + in.name() +
                               "' is not a tensor");
    const auto &tt = in.type().tensor_type();
    Type elem = dtypeToType(tt.elem_type(), ctx);
    if (!elem)
      return createStringError("graph input '" + in.name() +
                               "': unsupported dtype " +
                               dtypeName(tt.elem_type()));
    if (!tt.has_shape())
      return createStringError("graph input '" + in.name() +
                               "' has no rank");
    SmallVector<int64_t> shape;
    for (const auto &d : tt.shape().dim())
      shape.push_back(d.has_dim_value() ? d.dim_value() : ShapedType::kDynamic);
    argTypes.push_back(RankedTensorType::get(shape, elem));
    argNames.push_back(in.name());
  }
  b.setInsertionPointToEnd(module.getBody());
  auto func = func::FuncOp::create(b, loc, "main_graph",
                                   b.getFunctionType(argTypes, {}));
  Block *entry = func.addEntryBlock();
  b.setInsertionPointToStart(entry);
  for (auto [i, name] : llvm::enumerate(argNames)) {
    OValue v;
    v.type = cast<RankedTensorType>(argTypes[i]);
    v.tensor = entry->getArgument(unsigned(i));
    values[name] = v;
    func.setArgAttr(unsigned(i), "onnx.name", b.getStringAttr(name));
  }

  for (const auto &t : g.initializer()) {
    storage.tensors.emplace_back();
    TensorData &data = storage.tensors.back();
    if (Error err = decodeTensor(t, storage, data, /*allowBoolAndDouble=*/false,
                                 "initializer '" + t.name() + "'"))
      return err;
    values[t.name()] = valueFromTensorData(data, /*isInitializer=*/true);
  }

  for (const auto &n : g.node())
    nodes.push_back(&n);
  for (auto [i, n] : llvm::enumerate(nodes))
    for (const std::string &in : n->input())
      if (!in.empty())
        consumers[in].push_back(int(i));
  for (const auto &out : g.output())
    graphOutputs.insert(out.name());

  for (int i = 0, e = int(nodes.size()); i < e; ++i) {
    if (skipNodes.contains(i))
      continue;
    node = nodes[i];
    loc = NameLoc::get(b.getStringAttr(
        node->name().empty() ? node->op_type() : node->name()));
    if (failed(convertNode(i)))
      return createStringError(error);
  }
  node = nullptr;

  SmallVector<Value> results;
  SmallVector<Type> resultTypes;
  for (const auto &out : g.output()) {
    auto it = values.find(out.name());
    if (it == values.end())
      return createStringError("graph output '" + out.name() +
                               "' is never computed");
    FailureOr<Value> v = materialize(it->second);
    if (failed(v))
      return createStringError(error);
    results.push_back(*v);
    resultTypes.push_back(v->getType());
  }
  func::ReturnOp::create(b, loc, results);
  func.setType(b.getFunctionType(argTypes, resultTypes));
  for (auto [i, out] : llvm::enumerate(g.output()))
    func.setResultAttr(unsigned(i), "onnx.name", b.getStringAttr(out.name()));

  // Internal errors (a malformed op) surface as verifier diagnostics.
  std::string diag;
  {
    ScopedDiagnosticHandler handler(ctx, [&](Diagnostic &d) {
      raw_string_ostream os(diag);
      os << d << "\n";
      return success();
    });
    if (failed(verify(module)))
      return createStringError("importer produced invalid IR: " + diag);
    if (options.cleanup) {
      PassManager pm(ctx);
      pm.addPass(createCSEPass());
      pm.addPass(createCanonicalizerPass());
      if (failed(pm.run(module)))
        return createStringError("cleanup failed: " + diag);
    }
  }

  // Archive exactly the tensors the IR still references.
  std::set<std::string> referenced;
  int64_t linears = 0;
  module.walk([&](Operation *op) {
    if (auto w = dyn_cast<quant_mlir::wq::WeightOp>(op))
      referenced.insert(w.getName().str());
    else if (isa<quant_mlir::wq::LinearOp>(op))
      ++linears;
  });
  uint64_t bytes = 0;
  for (const std::string &key : referenced) {
    const ArchiveEntry &e = archive.at(key);
    const TensorData &t = *e.src;
    safetensors::DType dt = *dtypeToArchive(t.dtype);
    SmallVector<int64_t> shape(t.shape.begin(), t.shape.end());
    // Mmapped external data is paged out behind the writer, and transposes
    // are computed by it chunk by chunk: peak RSS stays far below the
    // weights' size.
    auto source = t.mapped ? safetensors::Writer::Source::FileMapping
                           : safetensors::Writer::Source::Memory;
    if (e.transposed)
      std::swap(shape[0], shape[1]);
    Error err = e.transposed ? result.archive.addTransposed(key, dt, shape,
                                                            t.bytes, source)
                             : result.archive.add(key, dt, shape, t.bytes,
                                                  source);
    if (err)
      return err;
    bytes += t.bytes.size();
  }
  result.archive.setMetadata("format", "pt");
  result.archive.setMetadata("producer", "quant-import");
  result.stats.nodes = int64_t(nodes.size());
  result.stats.linears = linears;
  result.stats.tensors = int64_t(result.archive.size());
  result.stats.bytes = bytes;
  result.stats.opset = opset;
  return Error::success();
}

//===----------------------------------------------------------------------===//
// Entry points
//===----------------------------------------------------------------------===//

ImportedModel::ImportedModel() : storage(std::make_unique<Storage>()) {}
ImportedModel::~ImportedModel() = default;

void registerImportDialects(DialectRegistry &registry) {
  registry.insert<arith::ArithDialect, func::FuncDialect, linalg::LinalgDialect,
                  math::MathDialect, tensor::TensorDialect,
                  quant_mlir::wq::WQDialect>();
}

Expected<std::unique_ptr<ImportedModel>>
importONNXModel(StringRef path, MLIRContext *context,
                const ImportOptions &options) {
  DialectRegistry registry;
  registerImportDialects(registry);
  context->appendDialectRegistry(registry);
  context->loadDialect<arith::ArithDialect, func::FuncDialect,
                       linalg::LinalgDialect, math::MathDialect,
                       tensor::TensorDialect, quant_mlir::wq::WQDialect>();
  std::unique_ptr<ImportedModel> model(new ImportedModel());
  Importer importer(*model, context, options);
  if (Error err = importer.run(path))
    return std::move(err);
  return std::move(model);
}

} // namespace quant_mlir::onnx_import
