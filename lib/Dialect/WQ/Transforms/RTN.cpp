//===- RTN.cpp - wq-rtn ------------------------------------------------------===//
// Round-to-nearest quantization of every selected wq.linear; the driver and
// the numerics are shared (LayerQuantizer.cpp, lib/Quant/Quantizer.cpp).
//===----------------------------------------------------------------------===//

#include "QuantizeCommon.h"

#include "quant-mlir/Dialect/WQ/Transforms/Passes.h"

namespace quant_mlir::wq {
#define GEN_PASS_DEF_WQRTN
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h.inc"
} // namespace quant_mlir::wq

using namespace mlir;
using namespace quant_mlir::wq;
using namespace quant_mlir::wq::detail;

namespace {
struct RTNPass : public quant_mlir::wq::impl::WQRTNBase<RTNPass> {
  using Base::Base;
  template <typename P> friend QuantizeConfig quant_mlir::wq::detail::commonConfig(const P &);
  QuantizeConfig config() const {
    QuantizeConfig cfg = commonConfig(*this);
    cfg.custom = custom;
    return cfg;
  }
  void runOnOperation() override {
    if (failed(runQuantize(getOperation(), config(), "wq-rtn")))
      signalPassFailure();
  }
};
} // namespace

QuantizeConfig
quant_mlir::wq::detail::configFromOptions(const WQRTNOptions &options) {
  auto pass = createWQRTN(options);
  return static_cast<RTNPass &>(*pass).config();
}
