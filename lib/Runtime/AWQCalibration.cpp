//===- AWQCalibration.cpp - calibration with AWQ's module-output loss -------===//
// AutoAWQ scores a scale candidate by the output of the module it inspects
// (the attention for [q, k, v], the MLP for [gate, up]); this runs the
// transformer block once per candidate with the group's weights replaced
// (a WeightOverlay, no recompilation) and stores the losses beside the
// statistics, which are recorded on the same float runs.
//===----------------------------------------------------------------------===//

#include "CalibrationInternal.h"

#include "quant-mlir/Data/TokenData.h"
#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"
#include "quant-mlir/Dialect/WQ/Transforms/AWQPlan.h"
#include "quant-mlir/Runtime/Blockwise.h"
#include "quant-mlir/Runtime/CPURunner.h"
#include "quant-mlir/Runtime/LanguageModel.h"
#include "quant-mlir/Support/Progress.h"
#include "quant-mlir/Support/SafeTensors.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/Path.h"

#include <cstring>

using namespace quant_mlir;
using safetensors::DType;

static llvm::Error makeError(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

namespace {
/// An archive tensor as float32 values.
llvm::Expected<std::vector<float>> readFloats(const safetensors::Reader &r,
                                              llvm::StringRef name) {
  const safetensors::TensorInfo *info = r.lookup(name);
  if (!info || (info->dtype != DType::F32 && info->dtype != DType::F16 &&
                info->dtype != DType::BF16))
    return makeError("'" + name + "' is not a float archive tensor");
  std::vector<float> out(info->numElements());
  if (info->dtype == DType::F32) {
    auto v = r.as<float>(*info);
    std::copy(v.begin(), v.end(), out.begin());
  } else {
    auto v = r.as<uint16_t>(*info);
    for (size_t i = 0; i < out.size(); ++i)
      out[i] = info->dtype == DType::F16 ? safetensors::halfToFloat(v[i])
                                         : safetensors::bf16ToFloat(v[i]);
  }
  return out;
}

/// `v` in the archive dtype of `name` (the bytes a WeightOverlay holds).
std::vector<uint8_t> toArchiveBytes(llvm::ArrayRef<double> v, DType dtype) {
  std::vector<uint8_t> out(v.size() * (dtype == DType::F32 ? 4 : 2));
  for (size_t i = 0; i < v.size(); ++i) {
    float f = float(v[i]);
    if (dtype == DType::F32) {
      std::memcpy(out.data() + 4 * i, &f, 4);
    } else {
      uint16_t h = dtype == DType::F16 ? safetensors::floatToHalf(f)
                                       : safetensors::floatToBF16(f);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}
} // namespace

llvm::Expected<CalibrateResult>
quant_mlir::calibrateAWQ(mlir::ModuleOp module, llvm::StringRef modelDir,
                         llvm::ArrayRef<int64_t> tokens,
                         const CalibrateOptions &options,
                         const wq::AWQPlan &plan, int64_t lossSamples) {
  llvm::StringRef archiveName = wq::getArchivePath(module);
  if (archiveName.empty())
    return makeError("the model has no wq.archive");
  llvm::SmallString<256> archivePath(archiveName);
  if (!llvm::sys::path::is_absolute(archivePath)) {
    archivePath = modelDir;
    llvm::sys::path::append(archivePath, archiveName);
  }
  auto archive = safetensors::Reader::open(archivePath);
  if (!archive)
    return archive.takeError();

  LanguageModelEntry entry;
  auto scoring = specializeForScoring(module, options.func, entry);
  if (!scoring)
    return scoring.takeError();
  auto model = BlockwiseModel::create(**scoring, modelDir, entry.name,
                                      /*instrument=*/true);
  if (!model)
    return model.takeError();
  auto drawn = detail::planCalibration(**model, tokens, options);
  if (!drawn)
    return drawn.takeError();
  std::vector<std::string> &layers = drawn->layers;
  const std::vector<int64_t> &starts = drawn->starts;
  CalibrationRecorder recorder(layers, options.sampleRows, options.seed);
  int64_t numSamples = starts.size();
  int64_t scored = lossSamples > 0 ? std::min(lossSamples, numSamples)
                                   : numSamples;

  // Each group's block: the stage that holds all of its layers.
  int64_t last = (*model)->numStages() - 1;
  llvm::StringMap<int64_t> stageOf;
  for (int64_t s = 0; s <= last; ++s)
    for (const std::vector<std::string> &g : (*model)->layerGroups(s))
      for (const std::string &name : g)
        stageOf[name] = s;
  std::vector<std::vector<const wq::AWQPlanGroup *>> byStage(last + 1);
  int64_t candidatesPerGroup =
      plan.options.nGrid *
      (plan.options.duo == quant::DuoScaling::Both ? 2 : 1);
  int64_t totalRuns = last + 1;
  for (const wq::AWQPlanGroup &g : plan.groups) {
    auto it = stageOf.find(g.layers.front().name);
    int64_t s = it == stageOf.end() ? -1 : it->second;
    for (const wq::AWQPlanLayer &l : g.layers)
      if (stageOf.lookup(l.name) != s || s <= 0 || s == last)
        return makeError("awq group '" + g.layers.front().name +
                         "' is not inside one transformer block; the module "
                         "loss needs one (use --awq-loss linear)");
    byStage[s].push_back(&g);
    totalRuns += candidatesPerGroup + 1;
  }
  totalRuns = (last + 1) * numSamples + (totalRuns - last - 1) * scored;

  std::vector<std::vector<HostTensor>> inputs;
  for (int64_t start : starts)
    inputs.push_back(
        entry.inputs(tokens.slice(start, options.seqLen), 1, options.seqLen));

  Progress progress("awq module loss", totalRuns, !options.quiet);
  auto tick = [&] { progress.advance(); };
  BlockActivations acts;
  for (int64_t s = 0; s <= last; ++s) {
    if (llvm::Error err = (*model)->compileStage(
            s, [&](CPUModule &m) { return recorder.attach(m); }))
      return std::move(err);
    recorder.setAllActive();
    if (s == 0) {
      auto out = (*model)->runPrologue(inputs, nullptr, tick);
      if (!out)
        return out.takeError();
      acts = std::move(*out);
      continue;
    }
    // The float block: statistics, reference outputs, next inputs.
    std::vector<HostTensor> reference(numSamples);
    if (llvm::Error err = (*model)->runStage(
            s, acts, nullptr, /*replaceStream=*/false,
            [&](int64_t i, std::vector<HostTensor> &out) {
              if (s != last) // the epilogue's logits are not needed
                reference[i] = std::move(out.front());
              return llvm::Error::success();
            },
            tick))
      return std::move(err);
    recorder.setActive({});
    // The candidates' runs: the first `scored` samples.
    BlockActivations subset;
    if (!byStage[s].empty() && scored < numSamples) {
      subset.stream.assign(acts.stream.begin(), acts.stream.begin() + scored);
      subset.sides.assign(acts.sides.begin(), acts.sides.begin() + scored);
    }
    BlockActivations &sub = scored < numSamples ? subset : acts;
    for (const wq::AWQPlanGroup *g : byStage[s]) {
      const std::string &first = g->layers.front().name;
      // The next branch of the same block is cut off in every run.
      WeightOverlay base;
      for (const wq::AWQPlanGroup::Zeroed &z : g->zero)
        if (stageOf.lookup(z.layer) == s)
          if (const safetensors::TensorInfo *info = (*archive)->lookup(z.tensor))
            base[z.tensor].assign(info->numBytes(), 0);
      std::vector<HostTensor> cut;
      const std::vector<HostTensor> *want = &reference;
      if (!base.empty()) {
        cut.resize(scored);
        if (llvm::Error err = (*model)->runStage(
                s, sub, &base, false,
                [&](int64_t i, std::vector<HostTensor> &out) {
                  cut[i] = std::move(out.front());
                  return llvm::Error::success();
                },
                tick))
          return std::move(err);
        want = &cut;
      } else {
        progress.advance(scored);
      }
      std::vector<std::vector<float>> weights;
      std::vector<quant::AWQLinear> scored;
      std::vector<const wq::AWQPlanLayer *> scoredLayers;
      weights.reserve(g->layers.size());
      for (const wq::AWQPlanLayer &l : g->layers) {
        auto w = readFloats(**archive, l.weight);
        if (!w)
          return w.takeError();
        if (int64_t(w->size()) != l.n * g->k)
          return makeError("layer '" + l.name + "': the weight is not [" +
                           llvm::Twine(l.n) + ", " + llvm::Twine(g->k) + "]");
        weights.push_back(std::move(*w));
        if (l.scheme) {
          scored.push_back({weights.back(), l.n, *l.scheme});
          scoredLayers.push_back(&l);
        }
      }
      auto candidates = quant::awqCandidates(
          recorder.absMean(recorder.indexOf(first)), g->k, scored,
          plan.options, first);
      if (!candidates)
        return candidates.takeError();
      std::vector<double> losses;
      std::vector<double> fq;
      for (const quant::AWQCandidate &c : *candidates) {
        WeightOverlay overlay = base;
        for (auto [l, layer] : llvm::zip(scored, scoredLayers)) {
          fq.resize(l.w.size());
          quant::awqScaledFakeQuant(l.w, l.n, g->k, c.scales, l.scheme, fq);
          overlay[layer->weight] =
              toArchiveBytes(fq, (*archive)->lookup(layer->weight)->dtype);
        }
        // _compute_loss: mean over the output's elements of the squared
        // difference (the block adds the same residual to both).
        double sum = 0, count = 0;
        if (llvm::Error err = (*model)->runStage(
                s, sub, &overlay, false,
                [&](int64_t i, std::vector<HostTensor> &out) -> llvm::Error {
                  auto got = out.front().as<float>();
                  auto ref = (*want)[i].as<float>();
                  if (got.size() != ref.size())
                    return makeError("block outputs changed shape");
                  for (size_t j = 0; j < got.size(); ++j) {
                    double d = double(got[j]) - double(ref[j]);
                    sum += d * d;
                  }
                  count += double(got.size());
                  return llvm::Error::success();
                },
                tick))
          return std::move(err);
        losses.push_back(sum / count);
      }
      recorder.addTensor(first + ".awq_loss", std::move(losses));
    }
    if (s != last)
      acts.stream = std::move(reference);
  }
  progress.finish();
  recorder.setAllActive();
  return detail::finishCalibration(
      module, modelDir, recorder, layers, starts, options,
      progress.elapsedSeconds(),
      {{"awq_module_loss", plan.fingerprint},
       {"awq_module_loss_samples", std::to_string(scored)}});
}
