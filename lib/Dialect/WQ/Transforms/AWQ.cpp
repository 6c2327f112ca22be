//===- AWQ.cpp - wq-awq ---------------------------------------------------===//
// AWQ as a rewrite of the IR and its archive: on the scaling groups
// (AWQGroups.h), searches each group's scales on the calibration statistics
// (lib/Quant/AWQ.cpp), folds them so that the float function is unchanged,
// clips, and quantizes through the shared layer quantizer, group by group
// as the quantizer takes the layers.
//===----------------------------------------------------------------------===//

#include "AWQGroups.h"
#include "QuantizeCommon.h"

#include "quant-mlir/Dialect/WQ/Transforms/AWQPlan.h"
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h"
#include "quant-mlir/Dialect/WQ/Transforms/SchemeSelection.h"
#include "quant-mlir/Quant/AWQ.h"
#include "quant-mlir/Support/Progress.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FormatVariadic.h"

#include <chrono>
#include <map>

namespace quant_mlir::wq {
#define GEN_PASS_DEF_WQAWQ
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h.inc"
} // namespace quant_mlir::wq

using namespace mlir;
using namespace quant_mlir;
using namespace quant_mlir::wq;
using namespace quant_mlir::wq::detail;
using safetensors::DType;

namespace {
struct AWQPass : public quant_mlir::wq::impl::WQAWQBase<AWQPass> {
  using Base::Base;
  template <typename P>
  friend QuantizeConfig quant_mlir::wq::detail::commonConfig(const P &);

  void runOnOperation() override {
    if (failed(run()))
      signalPassFailure();
  }

  LogicalResult run();
  /// The search options; fails with a diagnostic on `module`.
  LogicalResult searchOptions(ModuleOp module, quant::AWQOptions &opts);
  /// What the module losses depend on (AWQPlan::fingerprint).
  std::string moduleLossFingerprint() const;
};

LogicalResult AWQPass::searchOptions(ModuleOp module,
                                     quant::AWQOptions &opts) {
  opts.nGrid = nGrid;
  if (duoScaling == "true")
    opts.duo = quant::DuoScaling::On;
  else if (duoScaling == "false")
    opts.duo = quant::DuoScaling::Off;
  else if (duoScaling == "both")
    opts.duo = quant::DuoScaling::Both;
  else
    return module.emitError() << "wq-awq duo-scaling must be true, false or "
                                 "both, got '"
                              << duoScaling << "'";
  if (nGrid < 1)
    return module.emitError() << "wq-awq n-grid must be positive";
  if (loss != "linear" && loss != "module")
    return module.emitError()
           << "wq-awq loss must be linear or module, got '" << loss << "'";
  return success();
}

std::string AWQPass::moduleLossFingerprint() const {
  QuantizeConfig cfg = commonConfig(*this);
  // No skip list means the default one: both spell the same selection (the
  // driver passes the default explicitly, quant-opt leaves it out).
  std::string skipText =
      llvm::join(cfg.select.skip.value_or(SchemeSelector::defaultSkip()), ",");
  return llvm::formatv("awq-module-loss bits={0} group-size={1} "
                       "zero-point={2} skip={3} overrides={4} n-grid={5} "
                       "duo-scaling={6}",
                       cfg.select.bits, cfg.select.groupSize,
                       int(cfg.select.zeroPoint), skipText,
                       llvm::join(cfg.select.overrides, ","), int64_t(nGrid),
                       duoScaling.getValue())
      .str();
}

/// wq-awq's rewrite, run group by group as the layer quantizer asks for the
/// layers in program order. A tensor is final once the last group touching
/// it (as a reader of the group's input, or as the op before it) is done:
/// it is then clipped and handed over or emitted, so that the pass holds the
/// tensors of the groups in flight (about one block's), not the model's. The
/// arithmetic and its order per tensor are those of a whole-model pass.
class AWQRewriter final : public WeightRewriter {
public:
  ModuleOp module;
  quant::AWQOptions opts;
  bool quantize = true, clipSearch = true, gptq = false, moduleLoss = false;
  std::unique_ptr<safetensors::Reader> in, stats;
  llvm::StringMap<int> uses;
  llvm::DenseMap<Operation *, SchemeAttr> schemes;
  SmallVector<ScaleGroup> groups;
  std::string reportText = "layers,prev,alpha,duo,loss,loss_kind,seconds\n";

