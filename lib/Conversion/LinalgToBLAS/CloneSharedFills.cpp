//===- CloneSharedFills.cpp - one linalg.fill per accumulator --------------===//
// quant-clone-shared-fills: CSE leaves one `linalg.fill` of a `tensor.empty`
// shared by every layer's accumulators; one-shot bufferization would copy
// it before each in-place write. Each extra user gets a clone of the fill
// and of its empty tensor instead (the clones cost one fill each, as
// before CSE, and the copies go).
//===----------------------------------------------------------------------===//

#include "quant-mlir/Conversion/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"

namespace quant_mlir {
#define GEN_PASS_DEF_QUANTCLONESHAREDFILLS
#include "quant-mlir/Conversion/Passes.h.inc"
} // namespace quant_mlir

using namespace mlir;

namespace {
struct QuantCloneSharedFillsPass
    : public quant_mlir::impl::QuantCloneSharedFillsBase<
          QuantCloneSharedFillsPass> {
  void runOnOperation() override {
    SmallVector<linalg::FillOp> shared;
    getOperation().walk([&](linalg::FillOp fill) {
      if (fill.hasPureTensorSemantics() && fill->getNumResults() == 1 &&
          !fill->getResult(0).hasOneUse() &&
          fill.getOutputs()[0].getDefiningOp<tensor::EmptyOp>())
        shared.push_back(fill);
    });
    for (linalg::FillOp fill : shared) {
      auto empty = fill.getOutputs()[0].getDefiningOp<tensor::EmptyOp>();
      // The first user keeps the original; every other gets a clone placed
      // just before it, so the clone's operands (the fill value and the
      // empty tensor's dynamic sizes, defined before the original) dominate.
      SmallVector<OpOperand *> uses;
      for (OpOperand &use : fill->getResult(0).getUses())
        uses.push_back(&use);
      // Use lists run newest first; in program order the original stays
      // with the first user (the IR reads as before CSE).
      Block *block = uses.front()->getOwner()->getBlock();
      if (llvm::all_of(uses, [&](OpOperand *u) {
            return u->getOwner()->getBlock() == block;
          }))
        llvm::sort(uses, [](OpOperand *x, OpOperand *y) {
          return x->getOwner()->isBeforeInBlock(y->getOwner());
        });
      for (OpOperand *use : llvm::drop_begin(uses)) {
        OpBuilder b(use->getOwner());
        Operation *newEmpty = b.clone(*empty);
        IRMapping map;
        map.map(empty.getResult(), newEmpty->getResult(0));
        Operation *newFill = b.clone(*fill, map);
        use->set(newFill->getResult(0));
      }
    }
  }
};
} // namespace
