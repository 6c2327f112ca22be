//===- ElementwiseOps.cpp - ONNX elementwise operators ----------------===//
// Unary math, arithmetic, comparisons, logic, Where and Cast: linalg.generic
// with ONNX broadcasting; on small integer vectors (shape arithmetic) the
// same handlers compute SymInts at import time.
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

/// The scalar body of an ONNX unary op that is one math dialect op.
template <typename OpT>
static Value mathUnary(OpBuilder &b, Location loc, Value x, Type) {
  return OpT::create(b, loc, x).getResult();
}

static Value one(OpBuilder &nb, Location nl, Type t) {
  return Importer::scalarConst(nb, nl, t, 1.0);
}

LogicalResult Importer::onUnaryMath() {
  using ScalarFn = Value (*)(OpBuilder &, Location, Value, Type);
  StringRef op = node->op_type();
  ScalarFn fn =
      llvm::StringSwitch<ScalarFn>(op)
          .Case("Sqrt", mathUnary<math::SqrtOp>)
          .Case("Exp", mathUnary<math::ExpOp>)
          .Case("Log", mathUnary<math::LogOp>)
          .Case("Sin", mathUnary<math::SinOp>)
          .Case("Cos", mathUnary<math::CosOp>)
          .Case("Tanh", mathUnary<math::TanhOp>)
          .Case("Erf", mathUnary<math::ErfOp>)
          .Case("Floor", mathUnary<math::FloorOp>)
          .Case("Ceil", mathUnary<math::CeilOp>)
          .Case("Reciprocal",
                [](OpBuilder &nb, Location nl, Value x, Type t) -> Value {
                  return arith::DivFOp::create(nb, nl, one(nb, nl, t), x);
                })
          .Case("Sigmoid",
                [](OpBuilder &nb, Location nl, Value x, Type t) -> Value {
                  Value e = math::ExpOp::create(
                      nb, nl, arith::NegFOp::create(nb, nl, x));
                  Value d = arith::AddFOp::create(nb, nl, one(nb, nl, t), e);
                  return arith::DivFOp::create(nb, nl, one(nb, nl, t), d);
                })
          .Case("Relu",
                [](OpBuilder &nb, Location nl, Value x, Type t) -> Value {
                  return arith::MaximumFOp::create(
                      nb, nl, x, Importer::scalarConst(nb, nl, t, 0.0));
                })
          .Case("Softplus",
                [](OpBuilder &nb, Location nl, Value x, Type t) -> Value {
                  Value e = math::ExpOp::create(nb, nl, x);
                  return math::LogOp::create(
                      nb, nl, arith::AddFOp::create(nb, nl, one(nb, nl, t), e));
                })
          .Default(nullptr);
  if (!fn)
    return fail("unsupported operator");
  FailureOr<Value> x = floatInput(0);
  if (failed(x))
    return failure();
  Type elem = elemOf(*x);
  return done(emitElementwise(
      {*x}, elem, [&](OpBuilder &nb, Location nl, ArrayRef<Value> a) {
        return fn(nb, nl, a[0], elem);
      }));
}

LogicalResult Importer::onGelu() {
    std::string approx = attrString("approximate", "none");
    if (approx != "none" && approx != "tanh")
      return fail("unsupported approximate = '" + approx + "'");
    bool useTanh = approx == "tanh";
    FailureOr<Value> xv = floatInput(0);
  if (failed(xv))
    return failure();
  Type elemT = elemOf(*xv);
  return done(emitElementwise({*xv}, elemT, [&](OpBuilder &nb, Location nl, ArrayRef<Value> args) {
    Value x = args[0];
    Type t = elemT;
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
    }));
}