  /// Indexes the groups and the layers; after the fields above are set.
  void index(ModuleOp m) {
    for (auto [i, g] : llvm::enumerate(groups))
      for (std::string &name : touchedBy(g))
        lastTouch[name] = i;
    m.walk([&](LinearOp op) {
      auto w = op.getWeight().getDefiningOp<WeightOp>();
      if (!op.getName() || !w)
        return;
      std::string layer = op.getName()->str();
      linears[layer] = op;
      weightOf[layer] = w.getName().str();
      layerOf[w.getName().str()] = layer;
      // AutoAWQ clips every selected layer but the q/k projections.
      if (clipSearch && schemes[op] && !avoidsClipping(layer) &&
          soleWeight(op.getWeight(), uses))
        clipped.push_back(layer);
    });
  }

  FailureOr<std::optional<Layer>> take(StringRef layer, Emit emit) override {
    auto w = weightOf.find(layer.str());
    if (w == weightOf.end() || handed.contains(layer))
      return std::optional<Layer>();
    auto last = lastTouch.find(w->second);
    if (last != lastTouch.end()) {
      while (nextGroup <= last->second)
        if (failed(runGroup(nextGroup++, emit)))
          return failure();
    } else if (!ready.count(layer.str()) && isClipped(layer)) {
      // Clipped, never scaled (o_proj under GQA).
      if (failed(clipOnly(layer, emit)))
        return failure();
    }
    auto r = ready.find(layer.str());
    if (r == ready.end())
      return std::optional<Layer>();
    std::optional<Layer> out = std::move(r->second);
    ready.erase(r);
    handed.insert(layer);
    return out;
  }

  LogicalResult finish(Emit emit) override {
    // Whatever no layer needed: every group in the float-only modes.
    Progress progress("wq-awq", int64_t(groups.size() - nextGroup));
    while (nextGroup < groups.size()) {
      if (failed(runGroup(nextGroup++, emit)))
        return failure();
      progress.advance();
    }
    progress.finish();
    for (const std::string &layer : clipped)
      if (!handed.contains(layer) && !ready.count(layer) &&
          !lastTouch.count(weightOf[layer]) && failed(clipOnly(layer, emit)))
        return failure();
    // A rewritten layer the quantizer did not take keeps its float weight.
    for (auto &[layer, l] : ready) {
      const safetensors::TensorInfo *info = infos[weightOf[layer]];
      emit(info->name, info->dtype, info->shape, l.weight);
    }
    ready.clear();
    return success();
  }

private:
  size_t nextGroup = 0;
  /// Archive name -> the last group that rewrites it.
  std::map<std::string, size_t> lastTouch;
  /// Named linears: layer -> op (valid until handed over), layer -> weight
  /// name and back.
  std::map<std::string, LinearOp> linears;
  std::map<std::string, std::string> weightOf, layerOf;
  /// The layers the clip search runs on, in program order.
  std::vector<std::string> clipped;
  /// Float tensors being rewritten, by archive name.
  std::map<std::string, std::vector<float>> current;
  std::map<std::string, const safetensors::TensorInfo *> infos;
  /// Layer -> the scales its input is divided by.
  std::map<std::string, std::vector<double>> inputScale;
  /// Final layers waiting for take(), and the layers done with.
  std::map<std::string, Layer> ready;
  llvm::StringSet<> handed;

  bool isClipped(StringRef layer) const {
    return llvm::is_contained(clipped, layer.str());
  }

