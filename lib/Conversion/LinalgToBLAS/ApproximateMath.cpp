//===- ApproximateMath.cpp - inline polynomial exp ---------------------------===//
// quant-approximate-math: math.exp (f32) becomes upstream's inline polynomial
// approximation instead of a call of libm's expf, which is slow on the
// masked (-inf) logits of a causal softmax (its overflow/underflow path sets
// errno) and keeps the loop from vectorizing.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Conversion/Passes.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace quant_mlir {
#define GEN_PASS_DEF_QUANTAPPROXIMATEMATH
#include "quant-mlir/Conversion/Passes.h.inc"
} // namespace quant_mlir

using namespace mlir;

namespace {
bool selected(StringRef name) {
  return name == "exp" || name == math::ExpOp::getOperationName();
}

struct QuantApproximateMathPass
    : public quant_mlir::impl::QuantApproximateMathBase<
          QuantApproximateMathPass> {
  void runOnOperation() override {
    SmallVector<Operation *> ops;
    getOperation()->walk([&](math::ExpOp op) {
      if (getElementTypeOrSelf(op.getType()).isF32())
        ops.push_back(op);
    });
    if (ops.empty())
      return;
    RewritePatternSet patterns(&getContext());
    populateMathPolynomialApproximationPatterns(patterns, selected);
    GreedyRewriteConfig config;
    config.setStrictness(GreedyRewriteStrictness::ExistingAndNewOps);
    if (failed(applyOpPatternsGreedily(ops, std::move(patterns), config)))
      return signalPassFailure();
  }
};
} // namespace
