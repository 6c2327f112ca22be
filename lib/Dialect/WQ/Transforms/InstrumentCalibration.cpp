//===- InstrumentCalibration.cpp - wq-instrument-calibration ----------------===//
// Hooks every linear layer's input into the runtime's statistics recorder.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"

namespace quant_mlir::wq {
#define GEN_PASS_DEF_WQINSTRUMENTCALIBRATION
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h.inc"
} // namespace quant_mlir::wq

using namespace mlir;
using namespace quant_mlir::wq;

static constexpr llvm::StringLiteral kHook = "wq_calib_record";

namespace {
struct InstrumentCalibrationPass
    : public quant_mlir::wq::impl::WQInstrumentCalibrationBase<
          InstrumentCalibrationPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    OpBuilder b(ctx);
    auto rowsType = RankedTensorType::get(
        {ShapedType::kDynamic, ShapedType::kDynamic}, b.getF32Type());

    SmallVector<Attribute> names;
    WalkResult result = module.walk([&](LinearOp op) {
      if (!op.getName()) {
        op.emitError("a layer without a name cannot be calibrated");
        return WalkResult::interrupt();
      }
      Location loc = op.getLoc();
      b.setInsertionPoint(op);
      Value x = op.getInput();
      auto type = cast<RankedTensorType>(x.getType());
      // [d0, ..., K] -> [d0 * ... , K]; a rank-1 input is one row.
      Value rows;
      if (type.getRank() == 1) {
        rows = tensor::ExpandShapeOp::create(
            b, loc,
            RankedTensorType::get({1, type.getDimSize(0)},
                                  type.getElementType()),
            x, ArrayRef<ReassociationIndices>{{0, 1}});
      } else {
        ReassociationIndices lead;
        for (int64_t i = 0; i + 1 < type.getRank(); ++i)
          lead.push_back(i);
        rows = tensor::CollapseShapeOp::create(
            b, loc, x,
            SmallVector<ReassociationIndices>{lead, {type.getRank() - 1}});
      }
      auto rowsTy = cast<RankedTensorType>(rows.getType());
      if (!rowsTy.getElementType().isF32())
        rows = arith::ExtFOp::create(
            b, loc, rowsTy.clone(b.getF32Type()), rows);
      rows = tensor::CastOp::create(b, loc, rowsType, rows);
      Value layer = arith::ConstantIntOp::create(b, loc, b.getI64Type(),
                                                 names.size());
      func::CallOp::create(b, loc, kHook, TypeRange{}, ValueRange{layer, rows});
      names.push_back(op.getNameAttr());
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      return signalPassFailure();

    if (!module.lookupSymbol(kHook)) {
      b.setInsertionPointToStart(module.getBody());
      auto hook = func::FuncOp::create(
          b, module.getLoc(), kHook,
          b.getFunctionType({b.getI64Type(), rowsType}, {}));
      hook.setPrivate();
      hook->setAttr("llvm.emit_c_interface", b.getUnitAttr());
    }
    module->setAttr(WQDialect::kCalibLayersAttrName, b.getArrayAttr(names));
  }
};
} // namespace