  /// The float values of archive tensor `name`, read once and then held
  /// until final; null when it is not a float tensor.
  std::vector<float> *load(StringRef name) {
    auto it = current.find(name.str());
    if (it != current.end())
      return &it->second;
    const safetensors::TensorInfo *info = in->lookup(name);
    if (!info || (info->dtype != DType::F32 && info->dtype != DType::F16 &&
                  info->dtype != DType::BF16))
      return nullptr;
    infos[name.str()] = info;
    std::vector<float> &v = current[name.str()] = toFloats(*in, *info);
    in->releasePages(*info); // held as floats from now on
    return &v;
  }

  LogicalResult statsOf(LinearOp op, StringRef what, DType dtype,
                        const safetensors::TensorInfo *&out) {
    std::optional<StatsAttr> s = op.getStats();
    if (!s)
      return op.emitError() << "layer '" << *op.getName()
                            << "' has no calibration statistics; run "
                               "quant-run --calibrate first";
    std::string key = (s->getKey() + what).str();
    out = stats->lookup(key);
    if (!out || out->dtype != dtype)
      return op.emitError() << "layer '" << *op.getName() << "': statistics '"
                            << key << "' missing or of the wrong dtype";
    return success();
  }

  LogicalResult runGroup(size_t index, Emit emit);
  LogicalResult clip(StringRef layer, std::vector<float> &w,
                     std::vector<float> &reference);
  LogicalResult clipOnly(StringRef layer, Emit emit);
  LogicalResult finalize(StringRef name, Emit emit);
};

LogicalResult AWQRewriter::runGroup(size_t index, Emit emit) {
  ScaleGroup &g = groups[index];
  LinearOp first = g.consumers.front();
  StringRef groupName = *first.getName();
  int64_t k =
      cast<RankedTensorType>(first.getWeight().getType()).getDimSize(1);
  const safetensors::TensorInfo *meanInfo, *hInfo;
  if (failed(statsOf(first, ".absmean", DType::F32, meanInfo)) ||
      failed(statsOf(first, ".hessian", DType::F64, hInfo)))
    return failure();
  if (meanInfo->numElements() != k || hInfo->numElements() != k * k)
    return first.emitError() << "layer '" << groupName
                             << "': statistics do not match K = " << k;
  SmallVector<quant::AWQLinear> layers;
  SmallVector<std::vector<float> *> weights;
  for (LinearOp op : g.consumers) {
    std::vector<float> *w =
        load(op.getWeight().getDefiningOp<WeightOp>().getName());
    if (!w)
      return op.emitError() << "layer '" << *op.getName()
                            << "': the weight is not a float archive tensor";
    weights.push_back(w);
    if (SchemeAttr s = schemes[op]) // skipped layers are scaled, not scored
      layers.push_back(
          {*w,
           int64_t(w->size()) / k,
           {s.getBits(), s.getGroupSize(), s.getSymmetric(), false}});
  }
  // Module loss for the norm-headed groups (the others' inspected module is
  // their own linear, whose loss the Hessian gives exactly).
  ArrayRef<double> measured;
  if (moduleLoss && g.prev == ScaleGroup::Prev::Norm) {
    const safetensors::TensorInfo *lossInfo;
    if (failed(statsOf(first, ".awq_loss", DType::F64, lossInfo)))
      return failure();
    measured = stats->as<double>(*lossInfo);
  }
  auto searchStart = std::chrono::steady_clock::now();
  auto found = quant::searchAWQScales(stats->as<float>(*meanInfo),
                                      stats->as<double>(*hInfo), k, layers,
                                      opts, groupName, measured);
  if (!found)
    return first.emitError() << llvm::toString(found.takeError());
  // Read once: a mapped Hessian left resident would make the pass's memory
  // grow with depth.
  stats->releasePages(*hInfo);
  stats->releasePages(*meanInfo);
  // The scales are folded as float32 values, the same everywhere.
  std::vector<double> s = found->scales;
  for (double &v : s)
    v = double(float(v));
  for (std::vector<float> *w : weights)
    for (size_t i = 0; i < w->size(); ++i)
      (*w)[i] = float(double((*w)[i]) * s[i % k]);
  for (LinearOp op : g.consumers)
    inputScale[op.getName()->str()] = s;
  static const char *prevNames[] = {"norm", "linear", "activation"};
  SmallVector<StringRef> names;
  for (LinearOp op : g.consumers)
    names.push_back(*op.getName());
  reportText +=
      llvm::formatv("{0},{1},{2},{3},{4:e6},{5},{6:f3}\n",
                    llvm::join(names, ";"), prevNames[int(g.prev)],
                    found->alpha, found->duo ? "true" : "false", found->loss,
                    measured.empty() ? "linear" : "module",
                    std::chrono::duration<double>(
                        std::chrono::steady_clock::now() - searchStart)
                        .count())
          .str();
  auto divideBy = [&](std::vector<float> &v, int64_t rowLen) {
    for (size_t i = 0; i < v.size(); ++i)
      v[i] = float(double(v[i]) / s[i / rowLen]);
  };
  switch (g.prev) {
  case ScaleGroup::Prev::Norm:
    for (WeightOp w : {g.normWeight, g.normBias})
      if (w) {
        std::vector<float> *v = load(w.getName());
        if (!v || int64_t(v->size()) != k)
          return w.emitError() << "'" << w.getName() << "' is not a float ["
                               << k << "] tensor";
        divideBy(*v, 1);
      }
    break;
  case ScaleGroup::Prev::Linear: {
    LinearOp p = g.prevLinear;
    std::vector<float> *w =
        load(p.getWeight().getDefiningOp<WeightOp>().getName());
    if (!w || int64_t(w->size()) % k != 0)
      return p.emitError()
             << "layer '" << p.getName().value_or("")
             << "': cannot absorb the scales of '" << groupName << "'";
    divideBy(*w, int64_t(w->size()) / k);
    if (p.getBias())
      if (std::vector<float> *b =
              load(p.getBias().getDefiningOp<WeightOp>().getName()))
        divideBy(*b, 1);
    break;
  }
  case ScaleGroup::Prev::Activation: {
    // ScaledActivation: x' = act(..) / s right after the activation.
    auto type = cast<RankedTensorType>(g.input.getType());
    Type elem = type.getElementType();
    std::string name = (groupName + ".awq_scales").str();
    DType dtype = elem.isF16()    ? DType::F16
                  : elem.isBF16() ? DType::BF16
                                  : DType::F32;
    emit(name, dtype, {k}, std::vector<float>(s.begin(), s.end()));
    insertActivationScale(g, name);
    break;
  }
  }
  for (const std::string &name : touchedBy(g))
    if (lastTouch[name] == index && current.count(name) &&
        failed(finalize(name, emit)))
      return failure();
  return success();
}

/// AutoAWQ's clip search on the final scaled weight and the scaled inputs;
/// `reference` keeps the weight before clipping for the report.
LogicalResult AWQRewriter::clip(StringRef layer, std::vector<float> &w,
                                std::vector<float> &reference) {
  LinearOp op = linears[layer.str()];
  int64_t k = cast<RankedTensorType>(op.getWeight().getType()).getDimSize(1);
  const safetensors::TensorInfo *rowsInfo;
  if (failed(statsOf(op, ".inputs", DType::F32, rowsInfo)))
    return failure();
  if (rowsInfo->shape.size() != 2 || rowsInfo->shape[1] != k)
    return op.emitError() << "layer '" << layer
                          << "': sampled inputs are not [rows, " << k << "]";
  int64_t rows = rowsInfo->shape[0];
  auto raw = stats->as<float>(*rowsInfo);
  std::vector<double> x(raw.begin(), raw.end());
  stats->releasePages(*rowsInfo);
  auto sc = inputScale.find(layer.str());
  if (sc != inputScale.end())
    for (size_t i = 0; i < x.size(); ++i)
      x[i] /= sc->second[i % k];
  SchemeAttr s = schemes[op];
  quant::Scheme qs{s.getBits(), s.getGroupSize(), s.getSymmetric(), false};
  if (llvm::Error e = quant::verifyScheme(qs, int64_t(w.size()) / k, k, layer))
    return op.emitError() << llvm::toString(std::move(e));
  int64_t n = int64_t(w.size()) / k;
  reference = w; // the report compares against the unclipped
  std::vector<double> t = quant::searchAWQClip(w, n, k, x, rows, qs, opts);
  quant::applyAWQClip(w, n, k, t, qs);
  return success();
}

LogicalResult AWQRewriter::clipOnly(StringRef layer, Emit emit) {
  const std::string &name = weightOf[layer.str()];
  if (!load(name))
    return linears[layer.str()].emitError()
           << "layer '" << layer
           << "': the weight is not a float archive tensor";
  return finalize(name, emit);
}

/// Archive tensor `name` is final: clipped if its layer is, then waiting for
/// take() when the layer is quantized, else emitted.
LogicalResult AWQRewriter::finalize(StringRef name, Emit emit) {
  auto it = current.find(name.str());
  std::vector<float> values = std::move(it->second);
  current.erase(it);
  auto layerIt = layerOf.find(name.str());
  if (layerIt != layerOf.end()) {
    const std::string &layer = layerIt->second;
    Layer l;
    if (isClipped(layer) && failed(clip(layer, values, l.reference)))
      return failure();
    if (quantize && schemes[linears[layer]]) {
      l.weight = std::move(values);
      auto sc = inputScale.find(layer);
      if (sc != inputScale.end()) {
        if (gptq) // GPTQ's Hessian is that of the scaled input
          l.inputScale = std::move(sc->second);
        inputScale.erase(sc);
      }
      ready[layer] = std::move(l);
      return success();
    }
    handed.insert(layer);
  }
  const safetensors::TensorInfo *info = infos[name.str()];
  emit(name, info->dtype, info->shape, values);
  return success();
}

LogicalResult AWQPass::run() {
  ModuleOp module = getOperation();
  QuantizeConfig cfg = commonConfig(*this);
  cfg.awq = true;
  cfg.gptq = gptq;
  cfg.gptqOptions.dampPercent = dampPercent;
  cfg.gptqOptions.blockSize = blockSize;
  cfg.gptqOptions.staticGroups = staticGroups;
  std::string m = fakeQuant ? "fake" : mode.getValue();
  if (m != "gemm" && m != "fake" && m != "scale" && m != "clip")
    return module.emitError()
           << "wq-awq mode must be gemm, fake, scale or clip, got '" << m
           << "'";
  cfg.fakeQuant = m == "fake";
  AWQRewriter rewriter;
  rewriter.module = module;
  rewriter.quantize = m == "gemm" || m == "fake";
  rewriter.clipSearch = m != "scale" && clip;
  rewriter.gptq = gptq;
  rewriter.moduleLoss = loss == "module";
  if (failed(searchOptions(module, rewriter.opts)))
    return failure();
  if (cfg.output.empty())
    return module.emitError()
           << "wq-awq needs output=<archive> for the quantized weights";
  StringRef archive = getArchivePath(module);
  auto statsPath =
      module->getAttrOfType<StringAttr>(WQDialect::kStatsArchiveAttrName);
  if (archive.empty() || !statsPath)
    return module.emitError() << "wq-awq needs the module's wq.archive and "
                                 "wq.stats_archive (run quant-run --calibrate "
                                 "first)";
  auto in = safetensors::Reader::open(resolve(cfg.baseDir, archive));
  if (!in)
    return module.emitError() << llvm::toString(in.takeError());
  rewriter.in = std::move(*in);
  auto stats = safetensors::openArchive(resolve(cfg.baseDir, statsPath));
  if (!stats)
    return module.emitError() << llvm::toString(stats.takeError());
  rewriter.stats = std::move(*stats);
  auto selector =
      SchemeSelector::create(cfg.select, [&] { return module.emitError(); });
  if (failed(selector))
    return failure();
  if (failed(collectGroups(module, **selector, rewriter.uses, rewriter.schemes,
                           rewriter.groups)))
    return failure();
  if (rewriter.moduleLoss) {
    const auto &meta = rewriter.stats->metadata();
    auto it = meta.find("awq_module_loss");
    std::string want = moduleLossFingerprint();
    if (it == meta.end())
      return module.emitError()
             << "wq-awq loss=module: the statistics hold no module losses "
                "(calibrate with quant-compile --awq-loss module, or use "
                "loss=linear)";
    if (it->second != want)
      return module.emitError()
             << "wq-awq loss=module: the statistics' module losses were "
                "measured for '"
             << it->second << "', this pass runs '" << want << "'";
  }
  rewriter.index(module);
  rewriter.method = gptq ? "awq+gptq" : "awq";
  rewriter.awqPacking = m == "gemm";
  rewriter.floatOnly = !rewriter.quantize;
  if (failed(runQuantize(module, cfg, "wq-awq", &rewriter)))
    return failure();
  if (!awqReport.empty())
    if (llvm::Error e = llvm::writeToOutput(resolve(cfg.baseDir, awqReport),
                                            [&](llvm::raw_ostream &os) {
                                              os << rewriter.reportText;
                                              return llvm::Error::success();
                                            }))
      return module.emitError() << llvm::toString(std::move(e));
  return success();
}
} // namespace

