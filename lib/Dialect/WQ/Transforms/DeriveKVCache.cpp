//===- DeriveKVCache.cpp - wq-derive-kv-cache ------------------------------===//
// Derives a cached decode step from a decoder's full-sequence graph: the
// new tokens' keys and values are written into preallocated caches at a
// position argument and attention reads the cache's written prefix, so one
// step costs the new tokens only. Passes.td describes how attention is recognized and
// which graphs are refused.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Dialect/WQ/Transforms/Passes.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Analysis/SliceAnalysis.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/SmallPtrSet.h"

#include <numeric>

namespace quant_mlir::wq {
#define GEN_PASS_DEF_WQDERIVEKVCACHE
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h.inc"
} // namespace quant_mlir::wq

using namespace mlir;

namespace {

/// out += a * b with exactly one reduction loop (matmul-like einsum).
bool isContraction(linalg::GenericOp g) {
  if (g.getNumDpsInputs() != 2 || g.getNumDpsInits() != 1 ||
      g.getNumReductionLoops() != 1)
    return false;
  auto body = g.getRegion().front().without_terminator();
  SmallVector<Operation *> ops;
  for (Operation &op : body)
    ops.push_back(&op);
  return ops.size() == 2 && isa<arith::MulFOp>(ops[0]) &&
         isa<arith::AddFOp>(ops[1]);
}

/// A generic that only yields its single input (a broadcast or copy).
bool isCopy(linalg::GenericOp g) {
  if (g.getNumDpsInputs() != 1 || g.getNumDpsInits() != 1 ||
      g.getNumReductionLoops() != 0)
    return false;
  Block &body = g.getRegion().front();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  return body.getOperations().size() == 1 &&
         yield.getOperand(0) == body.getArgument(0);
}

/// arange(n): a rank-1 i64 generic without inputs yielding linalg.index 0.
bool isArange(linalg::GenericOp g) {
  if (g.getNumDpsInputs() != 0 || g.getNumDpsInits() != 1)
    return false;
  auto type = dyn_cast<RankedTensorType>(g.getResult(0).getType());
  if (!type || type.getRank() != 1 || !type.getElementType().isInteger(64))
    return false;
  Block &body = g.getRegion().front();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  auto cast = yield.getOperand(0).getDefiningOp<arith::IndexCastOp>();
  auto index = cast ? cast.getIn().getDefiningOp<linalg::IndexOp>() : nullptr;
  return index && index.getDim() == 0 && body.getOperations().size() == 3;
}

OpFoldResult sizeOf(OpBuilder &b, Location loc, Value v, int64_t d) {
  auto type = cast<RankedTensorType>(v.getType());
  if (!type.isDynamicDim(d))
    return b.getIndexAttr(type.getDimSize(d));
  return tensor::DimOp::create(b, loc, v, d).getResult();
}

RankedTensorType typeOf(ArrayRef<OpFoldResult> sizes, Type element) {
  SmallVector<int64_t> shape;
  for (OpFoldResult s : sizes) {
    auto attr = dyn_cast<Attribute>(s);
    shape.push_back(attr ? cast<IntegerAttr>(attr).getInt()
                         : ShapedType::kDynamic);
  }
  return RankedTensorType::get(shape, element);
}

/// A fresh destination like `init` (tensor.empty, or linalg.fill of one)
/// with `sizes`.
FailureOr<Value> newInit(OpBuilder &b, Location loc, Value init,
                         ArrayRef<OpFoldResult> sizes) {
  Type element = cast<RankedTensorType>(init.getType()).getElementType();
  if (init.getDefiningOp<tensor::EmptyOp>())
    return tensor::EmptyOp::create(b, loc, sizes, element).getResult();
  if (auto fill = init.getDefiningOp<linalg::FillOp>()) {
    if (!fill.getOutputs()[0].getDefiningOp<tensor::EmptyOp>())
      return failure();
    Value empty = tensor::EmptyOp::create(b, loc, sizes, element);
    return linalg::FillOp::create(b, loc, fill.getInputs()[0], empty)
        .getResult(0);
  }
  return failure();
}

/// Re-creates `op` on mapped operands with shapes derived from them (the
/// key length changes from S to the cache's). Error naming the op when it
/// cannot.
FailureOr<Value> recreate(OpBuilder &b, Operation *op, IRMapping &map) {
  Location loc = op->getLoc();
  auto fail = [&](const Twine &why) -> FailureOr<Value> {
    op->emitError("wq-derive-kv-cache: cannot re-create this op with the "
                  "cache's key length: ")
        << why;
    return failure();
  };
  if (auto g = dyn_cast<linalg::GenericOp>(op)) {
    if (g.getNumDpsInits() != 1)
      return fail("more than one result");
    SmallVector<Value> ins;
    for (Value v : g.getDpsInputs())
      ins.push_back(map.lookupOrDefault(v));
    auto maps = g.getIndexingMapsArray();
    auto origOut = cast<RankedTensorType>(g.getResult(0).getType());
    AffineMap outMap = maps.back();
    SmallVector<OpFoldResult> outSizes;
    for (auto [r, expr] : llvm::enumerate(outMap.getResults())) {
      auto dim = dyn_cast<AffineDimExpr>(expr);
      if (!dim)
        return fail("a non-dimension output index");
      // Prefer a static size from any input, then a dynamic one.
      OpFoldResult size;
      for (auto [i, in] : llvm::enumerate(ins))
        for (auto [k, e] : llvm::enumerate(maps[i].getResults()))
          if (e == expr) {
            auto t = cast<RankedTensorType>(in.getType());
            if (!t.isDynamicDim(k) && (!size || !isa<Attribute>(size)))
              size = b.getIndexAttr(t.getDimSize(k));
            else if (!size)
              size = sizeOf(b, loc, in, k);
          }
      if (!size) {
        if (origOut.isDynamicDim(r))
          return fail("output dimension " + Twine(r) + " has no input size");
        size = b.getIndexAttr(origOut.getDimSize(r));
      }
      outSizes.push_back(size);
    }
    FailureOr<Value> init =
        newInit(b, loc, g.getDpsInitOperand(0)->get(), outSizes);
    if (failed(init))
      return fail("its destination is not a tensor.empty or a fill of one");
    IRMapping local;
    for (auto [old, v] : llvm::zip(g.getDpsInputs(), ins))
      local.map(old, v);
    local.map(g.getDpsInitOperand(0)->get(), *init);
    Operation *clone = b.clone(*g, local);
    clone->getResult(0).setType(
        typeOf(outSizes, origOut.getElementType()));
    return clone->getResult(0);
  }
  if (auto t = dyn_cast<linalg::TransposeOp>(op)) {
    Value in = map.lookupOrDefault(t.getInput());
    SmallVector<OpFoldResult> sizes;
    for (int64_t p : t.getPermutation())
      sizes.push_back(sizeOf(b, loc, in, p));
    Value init = tensor::EmptyOp::create(b, 
        loc, sizes, cast<RankedTensorType>(in.getType()).getElementType());
    return linalg::TransposeOp::create(b, loc, in, init, t.getPermutation())
        .getResult()[0];
  }
  if (auto e = dyn_cast<tensor::ExpandShapeOp>(op)) {
    Value in = map.lookupOrDefault(e.getSrc());
    auto inType = cast<RankedTensorType>(in.getType());
    auto orig = e.getResultType();
    SmallVector<OpFoldResult> sizes(orig.getRank());
    for (auto [g, group] : llvm::enumerate(e.getReassociationIndices())) {
      int64_t dynamic = -1, product = 1;
      for (int64_t d : group) {
        if (orig.isDynamicDim(d)) {
          if (dynamic >= 0)
            return fail("two dynamic sizes in one group");
          dynamic = d;
        } else {
          product *= orig.getDimSize(d);
          sizes[d] = b.getIndexAttr(orig.getDimSize(d));
        }
      }
      if (dynamic < 0)
        continue;
      if (!inType.isDynamicDim(g))
        sizes[dynamic] = b.getIndexAttr(inType.getDimSize(g) / product);
      else if (product == 1)
        sizes[dynamic] = sizeOf(b, loc, in, g);
      else
        return fail("a dynamic split of a dimension");
    }
    RankedTensorType type = typeOf(sizes, inType.getElementType());
    return tensor::ExpandShapeOp::create(b, loc, type, in,
                                       e.getReassociationIndices(), sizes)
        .getResult();
  }
  if (auto c = dyn_cast<tensor::CollapseShapeOp>(op))
    return tensor::CollapseShapeOp::create(b, loc, map.lookupOrDefault(c.getSrc()),
                                         c.getReassociationIndices())
        .getResult();
  return fail("unsupported op");
}

/// Walks from a contraction operand back to K or V: through an optional
/// transpose(0,1,3,2) (K^T), head repeats (expand_shape, broadcast copy,
/// collapse_shape). `chain` gets the ops from the source to `v`.
Value traceKV(OpBuilder &b, Value v, bool transposed,
              SmallVector<Operation *> &chain) {
  if (transposed) {
    auto t = v.getDefiningOp<linalg::TransposeOp>();
    // [B, S, H, D] -> [B, H, D, S] in one transpose (GPT-2's export): split
    // it into [B, H, S, D] (the cached layout) and its K^T.
    if (t && t.getPermutation() == ArrayRef<int64_t>{0, 2, 3, 1}) {
      b.setInsertionPoint(t);
      Location loc = t.getLoc();
      Value in = t.getInput();
      auto element = cast<RankedTensorType>(in.getType()).getElementType();
      SmallVector<OpFoldResult> sizes;
      for (int64_t p : {0, 2, 1, 3})
        sizes.push_back(sizeOf(b, loc, in, p));
      Value init = tensor::EmptyOp::create(b, loc, sizes, element);
      Value bhsd = linalg::TransposeOp::create(b, loc, in, init,
                                               ArrayRef<int64_t>{0, 2, 1, 3})
                       .getResult()[0];
      std::swap(sizes[2], sizes[3]);
      init = tensor::EmptyOp::create(b, loc, sizes, element);
      auto kt = linalg::TransposeOp::create(b, loc, bhsd, init,
                                            ArrayRef<int64_t>{0, 1, 3, 2});
      t.getResult()[0].replaceAllUsesWith(kt.getResult()[0]);
      t.erase();
      t = kt;
    }
    if (!t || t.getPermutation() != ArrayRef<int64_t>{0, 1, 3, 2})
      return {};
    chain.push_back(t);
    v = t.getInput();
  }
  while (Operation *def = v.getDefiningOp()) {
    if (isa<tensor::ExpandShapeOp, tensor::CollapseShapeOp>(def)) {
      chain.push_back(def);
      v = def->getOperand(0);
      continue;
    }
    if (auto g = dyn_cast<linalg::GenericOp>(def); g && isCopy(g)) {
      chain.push_back(def);
      v = g.getDpsInputs()[0];
      continue;
    }
    break;
  }
  std::reverse(chain.begin(), chain.end());
  return v;
}

struct Attention {
  linalg::GenericOp scores, output;
};

/// Pairs each contraction whose left operand is computed from another
/// contraction within a few elementwise / reduction / reshape ops.
SmallVector<Attention> findAttentions(func::FuncOp f) {
  SmallVector<Attention> found;
  f.walk([&](linalg::GenericOp o) {
    if (!isContraction(o))
      return;
    SmallVector<Value> work{o.getDpsInputs()[0]};
    llvm::DenseSet<Operation *> seen;
    linalg::GenericOp scores;
    while (!work.empty() && seen.size() < 32) {
      Operation *def = work.pop_back_val().getDefiningOp();
      if (!def || !seen.insert(def).second)
        continue;
      auto g = dyn_cast<linalg::GenericOp>(def);
      if (g && isContraction(g)) {
        scores = g;
        break;
      }
      if (g)
        for (Value v : g.getDpsInputs())
          work.push_back(v);
      else if (isa<tensor::ExpandShapeOp, tensor::CollapseShapeOp>(def))
        work.push_back(def->getOperand(0));
    }
    if (scores)
      found.push_back({scores, o});
  });
  return found;
}

struct DeriveKVCachePass
    : quant_mlir::wq::impl::WQDeriveKVCacheBase<DeriveKVCachePass> {
  using WQDeriveKVCacheBase::WQDeriveKVCacheBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    func::FuncOp entry;
    int publicCount = 0;
    for (auto f : module.getOps<func::FuncOp>())
      if (f.isPublic() && !f.isExternal()) {
        ++publicCount;
        if (func.empty() ? !entry : f.getSymName() == func)
          entry = f;
      }
    if (!entry || (func.empty() && publicCount != 1)) {
      module.emitError("wq-derive-kv-cache: ")
          << (func.empty() ? "needs exactly one public function (or func=)"
                           : "no public function '" + func + "'");
      return signalPassFailure();
    }
    if (maxSeqLen < 1) {
      module.emitError("wq-derive-kv-cache: max-seq-len must be positive");
      return signalPassFailure();
    }
    if (entry.getNumArguments() != 1 || entry.getNumResults() != 1) {
      entry.emitError("wq-derive-kv-cache: the entry must map token ids to "
                      "logits alone; it has ")
          << entry.getNumArguments() << " inputs and "
          << entry.getNumResults()
          << " results (graphs with attention_mask, position_ids or "
             "past_key_values inputs run as exported)";
      return signalPassFailure();
    }
    auto step = cast<func::FuncOp>(entry->clone());
    step.setSymName((entry.getSymName() + ".decode_step").str());
    module.push_back(step);
    if (failed(derive(step))) {
      step.erase();
      return signalPassFailure();
    }
  }

