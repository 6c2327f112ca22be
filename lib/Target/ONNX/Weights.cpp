//===- Weights.cpp - initializers as archive tensors and wq.linear -------===//
// Archive keys for initializers (HF names where known), wq.weight ops at the
// top of the entry, and MatMuls on weights as wq.linear.
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
  // and transposed): the later one gets a numbered key, unless it holds
  // the same bytes (the same weight in both branches of a merged decoder).
  auto sameTensor = [&](const ArchiveEntry &e) {
    return e.transposed == transposed && e.src->dtype == t->dtype &&
           e.src->shape == t->shape &&
           e.src->bytes.size() == t->bytes.size() &&
           std::memcmp(e.src->bytes.data(), t->bytes.data(),
                       t->bytes.size()) == 0;
  };
  for (int n = 1; archive.count(key); ++n) {
    if (sameTensor(archive.at(key))) {
      keyOf[k] = key;
      return key;
    }
    key = base + "." + std::to_string(n);
  }
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

} // namespace quant_mlir::onnx_import