llvm::Expected<AWQPlan>
quant_mlir::wq::planAWQModuleLoss(ModuleOp module,
                                  const WQAWQOptions &options) {
  // Through the pass itself, so the plan and the pass share one mapping.
  auto pass = createWQAWQ(options);
  auto &awq = static_cast<AWQPass &>(*pass);
  AWQPlan plan;
  plan.fingerprint = awq.moduleLossFingerprint();
  std::string diag;
  ScopedDiagnosticHandler handler(module.getContext(), [&](Diagnostic &d) {
    diag = d.str();
    return success();
  });
  if (failed(awq.searchOptions(module, plan.options)))
    return fail(diag);
  QuantizeConfig cfg = commonConfig(awq);
  auto selector =
      SchemeSelector::create(cfg.select, [&] { return module.emitError(); });
  if (failed(selector))
    return fail(diag);
  llvm::StringMap<int> uses;
  llvm::DenseMap<Operation *, SchemeAttr> schemes;
  SmallVector<ScaleGroup> groups;
  if (failed(collectGroups(module, **selector, uses, schemes, groups)))
    return fail(diag);
  SmallVector<LinearOp> linears;
  module.walk([&](LinearOp op) { linears.push_back(op); });
  for (auto [i, g] : llvm::enumerate(groups)) {
    if (g.prev != ScaleGroup::Prev::Norm)
      continue;
    AWQPlanGroup pg;
    pg.k = cast<RankedTensorType>(g.consumers.front().getWeight().getType())
               .getDimSize(1);
    for (LinearOp op : g.consumers) {
      AWQPlanLayer l;
      l.name = op.getName()->str();
      l.weight = op.getWeight().getDefiningOp<WeightOp>().getName().str();
      l.n = cast<RankedTensorType>(op.getWeight().getType()).getDimSize(0);
      if (SchemeAttr s = schemes[op])
        l.scheme = quant::Scheme{s.getBits(), s.getGroupSize(),
                                 s.getSymmetric(), false};
      pg.layers.push_back(std::move(l));
    }
    pg.zero = nextBranch(groups, i, linears);
    plan.groups.push_back(std::move(pg));
  }
  return plan;
}
