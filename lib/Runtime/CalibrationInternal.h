//===- CalibrationInternal.h - shared by the calibration drivers -*- C++ -*-===//
// Private to lib/Runtime: the last step every calibration driver takes
// (Calibration.cpp, AWQCalibration.cpp, StreamCalibration.cpp).
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_LIB_RUNTIME_CALIBRATIONINTERNAL_H
#define QUANT_MLIR_LIB_RUNTIME_CALIBRATIONINTERNAL_H

#include "quant-mlir/Runtime/Calibration.h"

namespace quant_mlir {
class BlockwiseModel;
} // namespace quant_mlir

namespace quant_mlir::detail {

/// What every block-by-block calibration driver checks and draws first: the
/// entry maps ids to logits with a static vocabulary the tokens fit, the
/// instrumented layers, and the seeded sample windows.
struct CalibrationPlan {
  std::vector<std::string> layers;
  std::vector<int64_t> starts; // sample window starts
};
llvm::Expected<CalibrationPlan>
planCalibration(const BlockwiseModel &model, llvm::ArrayRef<int64_t> tokens,
                const CalibrateOptions &options);

/// Writes `recorder`'s statistics archive (with the sample windows and
/// `extraMetadata`) and annotates `module` with `#wq.stats` and
/// `wq.stats_archive`.
llvm::Expected<CalibrateResult>
finishCalibration(mlir::ModuleOp module, llvm::StringRef modelDir,
                  const CalibrationRecorder &recorder,
                  llvm::ArrayRef<std::string> layers,
                  llvm::ArrayRef<int64_t> starts,
                  const CalibrateOptions &options, double seconds,
                  std::map<std::string, std::string> extraMetadata);

} // namespace quant_mlir::detail

#endif // QUANT_MLIR_LIB_RUNTIME_CALIBRATIONINTERNAL_H
