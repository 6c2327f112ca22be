//===- Blockwise.cpp - run a decoder one transformer block at a time --------===//
//===----------------------------------------------------------------------===//

#include "quant-mlir/Runtime/Blockwise.h"
#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/MapVector.h"

using namespace mlir;
using namespace quant_mlir;

static llvm::Error makeError(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

uint64_t BlockActivations::bytes() const {
  uint64_t total = 0;
  llvm::DenseSet<const HostTensor *> seen;
  for (const HostTensor &t : stream)
    total += t.data.size();
  for (const auto &sample : sides)
    for (const auto &t : sample)
      if (seen.insert(t.get()).second)
        total += t->data.size();
  return total;
}

BlockwiseModel::~BlockwiseModel() = default;

llvm::Expected<std::unique_ptr<BlockwiseModel>>
BlockwiseModel::create(ModuleOp module, StringRef baseDir, StringRef func,
                       bool instrument) {
  std::unique_ptr<BlockwiseModel> model(new BlockwiseModel());
  model->baseDir = baseDir.str();
  model->outlined = module.clone();
  ModuleOp m = *model->outlined;
  MLIRContext *ctx = m.getContext();

  // The entry's results, recorded before its body becomes calls.
  func::FuncOp entry;
  if (!func.empty()) {
    entry = m.lookupSymbol<func::FuncOp>(func);
  } else {
    for (auto f : m.getOps<func::FuncOp>())
      if (f.isPublic() && !f.isExternal())
        entry = entry ? func::FuncOp() : f;
  }
  if (!entry)
    return makeError(func.empty()
                         ? Twine("the model must have exactly one public "
                                 "function (or name one with --func)")
                         : "no function '" + func + "'");
  for (Type t : entry.getResultTypes())
    if (auto r = dyn_cast<RankedTensorType>(t))
      model->results.push_back(r);

  PassManager pm(ctx);
  if (instrument)
    pm.addPass(wq::createWQInstrumentCalibration());
  wq::WQOutlineBlocksOptions opts;
  opts.entry = entry.getSymName().str();
  pm.addPass(wq::createWQOutlineBlocks(opts));
  if (failed(pm.run(m)))
    return makeError("cannot split the model into transformer blocks (see "
                     "the error above)");
  if (auto names = m->getAttrOfType<ArrayAttr>(
          wq::WQDialect::kCalibLayersAttrName))
    for (auto name : names.getAsValueRange<StringAttr>())
      model->calibLayerNames.push_back(name.str());

  auto refs = m->getAttrOfType<ArrayAttr>(wq::WQDialect::kBlocksAttrName);
  for (auto ref : refs.getAsRange<FlatSymbolRefAttr>()) {
    auto f = m.lookupSymbol<func::FuncOp>(ref);
    Stage stage;
    stage.name = f.getSymName().str();
    // Linears sharing an input value form one group, in program order.
    llvm::MapVector<Value, std::vector<std::string>> groups;
    f.walk([&](wq::LinearOp op) {
      groups[op.getInput()].push_back(op.getName().value_or("").str());
    });
    for (auto &[input, names] : groups)
      stage.groups.push_back(std::move(names));
    model->stages.push_back(std::move(stage));
  }
  return model;
}

StringRef BlockwiseModel::stageName(int64_t stage) const {
  return stages[stage].name;
}

llvm::ArrayRef<std::vector<std::string>>
BlockwiseModel::layerGroups(int64_t stage) const {
  return stages[stage].groups;
}

llvm::Error BlockwiseModel::compileStage(
    int64_t stage, llvm::function_ref<llvm::Error(CPUModule &)> onCompiled) {
  compiled.reset();
  compiledStage = -1;
  // A module holding the stage function (public) and the external hooks.
  OwningOpRef<ModuleOp> single = outlined->clone();
  single.get()->removeAttr(wq::WQDialect::kBlocksAttrName);
  for (auto f : llvm::make_early_inc_range(single->getOps<func::FuncOp>())) {
    if (f.isExternal())
      continue;
    if (f.getSymName() != stages[stage].name) {
      f.erase();
      continue;
    }
    f.setPublic();
  }
  auto module = CPUModule::compile(std::move(single), baseDir);
  if (!module)
    return module.takeError();
  if (onCompiled)
    if (llvm::Error err = onCompiled(**module))
      return err;
  compiled = std::move(*module);
  compiledStage = stage;
  return llvm::Error::success();
}

llvm::Expected<BlockActivations> BlockwiseModel::runPrologue(
    llvm::ArrayRef<std::vector<HostTensor>> inputs,
    const WeightOverlay *overlay, llvm::function_ref<void()> onSample) {
  if (compiledStage != 0)
    return makeError("the prologue is not compiled");
  BlockActivations acts;
  for (const std::vector<HostTensor> &sample : inputs) {
    auto out = compiled->run(stages[0].name, sample, overlay);
    if (!out)
      return out.takeError();
    acts.stream.push_back(std::move(out->front()));
    std::vector<std::shared_ptr<const HostTensor>> sides;
    for (size_t i = 1; i < out->size(); ++i) {
      HostTensor &t = (*out)[i];
      if (!acts.sides.empty()) {
        const auto &prev = acts.sides.back()[i - 1];
        if (prev->dtype == t.dtype && prev->shape == t.shape &&
            prev->data == t.data) {
          sides.push_back(prev);
          continue;
        }
      }
      sides.push_back(std::make_shared<const HostTensor>(std::move(t)));
    }
    acts.sides.push_back(std::move(sides));
    if (onSample)
      onSample();
  }
  return acts;
}

llvm::Error BlockwiseModel::runStage(
    int64_t stage, BlockActivations &acts, const WeightOverlay *overlay,
    bool replaceStream,
    llvm::function_ref<llvm::Error(int64_t, std::vector<HostTensor> &)>
        onOutputs,
    llvm::function_ref<void()> onSample) {
  if (compiledStage != stage || stage == 0)
    return makeError("stage '" + stages[stage].name + "' is not compiled");
  for (int64_t s = 0; s < acts.numSamples(); ++s) {
    llvm::SmallVector<const HostTensor *> inputs{&acts.stream[s]};
    for (const auto &side : acts.sides[s])
      inputs.push_back(side.get());
    auto out = compiled->run(stages[stage].name, inputs, overlay);
    if (!out)
      return out.takeError();
    if (onOutputs)
      if (llvm::Error err = onOutputs(s, *out))
        return err;
    if (replaceStream)
      acts.stream[s] = std::move(out->front());
    if (onSample)
      onSample();
  }
  return llvm::Error::success();
}

llvm::Expected<std::vector<HostTensor>>
BlockwiseModel::runSample(int64_t stage, ArrayRef<const HostTensor *> inputs,
                          const WeightOverlay *overlay) const {
  if (compiledStage != stage)
    return makeError("stage '" + stages[stage].name + "' is not compiled");
  return compiled->run(stages[stage].name, inputs, overlay);
}
