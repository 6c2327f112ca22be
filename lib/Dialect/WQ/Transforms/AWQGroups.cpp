//===- AWQGroups.cpp - AWQ's scaling groups in the IR ---------------------===//
// Matches the op before each set of linears sharing an input: a norm's
// per-channel weight (and bias), a linear read only by an element-wise
// product (up_proj before down_proj) or by o_proj through attention
// (v_proj, no GQA), or an activation after a linear (GELU: an inserted
// division). See AWQGroups.h.
//===----------------------------------------------------------------------===//

#include "AWQGroups.h"

#include "quant-mlir/Dialect/WQ/IR/WQBuilders.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/SmallPtrSet.h"

using namespace mlir;

namespace quant_mlir::wq::detail {

static bool isElementwise(linalg::GenericOp g) {
  if (g.getNumResults() != 1 || g.getNumDpsInits() != 1)
    return false;
  for (utils::IteratorType t : g.getIteratorTypesArray())
    if (t != utils::IteratorType::parallel)
      return false;
  return g.getIndexingMapsArray().back().isIdentity() &&
         g.getRegionOutputArgs().front().use_empty();
}

WeightOp soleWeight(Value v, const llvm::StringMap<int> &uses) {
  auto w = v.getDefiningOp<WeightOp>();
  if (!w || !w->hasOneUse())
    return {};
  auto it = uses.find(w.getName());
  return it != uses.end() && it->second == 1 ? w : WeightOp();
}

/// The block argument of `g` that `v` is, if `v` is one of its inputs'.
static OpOperand *inputOf(linalg::GenericOp g, Value v) {
  auto arg = dyn_cast<BlockArgument>(v);
  if (!arg || arg.getOwner() != g.getBody() ||
      arg.getArgNumber() >= unsigned(g.getNumDpsInputs()))
    return nullptr;
  return g.getDpsInputOperand(arg.getArgNumber());
}

/// A 1-D wq.weight input of `g` broadcast along the last dimension.
static WeightOp channelWeight(linalg::GenericOp g, Value arg,
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
static bool matchNorm(Value x, ScaleGroup &group, const llvm::StringMap<int> &uses) {
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
static bool matchProduct(Value x, ScaleGroup &group,
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
static bool matchActivation(Value x, ScaleGroup &group) {
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
static bool matchValueOutput(LinearOp o, ScaleGroup &group,
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

bool avoidsClipping(StringRef layer) {
  for (StringRef s : {"q_", "k_", "query", "key", "Wqkv"})
    if (layer.contains(s))
      return true;
  return false;
}

void insertActivationScale(ScaleGroup &g, StringRef name) {
  LinearOp first = g.consumers.front();
  OpBuilder b(first);
  b.setInsertionPointAfterValue(g.input);
  Value div = buildActivationScale(b, first.getLoc(), g.input, name);
  for (LinearOp op : g.consumers)
    op.getInputMutable().assign(div);
}

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

} // namespace quant_mlir::wq::detail
