//===- AWQCalibration.cpp - AWQ's module-output loss, one block at a time ---===//
// AutoAWQ scores a scale candidate by the output of the module it inspects
// (the attention for [q, k, v], the MLP for [gate, up]); the block by block
// calibration (StreamCalibration.cpp) hands each block to this scorer after
// its float run, which reruns the block once per candidate with the group's
// weights replaced (a WeightOverlay, no recompilation) and adds the losses
// to the block's statistics, so they are committed (and resumed) with them.
//===----------------------------------------------------------------------===//

#include "CalibrationInternal.h"

#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"
#include "quant-mlir/Dialect/WQ/Transforms/AWQPlan.h"
#include "quant-mlir/Runtime/Blockwise.h"
#include "quant-mlir/Runtime/CPURunner.h"
#include "quant-mlir/Runtime/LanguageModel.h"
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
  // Read once per block: pages left resident in the scorer's mapping of the
  // archive would grow the run's memory by every block's weights.
  r.releasePages(*info);
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

detail::AWQStageScorer::~AWQStageScorer() = default;

llvm::Expected<std::unique_ptr<detail::AWQStageScorer>>
detail::AWQStageScorer::create(mlir::ModuleOp module, llvm::StringRef modelDir,
                               const BlockwiseModel &model,
                               const wq::AWQPlan &plan, int64_t lossSamples,
                               int64_t numSamples) {
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
  std::unique_ptr<AWQStageScorer> scorer(new AWQStageScorer());
  scorer->plan = &plan;
  scorer->archive = std::move(*archive);
  scorer->scored = lossSamples > 0 ? std::min(lossSamples, numSamples)
                                   : numSamples;
  // Each group's block: the stage that holds all of its layers.
  int64_t last = model.numStages() - 1;
  for (int64_t s = 0; s <= last; ++s)
    for (const std::vector<std::string> &g : model.layerGroups(s))
      for (const std::string &name : g)
        scorer->stageOf[name] = s;
  scorer->byStage.resize(last + 1);
  for (const wq::AWQPlanGroup &g : plan.groups) {
    auto it = scorer->stageOf.find(g.layers.front().name);
    int64_t s = it == scorer->stageOf.end() ? -1 : it->second;
    for (const wq::AWQPlanLayer &l : g.layers)
      if (scorer->stageOf.lookup(l.name) != s || s <= 0 || s == last)
        return makeError("awq group '" + g.layers.front().name +
                         "' is not inside one transformer block; the module "
                         "loss needs one (use --awq-loss linear)");
    scorer->byStage[s].push_back(&g);
  }
  return std::move(scorer);
}

int64_t detail::AWQStageScorer::sampleRuns(int64_t stage) const {
  int64_t candidates = plan->options.nGrid *
                       (plan->options.duo == quant::DuoScaling::Both ? 2 : 1);
  int64_t runs = 0;
  for (const wq::AWQPlanGroup *g : byStage[stage])
    runs += (candidates + (cutsBranch(*g, stage) ? 1 : 0)) * scored;
  return runs;
}

bool detail::AWQStageScorer::cutsBranch(const wq::AWQPlanGroup &g,
                                        int64_t stage) const {
  return llvm::any_of(g.zero, [&](const wq::AWQPlanGroup::Zeroed &z) {
    return stageOf.lookup(z.layer) == stage && archive->lookup(z.tensor);
  });
}

std::map<std::string, std::string> detail::AWQStageScorer::metadata() const {
  return {{"awq_module_loss", plan->fingerprint},
          {"awq_module_loss_samples", std::to_string(scored)}};
}

llvm::Error detail::AWQStageScorer::score(int64_t stage,
                                          CalibrationRecorder &recorder,
                                          RunSample run, Reference reference,
                                          llvm::function_ref<void()> tick) {
  for (const wq::AWQPlanGroup *g : byStage[stage]) {
    const std::string &first = g->layers.front().name;
    // The next branch of the same block is cut off in every run; the
    // reference is then the float block without it.
    WeightOverlay base;
    for (const wq::AWQPlanGroup::Zeroed &z : g->zero)
      if (stageOf.lookup(z.layer) == stage)
        if (const safetensors::TensorInfo *info = archive->lookup(z.tensor))
          base[z.tensor].assign(info->numBytes(), 0);
    std::vector<HostTensor> cut;
    if (!base.empty()) {
      for (int64_t i = 0; i < scored; ++i) {
        auto out = run(i, &base);
        if (!out)
          return out.takeError();
        cut.push_back(std::move(*out));
        tick();
      }
    }
    std::vector<std::vector<float>> weights;
    std::vector<quant::AWQLinear> linears;
    std::vector<const wq::AWQPlanLayer *> scoredLayers;
    weights.reserve(g->layers.size());
    for (const wq::AWQPlanLayer &l : g->layers) {
      auto w = readFloats(*archive, l.weight);
      if (!w)
        return w.takeError();
      if (int64_t(w->size()) != l.n * g->k)
        return makeError("layer '" + l.name + "': the weight is not [" +
                         llvm::Twine(l.n) + ", " + llvm::Twine(g->k) + "]");
      weights.push_back(std::move(*w));
      if (l.scheme) {
        linears.push_back({weights.back(), l.n, *l.scheme});
        scoredLayers.push_back(&l);
      }
    }
    auto candidates = quant::awqCandidates(
        recorder.absMean(recorder.indexOf(first)), g->k, linears,
        plan->options, first);
    if (!candidates)
      return candidates.takeError();
    std::vector<double> losses;
    std::vector<double> fq;
    for (const quant::AWQCandidate &c : *candidates) {
      WeightOverlay overlay = base;
      for (auto [l, layer] : llvm::zip(linears, scoredLayers)) {
        fq.resize(l.w.size());
        quant::awqScaledFakeQuant(l.w, l.n, g->k, c.scales, l.scheme, fq);
        overlay[layer->weight] =
            toArchiveBytes(fq, archive->lookup(layer->weight)->dtype);
      }
      // _compute_loss: mean over the output's elements of the squared
      // difference (the block adds the same residual to both).
      double sum = 0, count = 0;
      for (int64_t i = 0; i < scored; ++i) {
        auto got = run(i, &overlay);
        if (!got)
          return got.takeError();
        HostTensor want;
        if (cut.empty()) {
          auto ref = reference(i);
          if (!ref)
            return ref.takeError();
          want = std::move(*ref);
        }
        auto a = got->as<float>();
        auto b = (cut.empty() ? want : cut[i]).as<float>();
        if (a.size() != b.size())
          return makeError("block outputs changed shape");
        for (size_t j = 0; j < a.size(); ++j) {
          double d = double(a[j]) - double(b[j]);
          sum += d * d;
        }
        count += double(a.size());
        tick();
      }
      losses.push_back(sum / count);
    }
    recorder.addTensor(first + ".awq_loss", std::move(losses));
  }
  return llvm::Error::success();
}