LogicalResult Importer::onNegAbsNot() {
  StringRef op = node->op_type();
  if (auto args = symbolicArgs()) {
    SmallVector<SymArg> &a = *args;
    if (op == "Not")
      return symElementwise(a, {0}, b.getI1Type(), [&](ArrayRef<SymInt> o) {
        return sCmp(P::eq, o[0], SymInt::cst(0));
      });
    if (op == "Neg")
      return symElementwise(a, {0}, a[0].elem, [&](ArrayRef<SymInt> o) {
        return sSub(SymInt::cst(0), o[0]);
      });
    return symElementwise(a, {0}, a[0].elem, [&](ArrayRef<SymInt> o) {
      return o[0].nonNeg ? o[0] : sMax(o[0], sSub(SymInt::cst(0), o[0]));
    });
  }
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

LogicalResult Importer::onBinaryArith() {
  StringRef op = node->op_type();
  if (auto args = symbolicArgs()) {
    return symElementwise(*args, {0, 1}, (*args)[0].elem,
                          [&](ArrayRef<SymInt> o) {
                            if (op == "Add")
                              return sAdd(o[0], o[1]);
                            if (op == "Sub")
                              return sSub(o[0], o[1]);
                            if (op == "Mul")
                              return sMul(o[0], o[1]);
                            if (op == "Div")
                              return sDiv(o[0], o[1]);
                            return sMod(o[0], o[1]);
                          });
  }
    Value x, y;
    if (failed(binaryOperands(x, y)))
      return failure();
    Type elem = elemOf(x);
    bool isFloat = isa<FloatType>(elem);
    if (op == "Mod" && isFloat && attrInt("fmod", 0) == 0)
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
            if (attrInt("fmod", 0))
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

LogicalResult Importer::onPow() {
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

LogicalResult Importer::onVariadic() {
  StringRef op = node->op_type();
  if (auto args = symbolicArgs(); args && args->size() == 2 &&
                                 (op == "Max" || op == "Min")) {
    return symElementwise(*args, {0, 1}, (*args)[0].elem,
                          [&](ArrayRef<SymInt> o) {
                            return op == "Max" ? sMax(o[0], o[1])
                                               : sMin(o[0], o[1]);
                          });
  }
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

LogicalResult Importer::onCompare() {
  StringRef op = node->op_type();
  if (auto args = symbolicArgs()) {
    P pred = llvm::StringSwitch<P>(op)
                 .Case("Equal", P::eq)
                 .Case("Less", P::slt)
                 .Case("LessOrEqual", P::sle)
                 .Case("Greater", P::sgt)
                 .Default(P::sge);
    return symElementwise(*args, {0, 1}, b.getI1Type(),
                          [&](ArrayRef<SymInt> o) {
                            return sCmp(pred, o[0], o[1]);
                          });
  }
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

LogicalResult Importer::onLogical() {
  StringRef op = node->op_type();
  if (auto args = symbolicArgs(); args && op != "Xor") {
    auto asBool = [&](SymInt s) { return sCmp(P::ne, s, SymInt::cst(0)); };
    return symElementwise(*args, {0, 1}, b.getI1Type(),
                          [&](ArrayRef<SymInt> o) {
                            SymInt x = asBool(o[0]), y = asBool(o[1]);
                            return op == "And"
                                       ? sSelect(x, y, SymInt::cst(0))
                                       : sSelect(x, SymInt::cst(1), y);
                          });
  }
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

LogicalResult Importer::onWhere() {
  if (auto args = symbolicArgs()) {
    return symElementwise(*args, {0, 1, 2}, (*args)[1].elem,
                          [&](ArrayRef<SymInt> o) {
                            return sSelect(o[0], o[1], o[2]);
                          });
  }
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

LogicalResult Importer::onCast() {
  StringRef op = node->op_type();
  if (auto args = symbolicArgs(); args && op == "Cast") {
    Type to = dtypeToType(int32_t(attrInt("to", 0)), ctx);
    if (to && isa<IntegerType>(to)) // to float: a real tensor
      return symElementwise(*args, {0}, to, [&](ArrayRef<SymInt> o) {
        return to.isInteger(1) ? sCmp(P::ne, o[0], SymInt::cst(0)) : o[0];
      });
  }
    FailureOr<Value> x = inputTensor(0);
    if (failed(x))
      return failure();
    Type to;
    if (op == "Cast") {
      int64_t dt = attrInt("to", 0);
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

void registerElementwiseOps(OpRegistry &r) {
  for (StringRef name : {"Sqrt", "Exp", "Log", "Sin", "Cos", "Tanh", "Erf",
                         "Floor", "Ceil", "Reciprocal", "Sigmoid", "Relu",
                         "Softplus"})
    r.onOp(name, 13, {1, 1}, &Importer::onUnaryMath);
  r.onOp("Gelu", 20, {1, 1}, &Importer::onGelu);
  for (StringRef name : {"Neg", "Abs", "Not"})
    r.onOp(name, 13, {1, 1}, &Importer::onNegAbsNot);
  for (StringRef name : {"Add", "Sub", "Mul", "Div", "Mod"})
    r.onOp(name, 13, {2, 2}, &Importer::onBinaryArith);
  r.onOp("Pow", 13, {2, 2}, &Importer::onPow);
  for (StringRef name : {"Max", "Min", "Sum", "Mean"})
    r.onOp(name, 13, {1, -1}, &Importer::onVariadic);
  for (StringRef name :
       {"Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"})
    r.onOp(name, 13, {2, 2}, &Importer::onCompare);
  for (StringRef name : {"And", "Or", "Xor"})
    r.onOp(name, 13, {2, 2}, &Importer::onLogical);
  r.onOp("Where", 13, {3, 3}, &Importer::onWhere);
  r.onOp("Cast", 13, {1, 1}, &Importer::onCast);
  r.onOp("CastLike", 15, {2, 2}, &Importer::onCast);
}

} // namespace quant_mlir::onnx_import
