//===- GPTQ.cpp - wq-gptq ----------------------------------------------------===//
// GPTQ (arXiv 2210.17323) of every selected wq.linear with its calibration
// Hessian; the driver and the numerics are shared (LayerQuantizer.cpp,
// lib/Quant/GPTQ.cpp).
//===----------------------------------------------------------------------===//

#include "QuantizeCommon.h"

#include "quant-mlir/Dialect/WQ/Transforms/Passes.h"

namespace quant_mlir::wq {
#define GEN_PASS_DEF_WQGPTQ
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h.inc"
} // namespace quant_mlir::wq

using namespace mlir;
using namespace quant_mlir::wq;
using namespace quant_mlir::wq::detail;

namespace {
struct GPTQPass : public quant_mlir::wq::impl::WQGPTQBase<GPTQPass> {
  using Base::Base;
  template <typename P> friend QuantizeConfig quant_mlir::wq::detail::commonConfig(const P &);
  QuantizeConfig config() const {
    QuantizeConfig cfg = commonConfig(*this);
    cfg.gptq = true;
    cfg.gptqOptions.dampPercent = dampPercent;
    cfg.gptqOptions.blockSize = blockSize;
    cfg.gptqOptions.staticGroups = staticGroups;
    cfg.trueSequential = trueSequential;
    cfg.precomputed = precomputed;
    return cfg;
  }
  void runOnOperation() override {
    if (failed(runQuantize(getOperation(), config(), "wq-gptq")))
      signalPassFailure();
  }
};
} // namespace

QuantizeConfig
quant_mlir::wq::detail::configFromOptions(const WQGPTQOptions &options) {
  // Through the pass itself, so the pass and its callers share one mapping.
  auto pass = createWQGPTQ(options);
  return static_cast<GPTQPass &>(*pass).config();
}
