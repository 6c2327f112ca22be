//===- CalibrationInternal.h - shared by the calibration drivers -*- C++ -*-===//
// Private to lib/Runtime: the last step every calibration driver takes
// (Calibration.cpp, StreamCalibration.cpp) and AWQ's per-block scorer
// (AWQCalibration.cpp).
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_LIB_RUNTIME_CALIBRATIONINTERNAL_H
#define QUANT_MLIR_LIB_RUNTIME_CALIBRATIONINTERNAL_H

#include "quant-mlir/Runtime/Calibration.h"
#include "quant-mlir/Runtime/CPURunner.h"

#include "llvm/ADT/StringMap.h"

#include <memory>

namespace quant_mlir {
class BlockwiseModel;
namespace wq {
struct AWQPlan;
struct AWQPlanGroup;
} // namespace wq
namespace safetensors {
class Reader;
} // namespace safetensors
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

/// The metadata every statistics archive carries: the data's name, the
/// seed, the sample windows and sizes.
std::map<std::string, std::string>
archiveMetadata(const CalibrateOptions &options,
                llvm::ArrayRef<int64_t> starts);

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

/// AutoAWQ's module-output loss (_search_best_scale with module2inspect)
/// for the plan's groups of one block at a time: for each group and each
/// scale candidate (quant::awqCandidates on the block's own x_mean, which
/// the recorder holds after the block's float run), the block is rerun
/// with the group's weights replaced by Q(W s) / s, and the mean squared
/// difference of its outputs from the float block's is added to the
/// recorder as `<first layer>.awq_loss` (F64 [candidates]). A group whose
/// plan cuts off the block's next branch is compared with the float block
/// run without it. Costs (candidates + 1) runs of the first `scored`
/// samples per group.
class AWQStageScorer {
public:
  /// Runs sample `i` of the block with `overlay`; its first output.
  using RunSample = llvm::function_ref<llvm::Expected<HostTensor>(
      int64_t i, const WeightOverlay *overlay)>;
  /// The float block's output for sample `i`.
  using Reference = llvm::function_ref<llvm::Expected<HostTensor>(int64_t i)>;

  /// `lossSamples` > 0 scores on the first that many of `numSamples` (the
  /// statistics still use all). Fails, naming the group, when a group's
  /// layers are not inside one block of `model`.
  static llvm::Expected<std::unique_ptr<AWQStageScorer>>
  create(mlir::ModuleOp module, llvm::StringRef modelDir,
         const BlockwiseModel &model, const wq::AWQPlan &plan,
         int64_t lossSamples, int64_t numSamples);
  ~AWQStageScorer();

  /// The sample runs score(stage) takes (0: no group in the block).
  int64_t sampleRuns(int64_t stage) const;
  llvm::Error score(int64_t stage, CalibrationRecorder &recorder,
                    RunSample run, Reference reference,
                    llvm::function_ref<void()> tick);
  /// "awq_module_loss" (the plan's fingerprint, which wq-awq{loss=module}
  /// checks) and "awq_module_loss_samples", for the archive's metadata.
  std::map<std::string, std::string> metadata() const;

private:
  AWQStageScorer() = default;
  bool cutsBranch(const wq::AWQPlanGroup &g, int64_t stage) const;
  const wq::AWQPlan *plan = nullptr;
  std::unique_ptr<safetensors::Reader> archive;
  int64_t scored = 0;
  llvm::StringMap<int64_t> stageOf;
  std::vector<std::vector<const wq::AWQPlanGroup *>> byStage;
};

} // namespace quant_mlir::detail

#endif // QUANT_MLIR_LIB_RUNTIME_CALIBRATIONINTERNAL_H
