//===- OutlineBlocks.cpp - wq-outline-blocks --------------------------------===//
// Splits a decoder's entry function into prologue / block / epilogue
// functions so that one transformer block can run alone on given
// activations. Block boundaries come from post-dominance in the def-use
// graph (Passes.td describes the rule).
//===----------------------------------------------------------------------===//

#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/StringExtras.h"

#include <limits>
#include <map>

namespace quant_mlir::wq {
#define GEN_PASS_DEF_WQOUTLINEBLOCKS
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h.inc"
} // namespace quant_mlir::wq

using namespace mlir;
using namespace quant_mlir::wq;

namespace {
/// The layer of an archive tensor: its first all-digit '.'-separated
/// component ("model.layers.3.mlp.up_proj.weight" -> 3, "transformer.h.11."
/// -> 11); none for embeddings, final norms and heads.
std::optional<int64_t> layerOf(StringRef name) {
  SmallVector<StringRef> parts;
  name.split(parts, '.');
  for (StringRef p : parts) {
    int64_t v;
    if (!p.empty() && llvm::all_of(p, llvm::isDigit) && !p.getAsInteger(10, v))
      return v;
  }
  return std::nullopt;
}

/// Ops re-created in every stage that uses them instead of being passed.
bool isRematerializable(Operation *op) {
  return isa<WeightOp, tensor::EmptyOp, linalg::FillOp>(op) ||
         op->hasTrait<OpTrait::ConstantLike>();
}

/// Values `op` (or an op nested in it) reads that are defined outside `op`.
SmallVector<Value> usedValues(Operation *op) {
  llvm::SetVector<Value> values(op->operand_begin(), op->operand_end());
  visitUsedValuesDefinedAbove(op->getRegions(), [&](OpOperand *operand) {
    values.insert(operand->get());
  });
  return values.takeVector();
}

constexpr int kPrologue = -1;
constexpr int kNone = std::numeric_limits<int>::min() / 2;

struct Splitter {
  func::FuncOp entry;
  Block *body;
  SmallVector<Operation *> ops; // the body's ops, terminator last
  DenseMap<Operation *, int> index;
  SmallVector<SmallVector<int>> users, producers;
  SmallVector<int> ipdom, depth;
  /// cuts[s + 1] is the op defining the residual stream after stage s
  /// (s = -1: the prologue's output, the input of block 0).
  SmallVector<int> cuts;
  SmallVector<int64_t> layers; // layer numbers, ascending, one per block
  SmallVector<int> stage;      // per op: -1 prologue, b block, L epilogue
  int numBlocks() const { return layers.size(); }

  InFlightDiagnostic error(Operation *at) { return at->emitError(); }

  int topLevel(Operation *op) const {
    Operation *anc = body->findAncestorOpInBlock(*op);
    if (!anc)
      return -1;
    return index.lookup(anc);
  }

  void buildGraph() {
    for (Operation &op : *body) {
      index[&op] = ops.size();
      ops.push_back(&op);
    }
    users.resize(ops.size());
    producers.resize(ops.size());
    for (auto [i, op] : llvm::enumerate(ops))
      for (Value v : usedValues(op)) {
        Operation *def = v.getDefiningOp();
        if (!def || def->getBlock() != body)
          continue;
        int p = index.lookup(def);
        if (!llvm::is_contained(producers[i], p))
          producers[i].push_back(p);
        if (!llvm::is_contained(users[p], int(i)))
          users[p].push_back(i);
      }
  }

  int lca(int a, int b) const {
    while (a != b) {
      if (depth[a] > depth[b])
        a = ipdom[a];
      else if (depth[b] > depth[a])
        b = ipdom[b];
      else
        a = ipdom[a], b = ipdom[b];
    }
    return a;
  }

  /// Post-dominators towards the terminator. Ops whose results nothing live
  /// reads (calibration hooks, dead code) post-dominate nothing and are
  /// ignored as users.
  void postDominators() {
    int n = ops.size();
    ipdom.assign(n, -1);
    depth.assign(n, -1);
    ipdom[n - 1] = n - 1;
    depth[n - 1] = 0;
    for (int i = n - 2; i >= 0; --i) {
      int acc = -1;
      for (int u : users[i]) {
        if (depth[u] < 0)
          continue;
        acc = acc < 0 ? u : lca(acc, u);
      }
      if (acc < 0)
        continue;
      ipdom[i] = acc;
      depth[i] = depth[acc] + 1;
    }
  }

