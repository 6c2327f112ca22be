//===- AWQ.cpp - wq-awq
//------------------------------------------------------===//
// AWQ as a rewrite of the IR and its archive: finds the scaling groups
// (linears sharing an input, and the op before them that can absorb a
// per-channel scale), searches each group's scales on the calibration
// statistics (lib/Quant/AWQ.cpp), folds them so that the float function is
// unchanged, clips, and quantizes through the shared layer quantizer.
//===----------------------------------------------------------------------===//

#include "QuantizeCommon.h"

#include "quant-mlir/Dialect/WQ/IR/WQBuilders.h"
#include "quant-mlir/Dialect/WQ/Transforms/AWQPlan.h"
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h"
#include "quant-mlir/Dialect/WQ/Transforms/SchemeSelection.h"
#include "quant-mlir/Quant/AWQ.h"
#include "quant-mlir/Support/Progress.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/SetVector.h"
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
/// A scaling group: the balanced linears (all readers of `input`) and the op
/// before them that absorbs 1/s.
struct ScaleGroup {
  enum class Prev { Norm, Linear, Activation } prev;
  Value input;
  SmallVector<LinearOp> consumers;
  WeightOp normWeight, normBias; // Prev::Norm (bias optional)
  LinearOp prevLinear;           // Prev::Linear
};

bool isElementwise(linalg::GenericOp g) {
  if (g.getNumResults() != 1 || g.getNumDpsInits() != 1)
    return false;
  for (utils::IteratorType t : g.getIteratorTypesArray())
    if (t != utils::IteratorType::parallel)
      return false;
  return g.getIndexingMapsArray().back().isIdentity() &&
         g.getRegionOutputArgs().front().use_empty();
}

/// The archive tensor behind `v` when it is a wq.weight that nothing else
/// reads (so that it can be rewritten in place), else null.
WeightOp soleWeight(Value v, const llvm::StringMap<int> &uses) {
  auto w = v.getDefiningOp<WeightOp>();
  if (!w || !w->hasOneUse())
    return {};
  auto it = uses.find(w.getName());
  return it != uses.end() && it->second == 1 ? w : WeightOp();
}

/// The block argument of `g` that `v` is, if `v` is one of its inputs'.
OpOperand *inputOf(linalg::GenericOp g, Value v) {
  auto arg = dyn_cast<BlockArgument>(v);
  if (!arg || arg.getOwner() != g.getBody() ||
      arg.getArgNumber() >= unsigned(g.getNumDpsInputs()))
    return nullptr;
  return g.getDpsInputOperand(arg.getArgNumber());
}

/// A 1-D wq.weight input of `g` broadcast along the last dimension.
WeightOp channelWeight(linalg::GenericOp g, Value arg,
                       const llvm::StringMap<int> &uses) {
  OpOperand *in = inputOf(g, arg);
  if (!in || !arg.hasOneUse())
    return {};
  AffineMap map = g.getMatchingIndexingMap(in);
  if (map.getNumResults() != 1 ||
      map.getResult(0) !=
          getAffineDimExpr(map.getNumDims() - 1, g.getContext()))
    return {};
  return soleWeight(in->get(), uses);
}

/// x = norm(..) * w (+ b) with w, b 1-D weights of K channels.
bool matchNorm(Value x, ScaleGroup &group, const llvm::StringMap<int> &uses) {
  auto g = x.getDefiningOp<linalg::GenericOp>();
  if (!g || !isElementwise(g))
    return false;
  auto yield = cast<linalg::YieldOp>(g.getBody()->getTerminator());
  Value v = yield.getOperand(0);
  WeightOp bias;
  if (auto add = v.getDefiningOp<arith::AddFOp>()) {
    for (int i = 0; i < 2 && !bias; ++i)
      if ((bias = channelWeight(g, add->getOperand(i), uses)))
        v = add->getOperand(1 - i);
    if (!bias)
      return false;
  }
  auto mul = v.getDefiningOp<arith::MulFOp>();
  if (!mul || !mul->hasOneUse())
    return false;
  for (int i = 0; i < 2; ++i)
    if (WeightOp w = channelWeight(g, mul->getOperand(i), uses)) {
      group.prev = ScaleGroup::Prev::Norm;
      group.normWeight = w;
      group.normBias = bias;
      return true;
    }
  return false;
}

