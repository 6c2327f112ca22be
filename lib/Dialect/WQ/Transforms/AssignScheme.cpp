//===- AssignScheme.cpp - wq-assign-scheme ----------------------------------===//
// Picks each linear layer's scheme from defaults, skip globs and overrides.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h"
#include "quant-mlir/Dialect/WQ/Transforms/SchemeSelection.h"

namespace quant_mlir::wq {
#define GEN_PASS_DEF_WQASSIGNSCHEME
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h.inc"
} // namespace quant_mlir::wq

using namespace mlir;
using namespace quant_mlir::wq;

namespace {
struct AssignSchemePass
    : public quant_mlir::wq::impl::WQAssignSchemeBase<AssignSchemePass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SchemeSelector::Options opts;
    opts.bits = bits;
    opts.groupSize = groupSize;
    opts.zeroPoint = zeroPoint;
    opts.actOrder = actOrder;
    if (skip.hasValue())
      opts.skip = SmallVector<std::string>(skip.begin(), skip.end());
    opts.overrides.assign(overrides.begin(), overrides.end());
    auto selector =
        SchemeSelector::create(opts, [&] { return module.emitError(); });
    if (failed(selector))
      return signalPassFailure();

    WalkResult result = module.walk([&](LinearOp op) {
      FailureOr<SchemeAttr> scheme = (*selector)->select(op);
      if (failed(scheme))
        return WalkResult::interrupt();
      if (*scheme)
        op.setSchemeAttr(*scheme);
      else
        op.removeSchemeAttr();
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }
};
} // namespace