  LogicalResult derive(func::FuncOp f) {
    MLIRContext *ctx = f.getContext();
    Location loc = f.getLoc();
    Block &body = f.getBody().front();
    auto posType = RankedTensorType::get({1}, IntegerType::get(ctx, 64));
    if (failed(f.insertArgument(1, posType, {}, loc)))
      return failure();
    OpBuilder b = OpBuilder::atBlockBegin(&body);
    // One sequence per step (the caches hold batch 1): the ids become
    // tensor<1xS>, cast back to the graph's type for its users.
    BlockArgument ids = body.getArgument(0);
    auto idsType = dyn_cast<RankedTensorType>(ids.getType());
    bool isIds = idsType && idsType.getRank() == 2 &&
                 idsType.getElementType().isInteger(64);
    if (isIds && !idsType.isDynamicDim(0) && idsType.getDimSize(0) != 1)
      return f.emitError("wq-derive-kv-cache: the token ids are ")
             << ids.getType() << ": the cached step decodes one sequence "
             << "(batch 1)";
    auto stepIdsType =
        isIds ? RankedTensorType::get({1, idsType.getDimSize(1)},
                                      idsType.getElementType())
              : idsType;
    if (stepIdsType != idsType) {
      ids.setType(stepIdsType);
      Value asGraph = tensor::CastOp::create(b, loc, idsType, ids);
      ids.replaceAllUsesExcept(asGraph, asGraph.getDefiningOp());
    }
    Value c0 = arith::ConstantIndexOp::create(b, loc, 0);
    Value pos = tensor::ExtractOp::create(b, loc, f.getArgument(1), c0);
    Value posIndex = arith::IndexCastOp::create(b, loc, b.getIndexType(), pos);
    SmallVector<int64_t> keyPositions(maxSeqLen);
    std::iota(keyPositions.begin(), keyPositions.end(), 0);
    Value keys = arith::ConstantOp::create(b, 
        loc, DenseIntElementsAttr::get(
                 RankedTensorType::get({maxSeqLen}, b.getI64Type()),
                 ArrayRef<int64_t>(keyPositions)));

    // Positions of the new tokens: arange(S) + pos everywhere.
    llvm::DenseSet<Value> queryPositions;
    SmallVector<linalg::GenericOp> aranges;
    f.walk([&](linalg::GenericOp g) {
      if (isArange(g))
        aranges.push_back(g);
    });
    for (linalg::GenericOp a : aranges) {
      b.setInsertionPointAfter(a);
      Value r = a.getResult(0);
      auto type = cast<RankedTensorType>(r.getType());
      Value n = tensor::DimOp::create(b, b.getUnknownLoc(), r, 0);
      Value empty = tensor::EmptyOp::create(b, loc, type.getShape(),
                                              type.getElementType(), ValueRange{n})
                        .getResult();
      auto id = b.getMultiDimIdentityMap(1);
      auto shifted = linalg::GenericOp::create(b, 
          a.getLoc(), type, ValueRange{r}, ValueRange{empty},
          ArrayRef<AffineMap>{id, id},
          ArrayRef<utils::IteratorType>{utils::IteratorType::parallel},
          [&](OpBuilder &nb, Location l, ValueRange args) {
            linalg::YieldOp::create(nb, 
                l, arith::AddIOp::create(nb, l, args[0], pos).getResult());
          });
      llvm::SmallPtrSet<Operation *, 2> keep{n.getDefiningOp(),
                                            shifted.getOperation()};
      r.replaceAllUsesExcept(shifted.getResult(0), keep);
      queryPositions.insert(shifted.getResult(0));
    }

    SmallVector<Attention> attentions = findAttentions(f);
    if (attentions.empty())
      return f.emitError("wq-derive-kv-cache: no attention found (a "
                         "contraction computed from another contraction)");
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    int64_t numCaches = 0;
    for (auto [layer, att] : llvm::enumerate(attentions)) {
      IRMapping map;
      Value liveKeys;
      SmallVector<Operation *> kChain, vChain;
      Value k = traceKV(b, att.scores.getDpsInputs()[1], true, kChain);
      Value v = traceKV(b, att.output.getDpsInputs()[1], false, vChain);
      for (auto [what, src, user] :
           {std::tuple{"keys", k, att.scores}, {"values", v, att.output}}) {
        auto t = src ? dyn_cast<RankedTensorType>(src.getType()) : nullptr;
        if (!t || t.getRank() != 4 || t.isDynamicDim(1) || t.isDynamicDim(3) ||
            !t.getElementType().isF32())
          return user.emitError("wq-derive-kv-cache: the ")
                 << what << " of attention " << layer
                 << " are not a tensor<BxHxSxDxf32> with static H and D";
      }
      // Write the new tokens into each cache at pos.
      for (Value src : {k, v}) {
        auto t = cast<RankedTensorType>(src.getType());
        SmallVector<int64_t> cacheShape{1, t.getDimSize(1), maxSeqLen,
                                        t.getDimSize(3)};
        auto cacheType = RankedTensorType::get(cacheShape, t.getElementType());
        // The caller's buffer, written in place: the new slots are stored
        // into it and nothing of size M is copied or returned per step.
        BlockArgument buffer = f.getBody().addArgument(
            MemRefType::get(cacheShape, t.getElementType()), loc);
        b.setInsertionPointAfterValue(src);
        Value cache = bufferization::ToTensorOp::create(
            b, loc, cacheType, buffer, /*restrict=*/true, /*writable=*/true);
        SmallVector<OpFoldResult> offsets{b.getIndexAttr(0), b.getIndexAttr(0),
                                          posIndex, b.getIndexAttr(0)};
        SmallVector<OpFoldResult> sizes{sizeOf(b, loc, src, 0),
                                        b.getIndexAttr(t.getDimSize(1)),
                                        sizeOf(b, loc, src, 2),
                                        b.getIndexAttr(t.getDimSize(3))};
        SmallVector<OpFoldResult> strides(4, b.getIndexAttr(1));
        Value updated = tensor::InsertSliceOp::create(b, loc, src, cache,
                                                        offsets, sizes, strides);
        // restrict: the to_tensor above is the buffer's only tensor view.
        bufferization::MaterializeInDestinationOp::create(
            b, loc, Type(), updated, buffer, b.getUnitAttr(), b.getUnitAttr());
        ++numCaches;
        // Attention reads the written prefix only: pos + S slots.
        Value len = arith::AddIOp::create(
            b, loc, posIndex, tensor::DimOp::create(b, loc, src, 2));
        SmallVector<OpFoldResult> liveSizes{b.getIndexAttr(1),
                                            b.getIndexAttr(t.getDimSize(1)),
                                            len, b.getIndexAttr(t.getDimSize(3))};
        SmallVector<OpFoldResult> zeros(4, b.getIndexAttr(0));
        Value live = tensor::ExtractSliceOp::create(b, loc, updated, zeros,
                                                    liveSizes, strides);
        map.map(src, live);
        liveKeys = tensor::ExtractSliceOp::create(
            b, loc, keys, ArrayRef<OpFoldResult>{b.getIndexAttr(0)},
            ArrayRef<OpFoldResult>{len},
            ArrayRef<OpFoldResult>{b.getIndexAttr(1)});
      }
      // The ops between the scores and the output (scale, mask, softmax).
      llvm::SetVector<Operation *> forward;
      getForwardSlice(att.scores.getOperation(), &forward);
      llvm::SetVector<Operation *> backward;
      BackwardSliceOptions opts;
      opts.filter = [&](Operation *op) { return forward.contains(op); };
      (void)getBackwardSlice(att.output.getDpsInputs()[0], &backward, opts);
      SmallVector<Operation *> region(backward.begin(), backward.end());
      if (Operation *def = att.output.getDpsInputs()[0].getDefiningOp();
          def && forward.contains(def) && !backward.contains(def))
        region.push_back(def);
      llvm::sort(region, [](Operation *a, Operation *c) {
        return a->isBeforeInBlock(c);
      });

      b.setInsertionPoint(att.output);
      for (Operation *op : kChain)
        if (FailureOr<Value> r = recreate(b, op, map); succeeded(r))
          map.map(op->getResult(0), *r);
        else
          return failure();
      FailureOr<Value> scores = recreate(b, att.scores, map);
      if (failed(scores))
        return failure();
      map.map(att.scores.getResult(0), *scores);
      for (Operation *op : region) {
        if (failed(remapMask(b, op, map, queryPositions, liveKeys)))
          return failure();
        FailureOr<Value> r = recreate(b, op, map);
        if (failed(r))
          return failure();
        map.map(op->getResult(0), *r);
      }
      for (Operation *op : vChain)
        if (FailureOr<Value> r = recreate(b, op, map); succeeded(r))
          map.map(op->getResult(0), *r);
        else
          return failure();
      FailureOr<Value> out = recreate(b, att.output, map);
      if (failed(out))
        return failure();
      Value result = *out;
      if (result.getType() != att.output.getResult(0).getType())
        result = tensor::CastOp::create(b, loc, att.output.getResult(0).getType(),
                                          result);
      att.output.getResult(0).replaceAllUsesWith(result);
    }
    f.setFunctionType(FunctionType::get(ctx, body.getArgumentTypes(),
                                        ret->getOperandTypes()));
    // Names for the runtime: the ids keep theirs, then "position" and
    // "cache.N.key"/"cache.N.value".
    auto named = [&](const Twine &name) {
      return DictionaryAttr::get(
          ctx, {NamedAttribute(StringAttr::get(ctx, "onnx.name"),
                               StringAttr::get(ctx, name))});
    };
    SmallVector<DictionaryAttr> argAttrs{f.getArgAttrDict(0), named("position")};
    for (int64_t i = 0; i < numCaches; ++i)
      argAttrs.push_back(
          named("cache." + Twine(i / 2) + (i % 2 ? ".value" : ".key")));
    f.setAllArgAttrs(argAttrs);
    // Drop what the re-created attention replaced.
    bool changed = true;
    while (changed) {
      changed = false;
      for (Operation &op : llvm::make_early_inc_range(llvm::reverse(body)))
        if (&op != ret && isOpTriviallyDead(&op)) {
          op.erase();
          changed = true;
        }
    }
    return success();
  }

