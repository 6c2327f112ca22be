//===- LinearOps.cpp - ONNX MatMul and Gemm ------------------------------===//
// A MatMul or Gemm whose B is a 2-D float initializer is a linear layer
// (wq.linear, with a following bias Add folded in); any other is a
// linalg contraction.
//===----------------------------------------------------------------------===//

#include "Importer.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace llvm;

namespace quant_mlir::onnx_import {

LogicalResult Importer::convertMatMul(bool gemm) {
  FailureOr<OValue *> ain = input(0), bin = input(1);
  if (failed(ain) || failed(bin))
    return failure();
  OValue &a = **ain, &bw = **bin;
  int64_t transA = gemm ? attrInt("transA", 0) : 0;
  int64_t transB = gemm ? attrInt("transB", 0) : 0;
  float alpha = gemm ? attrFloat("alpha", 1.0f) : 1.0f;
  float beta = gemm ? attrFloat("beta", 1.0f) : 1.0f;

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
            add->input_size() == 2 && add->output_size() == 1 &&
            add->input(0) != add->input(1)) {
          // (The Add is fused here, before the operator table checks its
          // arity: one without an output stays unfused and is refused there.)
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
    std::string module = modulePathFromNodeName(stripNamePrefix(node->name()));
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

LogicalResult Importer::onMatMul() { return convertMatMul(/*gemm=*/false); }
LogicalResult Importer::onGemm() { return convertMatMul(/*gemm=*/true); }

void registerLinearOps(OpRegistry &r) {
  r.onOp("MatMul", 13, {2, 2}, &Importer::onMatMul);
  r.onOp("Gemm", 13, {2, 3}, &Importer::onGemm);
}

} // namespace quant_mlir::onnx_import
