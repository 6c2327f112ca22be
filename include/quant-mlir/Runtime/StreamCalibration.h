//===- StreamCalibration.h - block by block calibration, resumable -*- C++ -*-===//
// Calibration for models larger than memory: one transformer block at a time
// over all samples, its statistics committed to a per-block file and freed
// before the next block, the activations between blocks in memory or in a
// memory-mapped file, and a manifest that lets an interrupted run continue
// after its last committed block with the same final output.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_RUNTIME_STREAMCALIBRATION_H
#define QUANT_MLIR_RUNTIME_STREAMCALIBRATION_H

#include "quant-mlir/Runtime/Calibration.h"

#include <functional>
#include <limits>

namespace quant_mlir {
namespace wq {
class LayerQuantizer;
struct AWQPlan;
} // namespace wq

struct StreamOptions {
  /// The inputs of block b+1 are the outputs of block b with its layers
  /// quantized (AutoGPTQ / GPTQModel; needs a quantizer), else of the float
  /// block (AutoAWQ).
  bool quantizedInputs = false;
  /// Inside a block, quantize group by group ([q, k, v], [o], [gate, up],
  /// [down]) as GPTQ's true-sequential mode does (needs a quantizer).
  bool trueSequential = false;
  /// The activations between blocks are held in f16 (half the memory, not
  /// bit-identical to f32) instead of f32.
  bool f16Activations = false;
  /// Above this many bytes (input and output activations of a block
  /// together) the activations go to a memory-mapped file in stateDir.
  uint64_t maxMemory = std::numeric_limits<uint64_t>::max();
  /// Directory for the per-block statistics, the activations file and the
  /// manifest (created; removed by the caller).
  std::string stateDir;
  /// Every committed block stays usable by a later call with `resume`: the
  /// activations are always written to stateDir.
  bool resumable = false;
  /// Continue from the manifest in stateDir if its fingerprint matches.
  bool resume = false;
  /// The run's identity (model, data, options); a state with another one
  /// is discarded.
  std::string fingerprint;
  /// When set, the statistics are also written to this file as one
  /// safetensors archive (streamed from the shards), which then replaces
  /// the index and shards in the model directory by a hard link (the
  /// shards stay when the link cannot be made).
  std::string mergedCopy;
  /// AutoAWQ's module-output loss: after each block's float run the plan's
  /// groups in it have their scale candidates scored on the block's own
  /// inputs (the float blocks' outputs; not with quantizedInputs or
  /// trueSequential), on the first `awqLossSamples` samples (0: all), and
  /// the losses are committed with the block's statistics.
  const wq::AWQPlan *awqPlan = nullptr;
  int64_t awqLossSamples = 0;
  /// Test-only: fail right after committing this stage (a simulated crash).
  int64_t stopAfterStage = -1;
  /// A model that wq-outline-blocks cannot split is calibrated whole
  /// (calibrateModel, float inputs) instead of failing; not with
  /// trueSequential.
  bool wholeModelFallback = true;
};

struct StreamResult : CalibrateResult {
  int64_t stages = 0, resumedStages = 0;
  /// Seconds per stage run in this call (resumed stages: 0).
  std::vector<double> stageSeconds;
  double mergeSeconds = 0;
  /// Activation bytes of one stage boundary, and whether they were spilled.
  uint64_t activationBytes = 0;
  bool spilled = false;
  /// Why the model was calibrated whole (empty: block by block).
  std::string wholeModelReason;
  /// The GPTQ results of the quantized-input loop (LayerQuantizer::quantize),
  /// in stateDir, for wq-gptq precomputed=; empty when there are none.
  std::string precomputedPath;
};

/// Calibrates `module` block by block (wq-outline-blocks) and writes the
/// statistics archive `modelDir/<options.statsArchive>` as shards, one per
/// stage with layers (`stats-00001-of-00006.safetensors`, ...), and their
/// index (`<statsArchive>.index.json`): the same tensors and metadata
/// calibrateModel writes into one file when the inputs are the float
/// blocks'; safetensors::openArchive reads either. Then annotates `module`
/// like calibrateModel. Peak memory: one block's statistics, one block's JIT
/// code and weights, and the activations of one stage boundary (unless
/// spilled).
llvm::Expected<StreamResult>
calibrateStreaming(mlir::ModuleOp module, llvm::StringRef modelDir,
                   llvm::ArrayRef<int64_t> tokens,
                   const CalibrateOptions &options, const StreamOptions &stream,
                   const wq::LayerQuantizer *quantizer);

/// Whether `name` (a file name in the model directory) is part of the
/// statistics archive `archive` as calibrateStreaming writes it: the single
/// file, its index or one of its shards (not a temporary). A resumed run
/// keeps these; they are checked against the manifest before use.
bool isStatisticsFile(llvm::StringRef name, llvm::StringRef archive);

/// Places the sharded statistics archive `indexPath` (an index and its
/// shards, validated first) in `modelDir` as `archive`: its shards as hard
/// links (copies across file systems) named as calibrateStreaming names
/// them, and an index over them.
llvm::Error linkStatistics(llvm::StringRef indexPath, llvm::StringRef modelDir,
                           llvm::StringRef archive);

/// Annotates `module` from an existing statistics archive (`path`, stored
/// in the module as `archiveName` relative to its directory): `#wq.stats`
/// on every layer the archive holds a Hessian for, and `wq.stats_archive`.
/// Returns the number of layers annotated.
llvm::Expected<int64_t> useStatistics(mlir::ModuleOp module,
                                      llvm::StringRef path,
                                      llvm::StringRef archiveName);

} // namespace quant_mlir

#endif // QUANT_MLIR_RUNTIME_STREAMCALIBRATION_H