  /// The block boundaries. Block b's output is the nearest common
  /// post-dominator of its input and of all uses of layer b's weights (the
  /// residual add after the block); block 0's input is the weight-free value
  /// read by layer 0's ops whose such post-dominator comes first (the
  /// embedding: side values such as rotary tables reach the residual stream
  /// only in later blocks).
  LogicalResult findCuts() {
    std::map<int64_t, SmallVector<int>> byLayer;
    for (auto [i, op] : llvm::enumerate(ops))
      if (auto w = dyn_cast<WeightOp>(op))
        if (auto l = layerOf(w.getName()); l && depth[i] >= 0)
          byLayer[*l].push_back(i);
    if (byLayer.empty())
      return entry.emitError()
             << "no wq.weight of '" << entry.getSymName()
             << "' names a layer (an all-digit name component such as "
                "'layers.0'); nothing to split into blocks";
    SmallVector<int> meet; // per block: common post-dominator of its weights
    for (auto &[layer, weights] : byLayer) {
      layers.push_back(layer);
      int m = -1;
      for (int w : weights)
        m = m < 0 ? ipdom[w] : lca(m, ipdom[w]);
      meet.push_back(m);
    }

    int n = ops.size();
    constexpr int kInf = std::numeric_limits<int>::max();
    SmallVector<int> firstLayer(n, kInf); // min block of weights in backslice
    for (int i = 0; i < n; ++i) {
      if (auto w = dyn_cast<WeightOp>(ops[i]))
        if (auto l = layerOf(w.getName()))
          firstLayer[i] = llvm::find(layers, *l) - layers.begin();
      for (int p : producers[i])
        firstLayer[i] = std::min(firstLayer[i], firstLayer[p]);
    }
    int input = -1, inputEnd = kInf, typedInput = -1, typedEnd = kInf;
    for (int i = 0; i < n; ++i) {
      Operation *op = ops[i];
      if (firstLayer[i] != kInf || isRematerializable(op) || depth[i] < 0 ||
          op->getNumResults() != 1 ||
          !isa<RankedTensorType>(op->getResult(0).getType()) ||
          llvm::none_of(users[i], [&](int u) { return firstLayer[u] == 0; }))
        continue;
      int end = lca(ipdom[i], meet.front());
      // The residual stream has one type in and out of a block; a side
      // value read by layer 0 (a per-layer attention mask) does not, so a
      // candidate whose block ends in its own type is preferred.
      bool sameType = ops[end]->getNumResults() == 1 &&
                      ops[end]->getResult(0).getType() ==
                          op->getResult(0).getType();
      if (sameType && end < typedEnd)
        typedInput = i, typedEnd = end;
      if (end < inputEnd)
        input = i, inputEnd = end;
    }
    if (typedInput >= 0)
      input = typedInput;
    if (input < 0)
      return entry.emitError()
             << "cannot find the input of the first block: no tensor computed "
                "without layer weights is read by layer "
             << layers.front() << "'s ops";

    int ret = n - 1;
    cuts.push_back(input);
    for (auto [b, layer] : llvm::enumerate(layers)) {
      int cut = lca(ipdom[cuts.back()], meet[b]);
      Operation *op = ops[cut];
      if (cut == ret || op->getNumResults() != 1 ||
          !isa<RankedTensorType>(op->getResult(0).getType()))
        return error(ops[byLayer[layer].front()])
               << "the uses of layer " << layer
               << "'s weights do not meet its input in one tensor before the "
                  "output (no residual stream to cut the graph at: per-layer "
                  "outputs such as a KV cache, or connections that skip past "
                  "the next block, prevent the split)";
      if (cut <= cuts.back())
        return error(op) << "layer " << layer
                         << " ends before its input is computed";
      cuts.push_back(cut);
    }
    Type stream = ops[input]->getResult(0).getType();
    for (auto [b, cut] : llvm::enumerate(ArrayRef(cuts).drop_front()))
      if (ops[cut]->getResult(0).getType() != stream)
        return error(ops[cut]) << "block of layer " << layers[b] << " ends in "
                               << ops[cut]->getResult(0).getType()
                               << ", not its input's type " << stream;
    return success();
  }