/// x = f(..) * P(..) element-wise with P a linear read only here (SwiGLU's
/// up_proj before down_proj): P's output rows absorb 1/s.
bool matchProduct(Value x, ScaleGroup &group,
                  const llvm::StringMap<int> &uses) {
  auto g = x.getDefiningOp<linalg::GenericOp>();
  if (!g || !isElementwise(g))
    return false;
  auto yield = cast<linalg::YieldOp>(g.getBody()->getTerminator());
  auto mul = yield.getOperand(0).getDefiningOp<arith::MulFOp>();
  if (!mul)
    return false;
  for (int i = 0; i < 2; ++i) {
    OpOperand *in = inputOf(g, mul->getOperand(i));
    if (!in || !mul->getOperand(i).hasOneUse() ||
        !g.getMatchingIndexingMap(in).isIdentity())
      continue;
    auto p = in->get().getDefiningOp<LinearOp>();
    if (!p || !p->hasOneUse() || !soleWeight(p.getWeight(), uses) ||
        (p.getBias() && !soleWeight(p.getBias(), uses)))
      continue;
    group.prev = ScaleGroup::Prev::Linear;
    group.prevLinear = p;
    return true;
  }
  return false;
}

/// x = act(P(..)): a chain of element-wise generics whose only tensor leaf
/// is one linear's output (GELU after c_fc / dense_h_to_4h). The scale is
/// inserted as a division after the activation (AutoAWQ ScaledActivation).
bool matchActivation(Value x, ScaleGroup &group) {
  SmallVector<Value> stack{x};
  llvm::SmallPtrSet<Operation *, 16> seen;
  LinearOp root;
  while (!stack.empty()) {
    Value v = stack.pop_back_val();
    if (auto lin = v.getDefiningOp<LinearOp>()) {
      if (root && root != lin)
        return false;
      root = lin;
      continue;
    }
    auto g = v.getDefiningOp<linalg::GenericOp>();
    if (!g || !isElementwise(g) || seen.size() > 32)
      return false;
    if (!seen.insert(g).second)
      continue;
    for (OpOperand *in : g.getDpsInputOperands()) {
      if (!g.getMatchingIndexingMap(in).isIdentity())
        return false;
      stack.push_back(in->get());
    }
  }
  if (!root || x == root.getResult())
    return false;
  group.prev = ScaleGroup::Prev::Activation;
  return true;
}

/// o_proj after v_proj (AutoAWQ llama.py: only when v_proj and o_proj have
/// the same shape, i.e. no GQA): the attention output is linear in V per
/// channel, so v_proj's rows absorb 1/s.
bool matchValueOutput(LinearOp o, ScaleGroup &group,
                      const llvm::StringMap<LinearOp> &byName,
                      const llvm::StringMap<int> &uses) {
  StringRef name = o.getName().value_or("");
  if (!name.ends_with("o_proj"))
    return false;
  auto it = byName.find((name.drop_back(6) + "v_proj").str());
  if (it == byName.end())
    return false;
  LinearOp v = it->second;
  auto vw = cast<RankedTensorType>(v.getWeight().getType());
  auto ow = cast<RankedTensorType>(o.getWeight().getType());
  if (vw.getShape() != ow.getShape() || !soleWeight(v.getWeight(), uses) ||
      (v.getBias() && !soleWeight(v.getBias(), uses)))
    return false;
  group.prev = ScaleGroup::Prev::Linear;
  group.prevLinear = v;
  return true;
}

/// AutoAWQ auto_clip: avoid_clipping = ["q_", "k_", "query", "key", "Wqkv"].
bool avoidsClipping(StringRef layer) {
  for (StringRef s : {"q_", "k_", "query", "key", "Wqkv"})
    if (layer.contains(s))
      return true;
  return false;
}

/// AutoAWQ's ScaledActivation: the group's readers get x / s, with s the
/// archive tensor `name` [K], computed right after the activation x.
void insertActivationScale(ScaleGroup &g, StringRef name) {
  LinearOp first = g.consumers.front();
  OpBuilder b(first);
  b.setInsertionPointAfterValue(g.input);
  Value div = buildActivationScale(b, first.getLoc(), g.input, name);
  for (LinearOp op : g.consumers)
    op.getInputMutable().assign(div);
}

