//===- WQBuilders.cpp - IR the wq passes and importers both build ---------===//
// The activation scale of AWQ, shared by wq-awq and quant-import --checkpoint
// so an imported AutoAWQ checkpoint is the module quant-compile writes.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Dialect/WQ/IR/WQBuilders.h"
#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;

Value quant_mlir::wq::buildActivationScale(OpBuilder &b, Location loc,
                                           Value input, StringRef scaleName) {
  auto type = cast<RankedTensorType>(input.getType());
  Type elem = type.getElementType();
  int64_t rank = type.getRank(), k = type.getShape().back();
  Value scales =
      WeightOp::create(b, loc, RankedTensorType::get({k}, elem), scaleName);
  SmallVector<Value> dynamic;
  for (int64_t d = 0; d < rank; ++d)
    if (type.isDynamicDim(d))
      dynamic.push_back(tensor::DimOp::create(b, loc, input, d));
  Value empty = tensor::EmptyOp::create(b, loc, type.getShape(), elem, dynamic);
  AffineMap id = b.getMultiDimIdentityMap(rank);
  AffineMap last =
      AffineMap::get(rank, 0, b.getAffineDimExpr(rank - 1), b.getContext());
  auto div = linalg::GenericOp::create(
      b, loc, TypeRange{type}, ValueRange{input, scales}, ValueRange{empty},
      ArrayRef<AffineMap>{id, last, id},
      SmallVector<utils::IteratorType>(rank, utils::IteratorType::parallel),
      [](OpBuilder &nb, Location l, ValueRange args) {
        linalg::YieldOp::create(
            nb, l,
            ValueRange{
                arith::DivFOp::create(nb, l, args[0], args[1]).getResult()});
      });
  return div.getResult(0);
}