  /// stage[i] = the cut's block for a cut, else one past the latest cut the
  /// op depends on (kPrologue when none).
  void assignStages() {
    int n = ops.size();
    DenseMap<int, int> cutBlock;
    for (auto [s, cut] : llvm::enumerate(cuts))
      cutBlock[cut] = int(s) - 1;
    SmallVector<int> reach(n, kNone);
    stage.assign(n, kPrologue);
    for (int i = 0; i < n; ++i) {
      int dep = kNone;
      for (int p : producers[i])
        dep = std::max(dep, reach[p]);
      auto it = cutBlock.find(i);
      if (it != cutBlock.end()) {
        stage[i] = it->second;
        reach[i] = std::max(dep, it->second);
      } else {
        stage[i] = dep == kNone ? kPrologue : dep + 1;
        reach[i] = dep;
      }
    }
  }

  std::string stageName(int s) const {
    if (s == kPrologue)
      return "the prologue";
    if (s >= numBlocks())
      return "the epilogue";
    return "block " + std::to_string(layers[s]);
  }

  /// The values stage `s` receives: its stream input (or, for the prologue,
  /// the entry's arguments) and side values. Sides are collected across all
  /// stages in a first pass (collect = true).
  struct Resolution {
    llvm::SetVector<Value> sides;
  };

  /// Checks that `v`, read by an op of stage `s`, is available there:
  /// computed in `s`, the stream input, rematerializable (recursively), or a
  /// prologue value / entry argument (recorded as a side value).
  LogicalResult resolve(Value v, int s, Operation *reader,
                        llvm::SetVector<Value> &sides) {
    if (auto arg = dyn_cast<BlockArgument>(v)) {
      if (arg.getOwner() != body || s == kPrologue)
        return success();
      sides.insert(v);
      return success();
    }
    Operation *def = v.getDefiningOp();
    if (def->getBlock() != body)
      return success(); // defined inside the reader's own regions
    int d = index.lookup(def);
    if (isRematerializable(def)) {
      for (Value u : usedValues(def))
        if (failed(resolve(u, s, reader, sides)))
          return failure();
      return success();
    }
    if (stage[d] == s)
      return success();
    if (s != kPrologue && d == cuts[s])
      return success(); // the stream input (cuts[s] ends stage s - 1)
    if (stage[d] == kPrologue) {
      sides.insert(v);
      return success();
    }
    InFlightDiagnostic diag = error(reader);
    diag << "cannot split '" << entry.getSymName() << "' into blocks: this op ("
         << stageName(s) << ") reads a value computed in " << stageName(stage[d])
         << ", which only the residual stream may pass between blocks";
    diag.attachNote(def->getLoc()) << "the value is defined here";
    return failure();
  }

  static bool isScalar(Type t) {
    return isa<IndexType, IntegerType, FloatType>(t);
  }
  static Type carrierType(Type t) {
    if (isa<IndexType>(t))
      t = IntegerType::get(t.getContext(), 64);
    return isScalar(t) ? Type(RankedTensorType::get({}, t)) : t;
  }
  static Value wrap(OpBuilder &b, Location loc, Value v) {
    Type t = v.getType();
    if (!isScalar(t))
      return v;
    if (isa<IndexType>(t))
      v = arith::IndexCastOp::create(b, loc, b.getI64Type(), v);
    return tensor::FromElementsOp::create(
        b, loc, RankedTensorType::get({}, v.getType()), v);
  }
  static Value unwrap(OpBuilder &b, Location loc, Value carrier, Type t) {
    if (!isScalar(t))
      return carrier;
    Value v = tensor::ExtractOp::create(b, loc, carrier, ValueRange{});
    if (isa<IndexType>(t))
      v = arith::IndexCastOp::create(b, loc, t, v);
    return v;
  }

