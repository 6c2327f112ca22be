//===- ExpandQuantizedLinear.cpp - wq-expand-quantized-linear ---------------===//
// Rewrites a quantized linear layer into its reference semantics.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h"
#include "quant-mlir/Dialect/WQ/Transforms/Patterns.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace quant_mlir::wq {
#define GEN_PASS_DEF_WQEXPANDQUANTIZEDLINEAR
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h.inc"
} // namespace quant_mlir::wq

using namespace mlir;
using namespace quant_mlir::wq;

namespace {
struct ExpandQuantizedLinear : OpRewritePattern<QuantizedLinearOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(QuantizedLinearOp op,
                                PatternRewriter &rewriter) const override {
    // The weight is dequantized in the scales' type (f16 math for f16
    // scales); wq.linear accepts a weight type other than the activations'.
    auto scalesType = op.getScales().getType();
    int64_t k = op.getInput().getType().getShape().back();
    int64_t n = scalesType.getDimSize(1);
    auto weightType =
        RankedTensorType::get({n, k}, scalesType.getElementType());
    Value weight = DequantizeOp::create(
        rewriter, op.getLoc(), weightType, op.getCodes(), op.getScales(),
        op.getZeros(), op.getGIdx(), op.getSchemeAttr(), op.getPackingAttr());
    // The result is a float layer on a dequantized weight: it carries no
    // scheme, so no quantization pass picks it up again.
    rewriter.replaceOpWithNewOp<LinearOp>(op, op.getType(), op.getInput(),
                                          weight, op.getBias(),
                                          op.getNameAttr(), StatsAttr(),
                                          SchemeAttr());
    return success();
  }
};

struct ExpandPass
    : public quant_mlir::wq::impl::WQExpandQuantizedLinearBase<ExpandPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateExpandQuantizedLinearPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace

void quant_mlir::wq::populateExpandQuantizedLinearPatterns(
    RewritePatternSet &patterns) {
  patterns.add<ExpandQuantizedLinear>(patterns.getContext());
}
