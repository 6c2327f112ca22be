//===- Ops.cpp - ONNX node lowering ---------------------------------------===//
// One handler per ONNX operator: shape arithmetic is evaluated symbolically,
// everything else becomes linalg/tensor/arith/math, MatMul on weights wq.linear.
//===----------------------------------------------------------------------===//

#include "Importer.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Matchers.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"

#include <cmath>

using namespace mlir;
using namespace llvm;

namespace quant_mlir::onnx_import {

using P = arith::CmpIPredicate;

//===----------------------------------------------------------------------===//
// Attributes
//===----------------------------------------------------------------------===//

static const onnx::AttributeProto *findAttr(const onnx::NodeProto &n,
                                            StringRef name) {
  for (const auto &a : n.attribute())
    if (a.name() == name)
      return &a;
  return nullptr;
}

static int64_t attrInt(const onnx::NodeProto &n, StringRef name, int64_t def) {
  const auto *a = findAttr(n, name);
  return a ? a->i() : def;
}

static float attrFloat(const onnx::NodeProto &n, StringRef name, float def) {
  const auto *a = findAttr(n, name);
  return a ? a->f() : def;
}

static std::optional<SmallVector<int64_t>> attrInts(const onnx::NodeProto &n,
                                                    StringRef name) {
  const auto *a = findAttr(n, name);
  if (!a)
    return std::nullopt;
  return SmallVector<int64_t>(a->ints().begin(), a->ints().end());
}

static std::string attrString(const onnx::NodeProto &n, StringRef name,
                              StringRef def) {
  const auto *a = findAttr(n, name);
  return a ? a->s() : def.str();
}

/// The scalar body of an ONNX unary op that is one math dialect op.
template <typename OpT>
static Value mathUnary(OpBuilder &b, Location loc, Value x, Type) {
  return OpT::create(b, loc, x).getResult();
}

static Type elemOf(Value v) {
  return cast<RankedTensorType>(v.getType()).getElementType();
}

static int64_t rankOf(Value v) {
  return cast<RankedTensorType>(v.getType()).getRank();
}

/// The value of a splat float constant, if `v` is one.
static std::optional<double> splatFloat(Value v) {
  DenseElementsAttr dense;
  if (!matchPattern(v, m_Constant(&dense)) || !dense.isSplat())
    return std::nullopt;
  if (auto f = dyn_cast<FloatAttr>(dense.getSplatValue<Attribute>()))
    return f.getValueAsDouble();
  if (auto i = dyn_cast<IntegerAttr>(dense.getSplatValue<Attribute>()))
    return double(i.getValue().getSExtValue());
  return std::nullopt;
}

//===----------------------------------------------------------------------===//
// Symbolic evaluation of shape arithmetic
//===----------------------------------------------------------------------===//

namespace {
struct SymArg {
  SmallVector<SymInt> elems;
  bool rank0;
  Type elem;
};
} // namespace

LogicalResult Importer::convertSymbolic(StringRef op, bool &handled) {
  handled = true;
  Type i64 = b.getI64Type(), i1 = b.getI1Type();

  if (op == "Constant") {
    if (const auto *a = findAttr(*node, "value")) {
      storage.tensors.emplace_back();
      TensorData &t = storage.tensors.back();
      if (Error err = decodeTensor(a->t(), storage, t,
                                   /*allowBoolAndDouble=*/true, "value"))
        return fail(toString(std::move(err)));
      setOutput(0, valueFromTensorData(t, /*isInitializer=*/false));
      return success();
    }
    if (const auto *a = findAttr(*node, "value_int")) {
      setOutputSym(0, {SymInt::cst(a->i())}, true, i64);
      return success();
    }
    if (const auto *a = findAttr(*node, "value_ints")) {
      SmallVector<SymInt> e;
      for (int64_t v : a->ints())
        e.push_back(SymInt::cst(v));
      setOutputSym(0, e, false, i64);
      return success();
    }
    if (const auto *a = findAttr(*node, "value_float")) {
      setOutputTensor(0, tensorConst(b.getF32Type(), a->f()));
      return success();
    }
    if (const auto *a = findAttr(*node, "value_floats")) {
      SmallVector<float> f(a->floats().begin(), a->floats().end());
      auto type = RankedTensorType::get({int64_t(f.size())}, b.getF32Type());
      setOutputTensor(0, arith::ConstantOp::create(
                             b, loc, DenseElementsAttr::get(type, ArrayRef(f))));
      return success();
    }
    return fail("unsupported Constant attribute");
  }

  if (op == "Shape" || op == "Size") {
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
    int64_t start = attrInt(*node, "start", 0), end = attrInt(*node, "end", r);
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

  if (op == "Identity" || op == "Dropout") {
    FailureOr<OValue *> in = input(0);
    if (failed(in))
      return failure();
    setOutput(0, **in);
    if (op == "Dropout" && node->output_size() > 1 && !node->output(1).empty())
      return fail("the Dropout mask output is not supported");
    return success();
  }

  // The rest only when every input is symbolic.
  SmallVector<SymArg> args;
  for (int i = 0; i < node->input_size(); ++i) {
    if (node->input(i).empty()) {
      args.push_back({{}, false, {}});
      continue;
    }
    auto it = values.find(node->input(i));
    if (it == values.end() || !it->second.sym) {
      handled = false;
      return success();
    }
    args.push_back({*it->second.sym, it->second.type.getRank() == 0,
                    it->second.type.getElementType()});
  }
  if (args.empty()) {
    handled = false;
    return success();
  }
  auto present = [&](unsigned i) {
    return i < args.size() && !node->input(int(i)).empty();
  };
  auto constsOf = [&](unsigned i, SmallVector<int64_t> &out) {
    for (const SymInt &s : args[i].elems) {
      if (!s.isConst())
        return false;
      out.push_back(s.c);
    }
    return true;
  };

  // Elementwise with rank <= 1 broadcasting.
  auto elementwise = [&](ArrayRef<unsigned> which, Type outElem,
                         llvm::function_ref<SymInt(ArrayRef<SymInt>)> fn)
      -> LogicalResult {
    size_t n = 1;
    bool rank0 = true;
    for (unsigned i : which) {
      size_t m = args[i].elems.size();
      rank0 &= args[i].rank0;
      if (m != 1) {
        if (n != 1 && n != m)
          return fail("operands are not broadcast-compatible");
        n = m;
      }
      if (m == 0)
        n = 0;
    }
    SmallVector<SymInt> out;
    for (size_t k = 0; k < n; ++k) {
      SmallVector<SymInt> ops;
      for (unsigned i : which)
        ops.push_back(args[i].elems.size() == 1 ? args[i].elems[0]
                                                : args[i].elems[k]);
      out.push_back(fn(ops));
    }
    setOutputSym(0, out, rank0, outElem);
    return success();
  };
  auto binary = [&](llvm::function_ref<SymInt(SymInt, SymInt)> fn) {
    return elementwise({0, 1}, args[0].elem,
                       [&](ArrayRef<SymInt> o) { return fn(o[0], o[1]); });
  };
  auto compare = [&](P pred) {
    return elementwise({0, 1}, i1, [&](ArrayRef<SymInt> o) {
      return sCmp(pred, o[0], o[1]);
    });
  };
  auto asBool = [&](SymInt s) { return sCmp(P::ne, s, SymInt::cst(0)); };

  if (op == "Add")
    return binary([&](SymInt x, SymInt y) { return sAdd(x, y); });
  if (op == "Sub")
    return binary([&](SymInt x, SymInt y) { return sSub(x, y); });
  if (op == "Mul")
    return binary([&](SymInt x, SymInt y) { return sMul(x, y); });
  if (op == "Div")
    return binary([&](SymInt x, SymInt y) { return sDiv(x, y); });
  if (op == "Mod")
    return binary([&](SymInt x, SymInt y) { return sMod(x, y); });
  if ((op == "Max" || op == "Min") && args.size() == 2)
    return binary([&](SymInt x, SymInt y) {
      return op == "Max" ? sMax(x, y) : sMin(x, y);
    });
  if (op == "Equal")
    return compare(P::eq);
  if (op == "Less")
    return compare(P::slt);
  if (op == "LessOrEqual")
    return compare(P::sle);
  if (op == "Greater")
    return compare(P::sgt);
  if (op == "GreaterOrEqual")
    return compare(P::sge);
  if (op == "And" || op == "Or")
    return elementwise({0, 1}, i1, [&](ArrayRef<SymInt> o) {
      SymInt x = asBool(o[0]), y = asBool(o[1]);
      return op == "And" ? sSelect(x, y, SymInt::cst(0))
                         : sSelect(x, SymInt::cst(1), y);
    });
  if (op == "Not")
    return elementwise({0}, i1, [&](ArrayRef<SymInt> o) {
      return sCmp(P::eq, o[0], SymInt::cst(0));
    });
  if (op == "Neg")
    return elementwise({0}, args[0].elem, [&](ArrayRef<SymInt> o) {
      return sSub(SymInt::cst(0), o[0]);
    });
  if (op == "Abs")
    return elementwise({0}, args[0].elem, [&](ArrayRef<SymInt> o) {
      return o[0].nonNeg ? o[0] : sMax(o[0], sSub(SymInt::cst(0), o[0]));
    });
  if (op == "Where" && args.size() == 3)
    return elementwise({0, 1, 2}, args[1].elem, [&](ArrayRef<SymInt> o) {
      return sSelect(o[0], o[1], o[2]);
    });
  if (op == "Cast") {
    Type to = dtypeToType(int32_t(attrInt(*node, "to", 0)), ctx);
    if (!to || !isa<IntegerType>(to)) {
      handled = false; // to float: a real tensor
      return success();
    }
    return elementwise({0}, to, [&](ArrayRef<SymInt> o) {
      return to.isInteger(1) ? asBool(o[0]) : o[0];
    });
  }

  if (op == "Gather") {
    SmallVector<int64_t> idx;
    int64_t axis = attrInt(*node, "axis", 0);
    if (args[0].rank0 || (axis != 0 && axis != -1) || !constsOf(1, idx)) {
      handled = false;
      return success();
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
  }
  if (op == "Unsqueeze" || op == "Squeeze") {
    SmallVector<int64_t> axes;
    if (present(1) && !constsOf(1, axes)) {
      handled = false;
      return success();
    }
    if (auto a = attrInts(*node, "axes"))
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
    handled = false;
    return success();
  }
  if (op == "Concat") {
    SmallVector<SymInt> out;
    for (const SymArg &a : args) {
      if (a.rank0)
        return fail("Concat of scalars");
      out.append(a.elems.begin(), a.elems.end());
    }
    setOutputSym(0, out, false, args[0].elem);
    return success();
  }
  if (op == "Reshape") {
    SmallVector<int64_t> shape;
    if (!constsOf(1, shape) || shape.size() > 1) {
      handled = false;
      return success();
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
  }
  if (op == "Slice") {
    SmallVector<int64_t> starts, ends, axes, steps;
    if (args[0].rank0 || !constsOf(1, starts) || !constsOf(2, ends) ||
        (present(3) && !constsOf(3, axes)) ||
        (present(4) && !constsOf(4, steps)) || starts.size() != 1) {
      handled = false;
      return success();
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
  }
  if (op == "ConstantOfShape") {
    SmallVector<int64_t> shape;
    if (!constsOf(0, shape) || shape.size() > 1 ||
        (shape.size() == 1 && shape[0] > 64)) {
      handled = false;
      return success();
    }
    int64_t value = 0;
    Type elem = b.getF32Type();
    if (const auto *a = findAttr(*node, "value")) {
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
      handled = false;
      return success();
    }
    int64_t n = shape.empty() ? 1 : shape[0];
    setOutputSym(0, SmallVector<SymInt>(n, SymInt::cst(value)), shape.empty(),
                 elem);
    return success();
  }
  if (op == "Range") {
    if (!args[0].rank0 || args[0].elems.size() != 1 ||
        args[1].elems.size() != 1 || args[2].elems.size() != 1) {
      handled = false;
      return success();
    }
    SymInt start = args[0].elems[0], limit = args[1].elems[0],
           delta = args[2].elems[0];
    if (!start.isConst() || !limit.isConst() || !delta.isConst()) {
      handled = false;
      return success();
    }
    if (delta.c == 0)
      return fail("Range delta is 0");
    int64_t n = std::max<int64_t>(sCeilDiv(sSub(limit, start), delta).c, 0);
    if (n > 64) {
      handled = false;
      return success();
    }
    SmallVector<SymInt> out;
    for (int64_t k = 0; k < n; ++k)
      out.push_back(SymInt::cst(start.c + k * delta.c));
    setOutputSym(0, out, false, args[0].elem);
    return success();
  }
  handled = false;
  return success();
}

//===----------------------------------------------------------------------===//
// MatMul / Gemm
//===----------------------------------------------------------------------===//

LogicalResult Importer::convertMatMul(int index, bool gemm) {
  FailureOr<OValue *> ain = input(0), bin = input(1);
  if (failed(ain) || failed(bin))
    return failure();
  OValue &a = **ain, &bw = **bin;
  int64_t transA = gemm ? attrInt(*node, "transA", 0) : 0;
  int64_t transB = gemm ? attrInt(*node, "transB", 0) : 0;
  float alpha = gemm ? attrFloat(*node, "alpha", 1.0f) : 1.0f;
  float beta = gemm ? attrFloat(*node, "beta", 1.0f) : 1.0f;

  bool isLinear = bw.init && bw.type.getRank() == 2 &&
                  isa<FloatType>(bw.type.getElementType()) && !a.init &&
                  !transA && alpha == 1.0f;
  if (isLinear) {
    OValue w = bw;
    if (transB) // Gemm's B is already [N, K]
      w.initTransposed = !w.initTransposed;
    int64_t n = w.initTransposed ? w.init->shape[0] : w.init->shape[1];
    const TensorData *bias = nullptr;
    int biasNode = -1;
    bool cFolded = false;
    auto isBias = [&](const OValue *v) {
      return v && v->init && !v->initTransposed && v->init->shape.size() == 1 &&
             v->init->shape[0] == n && v->init->dtype == w.init->dtype;
    };
    if (gemm && hasInput(2)) {
      FailureOr<OValue *> c = input(2);
      if (failed(c))
        return failure();
      if (isBias(*c) && beta == 1.0f) {
        bias = (*c)->init;
        cFolded = true;
      }
    }
    // MatMul + Add(bias) is nn.Linear with a bias.
    const std::string &out = node->output(0);
    if (!bias && !gemm && !graphOutputs.contains(out)) {
      auto it = consumers.find(out);
      if (it != consumers.end() && it->second.size() == 1) {
        const onnx::NodeProto *add = nodes[it->second[0]];
        if (add->op_type() == "Add" && add->domain().empty() &&
            add->input_size() == 2 && add->input(0) != add->input(1)) {
          const std::string &other =
              add->input(0) == out ? add->input(1) : add->input(0);
          auto ov = values.find(other);
          if (ov != values.end() && isBias(&ov->second)) {
            bias = ov->second.init;
            biasNode = it->second[0];
          }
        }
      }
    }
    FailureOr<Value> x = materialize(a);
    if (failed(x))
      return failure();
    std::string module = modulePathFromNodeName(node->name());
    if (module.empty()) {
      StringRef wname = w.init->name;
      if (isParameterName(wname) && wname.ends_with(".weight"))
        module = wname.drop_back(7).str();
      else
        module = node->name().empty() ? node->output(0) : node->name();
    }
    FailureOr<Value> r = emitLinear(*x, w, bias, module);
    if (failed(r))
      return failure();
    Value res = *r;
    if (gemm && hasInput(2) && !cFolded) {
      FailureOr<Value> c = inputTensor(2);
      if (failed(c))
        return failure();
      Type elem = elemOf(res);
      FailureOr<Value> s = emitElementwise(
          {res, *c}, elem, [&](OpBuilder &nb, Location nl, ArrayRef<Value> v) {
            Value bc = arith::MulFOp::create(
                nb, nl, v[1], scalarConst(nb, nl, elem, beta));
            return arith::AddFOp::create(nb, nl, v[0], bc).getResult();
          });
      if (failed(s))
        return failure();
      res = *s;
    }
    setOutputTensor(0, res);
    if (biasNode >= 0) {
      skipNodes.insert(biasNode);
      OValue o;
      o.type = cast<RankedTensorType>(res.getType());
      o.tensor = res;
      values[nodes[biasNode]->output(0)] = o;
    }
    return success();
  }

  FailureOr<Value> av = materialize(a), bv = materialize(bw);
  if (failed(av) || failed(bv))
    return failure();
  Value A = *av, B = *bv;
  if (gemm) {
    if (rankOf(A) != 2 || rankOf(B) != 2)
      return fail("Gemm operands must be 2-D");
    if (transA) {
      FailureOr<Value> t = emitTranspose(A, {1, 0});
      if (failed(t))
        return failure();
      A = *t;
    }
    if (transB) {
      FailureOr<Value> t = emitTranspose(B, {1, 0});
      if (failed(t))
        return failure();
      B = *t;
    }
  }
  FailureOr<Value> r = emitMatMul(A, B);
  if (failed(r))
    return failure();
  Value res = *r;
  if (gemm && (alpha != 1.0f || hasInput(2))) {
    Type elem = elemOf(res);
    SmallVector<Value> ops = {res};
    if (hasInput(2)) {
      FailureOr<Value> c = inputTensor(2);
      if (failed(c))
        return failure();
      ops.push_back(*c);
    }
    FailureOr<Value> s = emitElementwise(
        ops, elem, [&](OpBuilder &nb, Location nl, ArrayRef<Value> v) {
          Value y = arith::MulFOp::create(nb, nl, v[0],
                                          scalarConst(nb, nl, elem, alpha));
          if (v.size() > 1)
            y = arith::AddFOp::create(
                nb, nl, y,
                arith::MulFOp::create(nb, nl, v[1],
                                      scalarConst(nb, nl, elem, beta)));
          return y;
        });
    if (failed(s))
      return failure();
    res = *s;
  }
  setOutputTensor(0, res);
  return success();
}

//===----------------------------------------------------------------------===//
// Dispatch
//===----------------------------------------------------------------------===//

/// Normalizes `axis` into [0, rank).
static std::optional<int64_t> normAxis(int64_t axis, int64_t rank) {
  if (axis < 0)
    axis += rank;
  if (axis < 0 || axis >= rank)
    return std::nullopt;
  return axis;
}

LogicalResult Importer::convertNode(int index) {
  StringRef op = node->op_type();
  if (!node->domain().empty() && node->domain() != "ai.onnx")
    return fail("unsupported operator (domain '" + node->domain() + "')");

  bool handled = false;
  if (failed(convertSymbolic(op, handled)))
    return failure();
  if (handled)
    return success();

  if (op == "MatMul")
    return convertMatMul(index, /*gemm=*/false);
  if (op == "Gemm")
    return convertMatMul(index, /*gemm=*/true);

  auto done = [&](FailureOr<Value> r) -> LogicalResult {
    if (failed(r))
      return failure();
    setOutputTensor(0, *r);
    return success();
  };
  auto floatInput = [&](unsigned i) -> FailureOr<Value> {
    FailureOr<Value> x = inputTensor(i);
    if (failed(x))
      return failure();
    if (!isa<FloatType>(elemOf(*x))) {
      std::string s;
      raw_string_ostream os(s);
      os << x->getType();
      return fail("expects a float tensor, got " + s);
    }
    return *x;
  };

  // ---- unary elementwise --------------------------------------------------
  using ScalarFn = llvm::function_ref<Value(OpBuilder &, Location, Value, Type)>;
  auto unaryFloat = [&](ScalarFn fn) -> LogicalResult {
    FailureOr<Value> x = floatInput(0);
    if (failed(x))
      return failure();
    Type elem = elemOf(*x);
    return done(emitElementwise(
        {*x}, elem, [&](OpBuilder &nb, Location nl, ArrayRef<Value> a) {
          return fn(nb, nl, a[0], elem);
        }));
  };
  auto one = [&](OpBuilder &nb, Location nl, Type t) {
    return scalarConst(nb, nl, t, 1.0);
  };

  if (op == "Sqrt")
    return unaryFloat(mathUnary<math::SqrtOp>);
  if (op == "Exp")
    return unaryFloat(mathUnary<math::ExpOp>);
  if (op == "Log")
    return unaryFloat(mathUnary<math::LogOp>);
  if (op == "Sin")
    return unaryFloat(mathUnary<math::SinOp>);
  if (op == "Cos")
    return unaryFloat(mathUnary<math::CosOp>);
  if (op == "Tanh")
    return unaryFloat(mathUnary<math::TanhOp>);
  if (op == "Erf")
    return unaryFloat(mathUnary<math::ErfOp>);
  if (op == "Floor")
    return unaryFloat(mathUnary<math::FloorOp>);
  if (op == "Ceil")
    return unaryFloat(mathUnary<math::CeilOp>);
  if (op == "Reciprocal")
    return unaryFloat([&](OpBuilder &nb, Location nl, Value x, Type t) {
      return arith::DivFOp::create(nb, nl, one(nb, nl, t), x).getResult();
    });
  if (op == "Sigmoid")
    return unaryFloat([&](OpBuilder &nb, Location nl, Value x, Type t) {
      Value e = math::ExpOp::create(nb, nl, arith::NegFOp::create(nb, nl, x));
      Value d = arith::AddFOp::create(nb, nl, one(nb, nl, t), e);
      return arith::DivFOp::create(nb, nl, one(nb, nl, t), d).getResult();
    });
  if (op == "Relu")
    return unaryFloat([&](OpBuilder &nb, Location nl, Value x, Type t) {
      return arith::MaximumFOp::create(nb, nl, x, scalarConst(nb, nl, t, 0.0))
          .getResult();
    });
  if (op == "Softplus")
    return unaryFloat([&](OpBuilder &nb, Location nl, Value x, Type t) {
      Value e = math::ExpOp::create(nb, nl, x);
      return math::LogOp::create(nb, nl,
                                 arith::AddFOp::create(nb, nl, one(nb, nl, t), e))
          .getResult();
    });
  if (op == "Gelu") {
    std::string approx = attrString(*node, "approximate", "none");
    if (approx != "none" && approx != "tanh")
      return fail("unsupported approximate = '" + approx + "'");
    bool useTanh = approx == "tanh";
    return unaryFloat([&](OpBuilder &nb, Location nl, Value x, Type t) {
      Value half = scalarConst(nb, nl, t, 0.5);
      Value inner;
      if (useTanh) {
        Value x3 = arith::MulFOp::create(
            nb, nl, x, arith::MulFOp::create(nb, nl, x, x));
        Value s = arith::AddFOp::create(
            nb, nl, x,
            arith::MulFOp::create(nb, nl, scalarConst(nb, nl, t, 0.044715), x3));
        inner = math::TanhOp::create(
            nb, nl,
            arith::MulFOp::create(nb, nl,
                                  scalarConst(nb, nl, t, std::sqrt(2.0 / M_PI)),
                                  s));
      } else {
        inner = math::ErfOp::create(
            nb, nl,
            arith::MulFOp::create(nb, nl, x,
                                  scalarConst(nb, nl, t, M_SQRT1_2)));
      }
      Value p = arith::AddFOp::create(nb, nl, one(nb, nl, t), inner);
      return arith::MulFOp::create(nb, nl, arith::MulFOp::create(nb, nl, half, x),
                                   p)
          .getResult();
    });
  }
  if (op == "Neg" || op == "Abs" || op == "Not") {
    FailureOr<Value> x = inputTensor(0);
    if (failed(x))
      return failure();
    Type elem = elemOf(*x);
    bool isFloat = isa<FloatType>(elem);
    if (op == "Not" && !elem.isInteger(1))
      return fail("Not expects a bool tensor");
    return done(emitElementwise(
        {*x}, elem, [&](OpBuilder &nb, Location nl, ArrayRef<Value> a) -> Value {
          if (op == "Not")
            return arith::XOrIOp::create(
                nb, nl, a[0],
                arith::ConstantOp::create(nb, nl, nb.getBoolAttr(true)));
          if (op == "Neg")
            return isFloat ? Value(arith::NegFOp::create(nb, nl, a[0]))
                           : Value(arith::SubIOp::create(
                                 nb, nl, scalarConst(nb, nl, elem, 0), a[0]));
          return isFloat ? Value(math::AbsFOp::create(nb, nl, a[0]))
                         : Value(math::AbsIOp::create(nb, nl, a[0]));
        }));
  }

  // ---- binary elementwise -------------------------------------------------
  auto binaryOperands = [&](Value &x, Value &y) -> LogicalResult {
    FailureOr<Value> xv = inputTensor(0), yv = inputTensor(1);
    if (failed(xv) || failed(yv))
      return failure();
    x = *xv;
    y = *yv;
    if (elemOf(x) != elemOf(y)) {
      std::string s;
      raw_string_ostream os(s);
      os << x.getType() << " vs " << y.getType();
      return fail("operand element types differ: " + s);
    }
    return success();
  };
  if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div" ||
      op == "Mod" || ((op == "Max" || op == "Min") && node->input_size() == 2)) {
    Value x, y;
    if (failed(binaryOperands(x, y)))
      return failure();
    Type elem = elemOf(x);
    bool isFloat = isa<FloatType>(elem);
    if (op == "Mod" && isFloat && attrInt(*node, "fmod", 0) == 0)
      return fail("float Mod requires fmod = 1");
    return done(emitElementwise(
        {x, y}, elem, [&](OpBuilder &nb, Location nl, ArrayRef<Value> a) -> Value {
          if (op == "Add")
            return isFloat ? Value(arith::AddFOp::create(nb, nl, a[0], a[1]))
                           : Value(arith::AddIOp::create(nb, nl, a[0], a[1]));
          if (op == "Sub")
            return isFloat ? Value(arith::SubFOp::create(nb, nl, a[0], a[1]))
                           : Value(arith::SubIOp::create(nb, nl, a[0], a[1]));
          if (op == "Mul")
            return isFloat ? Value(arith::MulFOp::create(nb, nl, a[0], a[1]))
                           : Value(arith::MulIOp::create(nb, nl, a[0], a[1]));
          if (op == "Div")
            return isFloat ? Value(arith::DivFOp::create(nb, nl, a[0], a[1]))
                           : Value(arith::DivSIOp::create(nb, nl, a[0], a[1]));
          if (op == "Mod") {
            if (isFloat)
              return arith::RemFOp::create(nb, nl, a[0], a[1]);
            if (attrInt(*node, "fmod", 0))
              return arith::RemSIOp::create(nb, nl, a[0], a[1]);
            // numpy-style: the result takes the divisor's sign.
            Value r = arith::RemSIOp::create(nb, nl, a[0], a[1]);
            Value zero = scalarConst(nb, nl, elem, 0);
            Value rNeg = arith::CmpIOp::create(nb, nl, P::slt, r, zero);
            Value dNeg = arith::CmpIOp::create(nb, nl, P::slt, a[1], zero);
            Value nz = arith::CmpIOp::create(nb, nl, P::ne, r, zero);
            Value fix = arith::AndIOp::create(
                nb, nl, nz, arith::XOrIOp::create(nb, nl, rNeg, dNeg));
            return arith::SelectOp::create(
                nb, nl, fix, arith::AddIOp::create(nb, nl, r, a[1]), r);
          }
          if (op == "Max")
            return isFloat ? Value(arith::MaximumFOp::create(nb, nl, a[0], a[1]))
                           : Value(arith::MaxSIOp::create(nb, nl, a[0], a[1]));
          return isFloat ? Value(arith::MinimumFOp::create(nb, nl, a[0], a[1]))
                         : Value(arith::MinSIOp::create(nb, nl, a[0], a[1]));
        }));
  }
  if (op == "Pow") {
    FailureOr<Value> xv = floatInput(0), yv = inputTensor(1);
    if (failed(xv) || failed(yv))
      return failure();
    Value x = *xv, y = *yv;
    Type elem = elemOf(x);
    std::optional<double> e = splatFloat(y);
    // Small integral exponents (RMSNorm's x^2, GELU's x^3) stay multiplies.
    if (e && (*e == 1.0 || *e == 2.0 || *e == 3.0 || *e == 0.5)) {
      double ev = *e;
      SmallVector<Value> ops = {x};
      if (rankOf(y) > rankOf(x) ||
          cast<RankedTensorType>(y.getType()).getNumElements() > 1)
        ops.push_back(y); // keep the broadcast shape
      return done(emitElementwise(
          ops, elem, [&](OpBuilder &nb, Location nl, ArrayRef<Value> a) -> Value {
            if (ev == 0.5)
              return math::SqrtOp::create(nb, nl, a[0]);
            Value r = a[0];
            for (int k = 1; k < int(ev); ++k)
              r = arith::MulFOp::create(nb, nl, r, a[0]);
            return r;
          }));
    }
    Type yElem = elemOf(y);
    return done(emitElementwise(
        {x, y}, elem, [&](OpBuilder &nb, Location nl, ArrayRef<Value> a) {
          Value p = a[1];
          if (yElem != elem)
            p = isa<FloatType>(yElem)
                    ? Value(yElem.getIntOrFloatBitWidth() >
                                    elem.getIntOrFloatBitWidth()
                                ? Value(arith::TruncFOp::create(nb, nl, elem, p))
                                : Value(arith::ExtFOp::create(nb, nl, elem, p)))
                    : Value(arith::SIToFPOp::create(nb, nl, elem, p));
          return math::PowFOp::create(nb, nl, a[0], p).getResult();
        }));
  }
  if (op == "Max" || op == "Min" || op == "Sum" || op == "Mean") {
    // Variadic forms: fold left.
    SmallVector<Value> ins;
    for (int i = 0; i < node->input_size(); ++i) {
      FailureOr<Value> v = inputTensor(unsigned(i));
      if (failed(v))
        return failure();
      ins.push_back(*v);
    }
    Type elem = elemOf(ins[0]);
    bool isFloat = isa<FloatType>(elem);
    double n = double(ins.size());
    return done(emitElementwise(
        ins, elem, [&](OpBuilder &nb, Location nl, ArrayRef<Value> a) {
          Value r = a[0];
          for (Value v : a.drop_front()) {
            if (op == "Max")
              r = isFloat ? Value(arith::MaximumFOp::create(nb, nl, r, v))
                          : Value(arith::MaxSIOp::create(nb, nl, r, v));
            else if (op == "Min")
              r = isFloat ? Value(arith::MinimumFOp::create(nb, nl, r, v))
                          : Value(arith::MinSIOp::create(nb, nl, r, v));
            else
              r = isFloat ? Value(arith::AddFOp::create(nb, nl, r, v))
                          : Value(arith::AddIOp::create(nb, nl, r, v));
          }
          if (op == "Mean")
            r = arith::DivFOp::create(nb, nl, r, scalarConst(nb, nl, elem, n));
          return r;
        }));
  }
  if (op == "Equal" || op == "Less" || op == "LessOrEqual" ||
      op == "Greater" || op == "GreaterOrEqual") {
    Value x, y;
    if (failed(binaryOperands(x, y)))
      return failure();
    bool isFloat = isa<FloatType>(elemOf(x));
    arith::CmpFPredicate fp = llvm::StringSwitch<arith::CmpFPredicate>(op)
                                  .Case("Equal", arith::CmpFPredicate::OEQ)
                                  .Case("Less", arith::CmpFPredicate::OLT)
                                  .Case("LessOrEqual", arith::CmpFPredicate::OLE)
                                  .Case("Greater", arith::CmpFPredicate::OGT)
                                  .Default(arith::CmpFPredicate::OGE);
    P ip = llvm::StringSwitch<P>(op)
               .Case("Equal", P::eq)
               .Case("Less", P::slt)
               .Case("LessOrEqual", P::sle)
               .Case("Greater", P::sgt)
               .Default(P::sge);
    return done(emitElementwise(
        {x, y}, b.getI1Type(),
        [&](OpBuilder &nb, Location nl, ArrayRef<Value> a) -> Value {
          if (isFloat)
            return arith::CmpFOp::create(nb, nl, fp, a[0], a[1]);
          return arith::CmpIOp::create(nb, nl, ip, a[0], a[1]);
        }));
  }
  if (op == "And" || op == "Or" || op == "Xor") {
    Value x, y;
    if (failed(binaryOperands(x, y)))
      return failure();
    if (!elemOf(x).isInteger(1))
      return fail(op + " expects bool tensors");
    return done(emitElementwise(
        {x, y}, b.getI1Type(),
        [&](OpBuilder &nb, Location nl, ArrayRef<Value> a) -> Value {
          if (op == "And")
            return arith::AndIOp::create(nb, nl, a[0], a[1]);
          if (op == "Or")
            return arith::OrIOp::create(nb, nl, a[0], a[1]);
          return arith::XOrIOp::create(nb, nl, a[0], a[1]);
        }));
  }
  if (op == "Where") {
    FailureOr<Value> c = inputTensor(0), x = inputTensor(1), y = inputTensor(2);
    if (failed(c) || failed(x) || failed(y))
      return failure();
    if (!elemOf(*c).isInteger(1))
      return fail("Where condition must be bool");
    if (elemOf(*x) != elemOf(*y))
      return fail("Where branches have different element types");
    return done(emitElementwise(
        {*c, *x, *y}, elemOf(*x),
        [&](OpBuilder &nb, Location nl, ArrayRef<Value> a) {
          return arith::SelectOp::create(nb, nl, a[0], a[1], a[2]).getResult();
        }));
  }
  if (op == "Cast" || op == "CastLike") {
    FailureOr<Value> x = inputTensor(0);
    if (failed(x))
      return failure();
    Type to;
    if (op == "Cast") {
      int64_t dt = attrInt(*node, "to", 0);
      to = dtypeToType(int32_t(dt), ctx);
      if (!to)
        return fail("unsupported target dtype " + dtypeName(int32_t(dt)));
    } else {
      FailureOr<OValue *> like = input(1);
      if (failed(like))
        return failure();
      to = (*like)->type.getElementType();
    }
    return done(emitCast(*x, to));
  }

  // ---- data movement ------------------------------------------------------
  if (op == "Transpose") {
    FailureOr<OValue *> in = input(0);
    if (failed(in))
      return failure();
    int64_t rank = (*in)->type.getRank();
    SmallVector<int64_t> perm;
    if (auto p = attrInts(*node, "perm"))
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

  if (op == "Reshape" || op == "Flatten" || op == "Squeeze" ||
      op == "Unsqueeze") {
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
      bool allowZero = attrInt(*node, "allowzero", 0) != 0;
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
          attrInt(*node, "axis", 1) == rank
              ? std::optional<int64_t>(rank)
              : normAxis(attrInt(*node, "axis", 1), rank);
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
      } else if (auto a = attrInts(*node, "axes")) {
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

  if (op == "Expand") {
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
      if (isOne(ds))
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

  if (op == "Concat") {
    SmallVector<Value> ins;
    for (int i = 0; i < node->input_size(); ++i) {
      FailureOr<Value> v = inputTensor(unsigned(i));
      if (failed(v))
        return failure();
      ins.push_back(*v);
    }
    int64_t rank = rankOf(ins[0]);
    std::optional<int64_t> axis = normAxis(attrInt(*node, "axis", 0), rank);
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

  if (op == "Slice") {
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

  if (op == "Split") {
    FailureOr<Value> xv = inputTensor(0);
    if (failed(xv))
      return failure();
    Value x = *xv;
    int64_t rank = rankOf(x);
    std::optional<int64_t> axis = normAxis(attrInt(*node, "axis", 0), rank);
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
    } else if (auto s = attrInts(*node, "split")) {
      for (int64_t v : *s)
        sizes.push_back(SymInt::cst(v));
    } else {
      SymInt d = dims[*axis];
      if (!d.isConst())
        return fail("equal Split of a dynamic dim");
      int64_t n = attrInt(*node, "num_outputs", nOut);
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
      FailureOr<Value> r = emitSlice(x, offs, sz, strides);
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

  if (op == "Gather") {
    FailureOr<Value> dv = inputTensor(0), iv = inputTensor(1);
    if (failed(dv) || failed(iv))
      return failure();
    Value data = *dv, indices = *iv;
    int64_t r = rankOf(data), q = rankOf(indices);
    std::optional<int64_t> axis = normAxis(attrInt(*node, "axis", 0), r);
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

  if (op == "Range") {
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
      // Float ranges need constant bounds.
      FailureOr<Value> sv = materialize(**s), lv = materialize(**l),
                       dv = materialize(**d);
      if (failed(sv) || failed(lv) || failed(dv))
        return failure();
      std::optional<double> a = splatFloat(*sv), z = splatFloat(*lv),
                            st = splatFloat(*dv);
      if (!a || !z || !st || *st == 0.0)
        return fail("Range bounds must be integers known at import time or "
                    "constants");
      n = SymInt::cst(std::max<int64_t>(int64_t(std::ceil((*z - *a) / *st)), 0));
      startV = scalarConst(b, loc, elem, *a);
      deltaV = scalarConst(b, loc, elem, *st);
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

  if (op == "ConstantOfShape") {
    FailureOr<SmallVector<SymInt>> shape = symInts(0);
    if (failed(shape))
      return failure();
    TypedAttr value = FloatAttr::get(b.getF32Type(), 0.0);
    if (const auto *a = findAttr(*node, "value")) {
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

  if (op == "Trilu") {
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
    bool upper = attrInt(*node, "upper", 1) != 0;
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

  // ---- normalization and reductions ---------------------------------------
  if (op == "Softmax" || op == "LogSoftmax") {
    FailureOr<Value> xv = floatInput(0);
    if (failed(xv))
      return failure();
    std::optional<int64_t> axis = normAxis(attrInt(*node, "axis", -1), rankOf(*xv));
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

  if (op == "ReduceMean" || op == "ReduceSum" || op == "ReduceMax") {
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
    } else if (auto a = attrInts(*node, "axes")) {
      axes = *a;
    }
    bool keep = attrInt(*node, "keepdims", 1) != 0;
    if (axes.empty()) {
      if (attrInt(*node, "noop_with_empty_axes", 0))
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

  if (op == "LayerNormalization") {
    for (int i = 1; i < node->output_size(); ++i)
      if (!node->output(i).empty())
        return fail("the Mean / InvStdDev outputs are not supported");
    FailureOr<Value> xv = floatInput(0), sv = inputTensor(1);
    if (failed(xv) || failed(sv))
      return failure();
    Value x = *xv;
    int64_t rank = rankOf(x);
    std::optional<int64_t> axis = normAxis(attrInt(*node, "axis", -1), rank);
    if (!axis)
      return fail("axis out of range");
    double eps = attrFloat(*node, "epsilon", 1e-5f);
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

  return fail("unsupported operator");
}

} // namespace quant_mlir::onnx_import
