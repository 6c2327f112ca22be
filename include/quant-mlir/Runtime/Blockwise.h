//===- Blockwise.h - run a decoder one transformer block at a time -*- C++ -*-===//
// A model split by wq-outline-blocks into stages (prologue, one function per
// transformer block, epilogue), each JIT-compiled alone and run over a set of
// samples whose activations are held for one stage at a time: the engine of
// GPTQ's true-sequential mode and of per-block searches.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_RUNTIME_BLOCKWISE_H
#define QUANT_MLIR_RUNTIME_BLOCKWISE_H

#include "quant-mlir/Runtime/CPURunner.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <string>
#include <vector>

namespace quant_mlir {

/// The activations between two stages for every sample: the residual stream
/// (one tensor per sample) and the side values the prologue computed (mask,
/// rotary tables, sizes). Side tensors equal to the previous sample's are
/// shared, so sample-independent ones are held once.
struct BlockActivations {
  std::vector<HostTensor> stream;
  std::vector<std::vector<std::shared_ptr<const HostTensor>>> sides;
  int64_t numSamples() const { return stream.size(); }
  /// Bytes held (shared side tensors counted once).
  uint64_t bytes() const;
};

class BlockwiseModel {
public:
  /// Splits (a clone of) `module` into stages with wq-outline-blocks; with
  /// `instrument`, every wq.linear's input first goes to the calibration
  /// hook (wq-instrument-calibration; layer indices are the module-wide
  /// `wq.calib_layers` order). `func` names the entry (empty: the only
  /// public function). Weights are resolved relative to `baseDir`.
  static llvm::Expected<std::unique_ptr<BlockwiseModel>>
  create(mlir::ModuleOp module, llvm::StringRef baseDir, llvm::StringRef func,
         bool instrument);
  ~BlockwiseModel();

  /// Prologue, blocks..., epilogue.
  int64_t numStages() const { return stages.size(); }
  int64_t numBlocks() const { return stages.size() - 2; }
  /// The stage function's name (e.g. "main_graph.block3").
  llvm::StringRef stageName(int64_t stage) const;
  /// The stage's wq.linear names in program order, grouped by shared input
  /// value ([q, k, v], [o], [gate, up], [down] in a Llama block): the order
  /// and granularity of true-sequential quantization.
  llvm::ArrayRef<std::vector<std::string>> layerGroups(int64_t stage) const;
  /// Instrumented layer names by hook index (empty without `instrument`).
  llvm::ArrayRef<std::string> calibLayers() const { return calibLayerNames; }
  /// The entry's result types (logits), from before the split.
  llvm::ArrayRef<mlir::RankedTensorType> resultTypes() const { return results; }

  /// JIT-compiles `stage` (releasing the previously compiled one) and calls
  /// `onCompiled` with it (to bind runtime hooks before the first run).
  llvm::Error
  compileStage(int64_t stage,
               llvm::function_ref<llvm::Error(CPUModule &)> onCompiled = {});

  /// Runs the prologue (compiled by compileStage(0)) on each sample's inputs.
  llvm::Expected<BlockActivations>
  runPrologue(llvm::ArrayRef<std::vector<HostTensor>> inputs,
              const WeightOverlay *overlay = nullptr,
              llvm::function_ref<void()> onSample = {});

  /// Runs the compiled block or epilogue stage on every sample of `acts`,
  /// with `overlay`'s weights in place of the archive's. `onOutputs` gets
  /// each sample's outputs; with `replaceStream` (blocks only) the outputs
  /// become the samples' new stream.
  llvm::Error
  runStage(int64_t stage, BlockActivations &acts, const WeightOverlay *overlay,
           bool replaceStream,
           llvm::function_ref<llvm::Error(int64_t, std::vector<HostTensor> &)>
               onOutputs = {},
           llvm::function_ref<void()> onSample = {});

  /// Runs the compiled `stage` on one sample: the entry's inputs for the
  /// prologue, else the stream followed by the side values. For callers
  /// that hold the activations themselves (in a file, in f16).
  llvm::Expected<std::vector<HostTensor>>
  runSample(int64_t stage, llvm::ArrayRef<const HostTensor *> inputs,
            const WeightOverlay *overlay = nullptr) const;

private:
  BlockwiseModel() = default;
  struct Stage {
    std::string name;
    std::vector<std::vector<std::string>> groups;
  };
  mlir::OwningOpRef<mlir::ModuleOp> outlined;
  std::string baseDir;
  std::vector<Stage> stages;
  std::vector<std::string> calibLayerNames;
  llvm::SmallVector<mlir::RankedTensorType> results;
  int64_t compiledStage = -1;
  std::unique_ptr<CPUModule> compiled;
};

} // namespace quant_mlir

#endif // QUANT_MLIR_RUNTIME_BLOCKWISE_H
