//===- FuseElementwise.cpp - elementwise fusion that keeps contractions ----===//
// quant-fuse-elementwise: upstream's elementwise fusion and reshape
// propagation, with a control that never recomputes a producer (the
// consumer must index the fused operand with a permutation of all its
// loops) and never pushes reshapes through contractions. Upstream's
// linalg-fuse-elementwise-ops fuses RoPE into QK^T and the softmax divide
// into the PV matmul, recomputing them per output column and hiding the
// matmuls from convert-linalg-to-blas. Transposes are the exception: they
// fold into the contraction that reads them (a strided operand, no copy).
//===----------------------------------------------------------------------===//

#include "quant-mlir/Conversion/Passes.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace quant_mlir {
#define GEN_PASS_DEF_QUANTFUSEELEMENTWISE
#include "quant-mlir/Conversion/Passes.h.inc"
} // namespace quant_mlir

using namespace mlir;

namespace {
bool hasReduction(Operation *op) {
  auto linalgOp = dyn_cast_or_null<linalg::LinalgOp>(op);
  return linalgOp && linalgOp.getNumReductionLoops() > 0;
}

bool isContraction(Operation *op) {
  auto linalgOp = dyn_cast_or_null<linalg::LinalgOp>(op);
  return linalgOp && hasReduction(op) && linalgOp.getNumDpsInputs() >= 2;
}

/// A generic that only moves data: one input, all loops parallel, the body
/// yields the input element (a transpose once generalized).
bool isPermutationCopy(Operation *op) {
  auto generic = dyn_cast_or_null<linalg::GenericOp>(op);
  if (!generic || generic.getNumDpsInputs() != 1 ||
      generic.getNumDpsInits() != 1 ||
      generic.getNumParallelLoops() != generic.getNumLoops())
    return false;
  auto yield = cast<linalg::YieldOp>(generic.getBody()->getTerminator());
  return yield.getNumOperands() == 1 &&
         yield.getOperand(0) == generic.getBody()->getArgument(0) &&
         generic.getIndexingMapsArray()[0].isPermutation();
}

bool allowFusion(OpOperand *fused) {
  Operation *producer = fused->get().getDefiningOp();
  Operation *consumer = fused->getOwner();
  if (!producer || !fused->get().hasOneUse())
    return false;
  // A transpose feeding a contraction folds into the contraction's operand
  // map: nothing is recomputed (it is a copy), convert-linalg-to-blas reads
  // the strided operand where it lies, and the copy goes (K^T for QK^T and
  // V's head transpose for PV, per layer).
  if (isContraction(consumer) && isPermutationCopy(producer) &&
      consumer->getNumRegions() == 1 &&
      llvm::is_contained(cast<linalg::LinalgOp>(consumer).getDpsInputOperands(),
                         fused))
    return true;
  if (isContraction(producer) || isContraction(consumer))
    return false;
  if (auto linalgConsumer = dyn_cast<linalg::LinalgOp>(consumer)) {
    AffineMap map = linalgConsumer.getMatchingIndexingMap(fused);
    if (!map.isPermutation())
      return false;
  }
  return true;
}

struct QuantFuseElementwisePass
    : public quant_mlir::impl::QuantFuseElementwiseBase<
          QuantFuseElementwisePass> {
  void runOnOperation() override {
    MLIRContext *context = &getContext();
    // Transposes as generics, so that the fusion below can fold them into
    // their consumers (RoPE's elementwise ops, the attention matmuls).
    {
      IRRewriter rewriter(context);
      SmallVector<linalg::TransposeOp> transposes;
      getOperation().walk(
          [&](linalg::TransposeOp op) { transposes.push_back(op); });
      for (linalg::TransposeOp op : transposes) {
        rewriter.setInsertionPoint(op);
        (void)linalg::generalizeNamedOp(rewriter, op);
      }
    }
    RewritePatternSet patterns(context);
    linalg::populateElementwiseOpsFusionPatterns(patterns, allowFusion);
    linalg::populateFoldReshapeOpsByExpansionPatterns(patterns, allowFusion);
    affine::AffineApplyOp::getCanonicalizationPatterns(patterns, context);
    linalg::GenericOp::getCanonicalizationPatterns(patterns, context);
    tensor::ExpandShapeOp::getCanonicalizationPatterns(patterns, context);
    tensor::CollapseShapeOp::getCanonicalizationPatterns(patterns, context);
    context->getLoadedDialect<linalg::LinalgDialect>()
        ->getCanonicalizationPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};
} // namespace