  /// The causal mask: an operand of a softmax-chain op that is computed
  /// from positions (not from the scores). Its key-side input (the one
  /// indexed along the scores' last dimension) becomes the cache positions
  /// 0..M-1; the query side already holds arange(S) + pos.
  LogicalResult remapMask(OpBuilder &b, Operation *op, IRMapping &map,
                          const llvm::DenseSet<Value> &queryPositions,
                          Value keys) {
    auto consumer = dyn_cast<linalg::GenericOp>(op);
    if (!consumer)
      return success();
    auto maps = consumer.getIndexingMapsArray();
    // The consumer's key loop: the last index of a re-created rank-4 input.
    std::optional<AffineExpr> keyLoop;
    for (auto [i, in] : llvm::enumerate(consumer.getDpsInputs()))
      if (map.contains(in) && cast<RankedTensorType>(in.getType()).getRank() == 4)
        keyLoop = maps[i].getResult(3);
    for (auto [i, in] : llvm::enumerate(consumer.getDpsInputs())) {
      if (map.contains(in) || !keyLoop ||
          !llvm::is_contained(maps[i].getResults(), *keyLoop))
        continue;
      auto mask = in.getDefiningOp<linalg::GenericOp>();
      auto fail = [&]() {
        return consumer.emitError("wq-derive-kv-cache: operand #")
               << i << " runs along the key positions but is not a mask "
               << "computed from positions (arange)";
      };
      if (!mask || mask.getNumDpsInits() != 1)
        return fail();
      // The mask's loop along the keys.
      int64_t r = llvm::find(maps[i].getResults(), *keyLoop) -
                  maps[i].getResults().begin();
      AffineExpr maskKey = mask.getIndexingMapsArray().back().getResult(r);
      IRMapping local;
      int keySides = 0;
      for (auto [j, min] : llvm::enumerate(mask.getDpsInputs())) {
        if (!llvm::is_contained(mask.getIndexingMapsArray()[j].getResults(),
                                maskKey))
          continue;
        Value src = min;
        SmallVector<Operation *> reshapes;
        while (auto e = src.getDefiningOp<tensor::ExpandShapeOp>()) {
          reshapes.push_back(e);
          src = e.getSrc();
        }
        if (!queryPositions.contains(src))
          return fail();
        IRMapping keyMap;
        keyMap.map(src, keys);
        Value rebuilt = keys;
        for (Operation *e : llvm::reverse(reshapes)) {
          FailureOr<Value> r = recreate(b, e, keyMap);
          if (failed(r))
            return failure();
          keyMap.map(e->getResult(0), *r);
          rebuilt = *r;
        }
        local.map(min, rebuilt);
        ++keySides;
      }
      if (keySides != 1)
        return fail();
      FailureOr<Value> rebuilt = recreate(b, mask, local);
      if (failed(rebuilt))
        return failure();
      map.map(in, *rebuilt);
    }
    return success();
  }
};

} // namespace