/// The scaling groups of `module` in program order, every layer's scheme
/// (null: left in float) and the readers of each archive name (a tensor read
/// twice is never rewritten in place).
LogicalResult collectGroups(ModuleOp module, const SchemeSelector &selector,
                            llvm::StringMap<int> &uses,
                            llvm::DenseMap<Operation *, SchemeAttr> &schemes,
                            SmallVector<ScaleGroup> &groups) {
  module.walk([&](WeightOp w) {
    uses[w.getName()] += std::distance(w->use_begin(), w->use_end());
  });
  llvm::StringMap<LinearOp> byName;
  llvm::SetVector<Value> inputs;
  llvm::DenseMap<Value, SmallVector<LinearOp>> readers;
  WalkResult walk = module.walk([&](LinearOp op) {
    SchemeAttr scheme = op.getSchemeAttr();
    if (!scheme) {
      FailureOr<SchemeAttr> s = selector.select(op);
      if (failed(s))
        return WalkResult::interrupt();
      scheme = *s;
    }
    schemes[op] = scheme;
    if (op.getName())
      byName[*op.getName()] = op;
    inputs.insert(op.getInput());
    readers[op.getInput()].push_back(op);
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return failure();

  for (Value x : inputs) {
    ScaleGroup g;
    g.input = x;
    g.consumers = readers[x];
    bool anySelected = false, weightsOk = true;
    for (LinearOp op : g.consumers) {
      anySelected |= static_cast<bool>(schemes[op]);
      weightsOk &= static_cast<bool>(soleWeight(op.getWeight(), uses)) &&
                   op.getName().has_value();
    }
    if (!anySelected || !weightsOk)
      continue;
    if (matchNorm(x, g, uses) ||
        (g.consumers.size() == 1 &&
         matchValueOutput(g.consumers[0], g, byName, uses)) ||
        matchProduct(x, g, uses) || matchActivation(x, g))
      groups.push_back(std::move(g));
  }

  return success();
}

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

/// The linears of the norm-headed branch after `g` in program order (the
/// MLP after the attention): from the next norm group's first reader up to
/// the one after it.
std::vector<AWQPlanGroup::Zeroed> nextBranch(ArrayRef<ScaleGroup> groups,
                                             size_t g,
                                             ArrayRef<LinearOp> linears) {
  auto firstAfterNorm = [&](size_t from) -> Operation * {
    for (size_t i = from; i < groups.size(); ++i)
      if (groups[i].prev == ScaleGroup::Prev::Norm)
        return groups[i].consumers.front();
    return nullptr;
  };
  Operation *begin = firstAfterNorm(g + 1);
  if (!begin)
    return {};
  size_t after = g + 1;
  while (groups[after].consumers.front() != begin)
    ++after;
  Operation *end = firstAfterNorm(after + 1);
  std::vector<AWQPlanGroup::Zeroed> out;
  bool inside = false;
  for (LinearOp op : linears) {
    if (op == begin)
      inside = true;
    if (op == end)
      break;
    if (!inside)
      continue;
    for (Value v : {op.getWeight(), op.getBias()})
      if (v)
        if (auto w = v.getDefiningOp<WeightOp>())
          out.push_back({op.getName().value_or("").str(),
                         w.getName().str()});
  }
  return out;
}

/// The names of the archive tensors group `g` reads and rewrites: its
/// readers' weights and the op before it that absorbs 1/s.
SmallVector<std::string> touchedBy(ScaleGroup &g) {
  SmallVector<std::string> names;
  auto add = [&](Value v) {
    if (v)
      if (auto w = v.getDefiningOp<WeightOp>())
        names.push_back(w.getName().str());
  };
  for (LinearOp op : g.consumers)
    add(op.getWeight());
  if (g.prev == ScaleGroup::Prev::Norm) {
    for (WeightOp w : {g.normWeight, g.normBias})
      if (w)
        names.push_back(w.getName().str());
  } else if (g.prev == ScaleGroup::Prev::Linear) {
    add(g.prevLinear.getWeight());
    add(g.prevLinear.getBias());
  }
  return names;
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