  /// Clones the ops of stage `s` into `func` (whose entry block's arguments
  /// are already mapped in `map`), re-creating rematerializable ops on
  /// demand, then returns `results` (mapped, wrapped when `wrapResults`).
  void fill(func::FuncOp func, int s, IRMapping &map, ArrayRef<Value> results,
            bool wrapScalars) {
    OpBuilder b = OpBuilder::atBlockEnd(&func.getBody().front());
    std::function<void(Value)> materialize = [&](Value v) {
      if (map.contains(v))
        return;
      Operation *def = v.getDefiningOp();
      if (!def || def->getBlock() != body || !isRematerializable(def))
        return;
      for (Value u : usedValues(def))
        materialize(u);
      b.clone(*def, map);
    };
    for (auto [i, op] : llvm::enumerate(ops)) {
      if (int(i) + 1 == int(ops.size()) || stage[i] != s ||
          isRematerializable(op))
        continue;
      for (Value v : usedValues(op))
        materialize(v);
      b.clone(*op, map);
    }
    SmallVector<Value> out;
    for (Value v : results) {
      materialize(v);
      Value m = map.lookup(v);
      out.push_back(wrapScalars ? wrap(b, func.getLoc(), m) : m);
    }
    func::ReturnOp::create(b, func.getLoc(), out);
  }

  LogicalResult run(ModuleOp module) {
    buildGraph();
    postDominators();
    if (failed(findCuts()))
      return failure();
    assignStages();
    int last = numBlocks(); // the epilogue's stage number
    Operation *terminator = ops.back();
    for (auto [i, op] : llvm::enumerate(ops))
      if (!isRematerializable(op) && stage[i] > last)
        stage[i] = last;

    // Every cross-stage read must be legal; collect the side values.
    llvm::SetVector<Value> sides;
    for (auto [i, op] : llvm::enumerate(ops)) {
      if (isRematerializable(op) || int(i) + 1 == int(ops.size()))
        continue;
      for (Value v : usedValues(op))
        if (failed(resolve(v, stage[i], op, sides)))
          return failure();
    }
    for (auto [k, v] : llvm::enumerate(terminator->getOperands())) {
      Operation *def = v.getDefiningOp();
      int s = def && def->getBlock() == body ? stage[index.lookup(def)]
                                             : kPrologue;
      if (def && isRematerializable(def))
        s = last;
      if (s != last && !(s == last - 1 && def &&
                         index.lookup(def) == cuts.back()))
        return error(terminator)
               << "result #" << k << " of '" << entry.getSymName()
               << "' is computed in " << stageName(s)
               << "; only graphs whose outputs follow the last block (no "
                  "per-layer outputs such as a KV cache) split into blocks";
      if (failed(resolve(v, last, terminator, sides)))
        return failure();
    }
    for (Value v : sides)
      if (!isa<RankedTensorType>(v.getType()) && !isScalar(v.getType()))
        return error(v.getDefiningOp() ? v.getDefiningOp()
                                       : entry.getOperation())
               << "a value the blocks share has type " << v.getType()
               << ", which cannot be passed between stages";

    MLIRContext *ctx = module.getContext();
    OpBuilder mb(ctx);
    mb.setInsertionPointAfter(entry);
    Location loc = entry.getLoc();
    Value streamIn = ops[cuts.front()]->getResult(0);
    Type stream = streamIn.getType();
    SmallVector<Type> sideTypes;
    for (Value v : sides)
      sideTypes.push_back(carrierType(v.getType()));
    std::string base = entry.getSymName().str();

    SmallVector<func::FuncOp> stages;
    auto makeFunc = [&](const std::string &name, TypeRange args,
                        TypeRange results) {
      auto f = func::FuncOp::create(mb, loc, name,
                                    FunctionType::get(ctx, args, results));
      f.setPrivate();
      f.addEntryBlock();
      mb.setInsertionPointAfter(f);
      stages.push_back(f);
      return f;
    };

    // Prologue: the entry's arguments -> (stream, sides...).
    SmallVector<Type> prologueResults{stream};
    llvm::append_range(prologueResults, sideTypes);
    func::FuncOp prologue = makeFunc(base + ".prologue",
                                     entry.getArgumentTypes(), prologueResults);
    {
      IRMapping map;
      for (auto [from, to] :
           llvm::zip(body->getArguments(), prologue.getArguments()))
        map.map(from, to);
      SmallVector<Value> results{streamIn};
      llvm::append_range(results, sides);
      fill(prologue, kPrologue, map, results, /*wrapScalars=*/true);
    }

    // Stages after the prologue: (stream, sides...) -> ...
    SmallVector<Type> stageArgs{stream};
    llvm::append_range(stageArgs, sideTypes);
    auto mapInputs = [&](func::FuncOp f, Value input, IRMapping &map) {
      OpBuilder b = OpBuilder::atBlockBegin(&f.getBody().front());
      map.map(input, f.getArgument(0));
      for (auto [i, v] : llvm::enumerate(sides))
        map.map(v, unwrap(b, loc, f.getArgument(i + 1), v.getType()));
    };
    for (int s = 0; s < last; ++s) {
      func::FuncOp f = makeFunc(base + ".block" + std::to_string(layers[s]),
                                stageArgs, stream);
      IRMapping map;
      mapInputs(f, ops[cuts[s]]->getResult(0), map);
      fill(f, s, map, ops[cuts[s + 1]]->getResult(0), false);
    }
    func::FuncOp epilogue =
        makeFunc(base + ".epilogue", stageArgs, entry.getResultTypes());
    {
      IRMapping map;
      mapInputs(epilogue, ops[cuts.back()]->getResult(0), map);
      fill(epilogue, last, map,
           SmallVector<Value>(terminator->getOperands()), false);
    }

    // The entry becomes a chain of calls.
    SmallVector<Value> args(body->getArguments());
    OpBuilder b = OpBuilder::atBlockBegin(body);
    auto pro = func::CallOp::create(b, loc, prologue, args);
    SmallVector<Value> carried(pro.getResults().drop_front());
    Value h = pro.getResult(0);
    for (func::FuncOp f : ArrayRef(stages).drop_front().drop_back()) {
      SmallVector<Value> operands{h};
      llvm::append_range(operands, carried);
      h = func::CallOp::create(b, loc, f, operands).getResult(0);
    }
    SmallVector<Value> operands{h};
    llvm::append_range(operands, carried);
    auto epi = func::CallOp::create(b, loc, epilogue, operands);
    terminator->setOperands(epi.getResults());
    for (Operation *op : llvm::reverse(ArrayRef(ops).drop_back())) {
      op->dropAllUses();
      op->erase();
    }
    // Stage-local dead code (re-created constants nobody reads).
    for (func::FuncOp f : stages)
      for (Operation &op :
           llvm::make_early_inc_range(llvm::reverse(f.getBody().front())))
        if (isOpTriviallyDead(&op))
          op.erase();
    SmallVector<Attribute> refs;
    for (func::FuncOp f : stages)
      refs.push_back(FlatSymbolRefAttr::get(f.getSymNameAttr()));
    module->setAttr(WQDialect::kBlocksAttrName, ArrayAttr::get(ctx, refs));
    return success();
  }
};

struct OutlineBlocksPass
    : public quant_mlir::wq::impl::WQOutlineBlocksBase<OutlineBlocksPass> {
  using Base::Base;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (module->hasAttr(WQDialect::kBlocksAttrName)) {
      module.emitError() << "the module is already split into blocks ('"
                         << WQDialect::kBlocksAttrName << "')";
      return signalPassFailure();
    }
    func::FuncOp target;
    if (!entry.empty()) {
      target = module.lookupSymbol<func::FuncOp>(entry);
      if (!target || target.isExternal()) {
        module.emitError() << "no function '" << entry << "' with a body";
        return signalPassFailure();
      }
    } else {
      SmallVector<func::FuncOp> publics;
      for (auto f : module.getOps<func::FuncOp>())
        if (f.isPublic() && !f.isExternal())
          publics.push_back(f);
      if (publics.size() != 1) {
        module.emitError() << "the module has " << publics.size()
                           << " public functions; name the entry with func=";
        return signalPassFailure();
      }
      target = publics.front();
    }
    if (!target.getBody().hasOneBlock()) {
      target.emitError() << "only single-block functions split into blocks";
      return signalPassFailure();
    }
    Splitter splitter;
    splitter.entry = target;
    splitter.body = &target.getBody().front();
    if (failed(splitter.run(module)))
      signalPassFailure();
  }
};
} // namespace
