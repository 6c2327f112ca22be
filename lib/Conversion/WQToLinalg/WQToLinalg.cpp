//===- WQToLinalg.cpp - lower wq ops to linalg ------------------------------===//
// The reference CPU lowering: contraction and in-register unpacking as
// linalg.generic ops that the upstream bufferize/vectorize/LLVM path compiles.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Conversion/Passes.h"
#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"
#include "quant-mlir/Dialect/WQ/Transforms/Patterns.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace quant_mlir {
#define GEN_PASS_DEF_CONVERTWQTOLINALG
#include "quant-mlir/Conversion/Passes.h.inc"
} // namespace quant_mlir

using namespace mlir;
using namespace quant_mlir::wq;

namespace {
using utils::IteratorType;

/// Casts a float scalar to `type`; f16 <-> bf16 goes through f32.
Value castFloat(OpBuilder &b, Location loc, Value v, Type type) {
  unsigned from = v.getType().getIntOrFloatBitWidth();
  unsigned to = type.getIntOrFloatBitWidth();
  if (v.getType() == type)
    return v;
  if (from == to)
    v = arith::ExtFOp::create(b, loc, b.getF32Type(), v);
  if (from < to)
    return arith::ExtFOp::create(b, loc, type, v);
  return arith::TruncFOp::create(b, loc, type, v);
}

Value i64Const(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIntOp::create(b, loc, b.getI64Type(), v);
}

/// The word after `word` shifted into the high half of a 64-bit value, or 0
/// past the end of a stream of `numWords` words: 3-bit fields straddle words.
Value nextWordHigh(OpBuilder &b, Location loc, Value word, int64_t numWords,
                   function_ref<Value(Value)> load) {
  Value next = arith::AddIOp::create(b, loc, word, i64Const(b, loc, 1));
  Value last = i64Const(b, loc, numWords - 1);
  Value inRange =
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ule, next, last);
  Value clamped = arith::MinUIOp::create(b, loc, next, last);
  Value hi = arith::SelectOp::create(b, loc, inRange, load(clamped),
                                     i64Const(b, loc, 0));
  return arith::ShLIOp::create(b, loc, hi, i64Const(b, loc, 32));
}

/// Reads field `field` (of `bits` bits) from a little-endian bit stream of
/// int32 words laid out along dimension `streamDim` of the 2-D tensor
/// `words`, at index `fixed` of the other dimension. A 3-bit field can
/// straddle two words, so the word pair is read as one 64-bit value.
Value extractField(OpBuilder &b, Location loc, Value words, unsigned streamDim,
                   Value fixed, Value field, unsigned bits) {
  auto type = cast<RankedTensorType>(words.getType());
  int64_t numWords = type.getDimSize(streamDim);
  Value bitPos =
      arith::MulIOp::create(b, loc, field, i64Const(b, loc, bits));
  Value word = arith::DivUIOp::create(b, loc, bitPos, i64Const(b, loc, 32));
  Value offset = arith::RemUIOp::create(b, loc, bitPos, i64Const(b, loc, 32));
  auto load = [&](Value wordIdx) {
    Value idx = arith::IndexCastOp::create(b, loc, b.getIndexType(), wordIdx);
    SmallVector<Value, 2> indices =
        streamDim == 0 ? SmallVector<Value, 2>{idx, fixed}
                       : SmallVector<Value, 2>{fixed, idx};
    Value w = tensor::ExtractOp::create(b, loc, words, indices);
    return arith::ExtUIOp::create(b, loc, b.getI64Type(), w).getResult();
  };
  Value value = load(word);
  if (32 % bits != 0) {
    Value hi = nextWordHigh(b, loc, word, numWords, load);
    value = arith::OrIOp::create(b, loc, value, hi);
  }
  Value shifted = arith::ShRUIOp::create(b, loc, value, offset);
  return arith::AndIOp::create(b, loc, shifted,
                               i64Const(b, loc, (int64_t(1) << bits) - 1));
}

/// AutoAWQ packs 8 nibbles of columns 0,2,4,6,1,3,5,7 into one word; column
/// c of a pack therefore sits at nibble (c % 2) * 4 + c / 2.
Value extractAWQ(OpBuilder &b, Location loc, Value words, Value row,
                 Value col) {
  Value word = arith::DivUIOp::create(b, loc, col, i64Const(b, loc, 8));
  Value c = arith::RemUIOp::create(b, loc, col, i64Const(b, loc, 8));
  Value nibble = arith::AddIOp::create(
      b, loc,
      arith::MulIOp::create(
          b, loc, arith::RemUIOp::create(b, loc, c, i64Const(b, loc, 2)),
          i64Const(b, loc, 4)),
      arith::DivUIOp::create(b, loc, c, i64Const(b, loc, 2)));
  Value idx = arith::IndexCastOp::create(b, loc, b.getIndexType(), word);
  Value w = tensor::ExtractOp::create(b, loc, words, ValueRange{row, idx});
  Value w64 = arith::ExtUIOp::create(b, loc, b.getI64Type(), w);
  Value shift = arith::MulIOp::create(b, loc, nibble, i64Const(b, loc, 4));
  return arith::AndIOp::create(
      b, loc, arith::ShRUIOp::create(b, loc, w64, shift), i64Const(b, loc, 15));
}

/// gpu_v4 (docs/codegen.md): gptq word w of column n sits at
/// [w / 4, 4 * n + w % 4]; for 2/4/8 bits code c of a word is in field
/// (c % 2) * P + c / 2 with P = 16 / bits; 3-bit words keep the plain stream.
Value extractGPUV4(OpBuilder &b, Location loc, Value words, Value nIdx,
                   Value k, unsigned bits) {
  auto type = cast<RankedTensorType>(words.getType());
  int64_t numWords = type.getDimSize(0) * 4;
  Value n = arith::IndexCastOp::create(b, loc, b.getI64Type(), nIdx);
  auto load = [&](Value w) {
    Value row = arith::DivUIOp::create(b, loc, w, i64Const(b, loc, 4));
    Value col = arith::AddIOp::create(
        b, loc, arith::MulIOp::create(b, loc, n, i64Const(b, loc, 4)),
        arith::RemUIOp::create(b, loc, w, i64Const(b, loc, 4)));
    Value v = tensor::ExtractOp::create(
        b, loc, words,
        ValueRange{arith::IndexCastOp::create(b, loc, b.getIndexType(), row),
                   arith::IndexCastOp::create(b, loc, b.getIndexType(), col)});
    return arith::ExtUIOp::create(b, loc, b.getI64Type(), v).getResult();
  };
  Value shift, value;
  if (32 % bits != 0) {
    Value bitPos = arith::MulIOp::create(b, loc, k, i64Const(b, loc, bits));
    Value word = arith::DivUIOp::create(b, loc, bitPos, i64Const(b, loc, 32));
    shift = arith::RemUIOp::create(b, loc, bitPos, i64Const(b, loc, 32));
    Value hi = nextWordHigh(b, loc, word, numWords, load);
    value = arith::OrIOp::create(b, loc, load(word), hi);
  } else {
    int64_t perWord = 32 / bits;
    Value word = arith::DivUIOp::create(b, loc, k, i64Const(b, loc, perWord));
    Value c = arith::RemUIOp::create(b, loc, k, i64Const(b, loc, perWord));
    Value field = arith::AddIOp::create(
        b, loc,
        arith::MulIOp::create(
            b, loc, arith::RemUIOp::create(b, loc, c, i64Const(b, loc, 2)),
            i64Const(b, loc, perWord / 2)),
        arith::DivUIOp::create(b, loc, c, i64Const(b, loc, 2)));
    shift = arith::MulIOp::create(b, loc, field, i64Const(b, loc, bits));
    value = load(word);
  }
  return arith::AndIOp::create(b, loc,
                               arith::ShRUIOp::create(b, loc, value, shift),
                               i64Const(b, loc, (int64_t(1) << bits) - 1));
}

struct DequantizeToLinalg : OpRewritePattern<DequantizeOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(DequantizeOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType type = op.getType();
    Type elemType = type.getElementType();
    SchemeAttr scheme = op.getScheme();
    unsigned bits = scheme.getBits();
    bool awq = op.getPacking() == Packing::awq;
    Value init = tensor::EmptyOp::create(rewriter, loc, type.getShape(),
                                         elemType);
    auto map = rewriter.getMultiDimIdentityMap(2);
    auto body = [&](OpBuilder &b, Location loc, ValueRange) {
      Value nIdx = linalg::IndexOp::create(b, loc, 0);
      Value kIdx = linalg::IndexOp::create(b, loc, 1);
      Value n = arith::IndexCastOp::create(b, loc, b.getI64Type(), nIdx);
      Value k = arith::IndexCastOp::create(b, loc, b.getI64Type(), kIdx);
      Value q = awq ? extractAWQ(b, loc, op.getCodes(), kIdx, n)
                : op.getPacking() == Packing::gpu_v4
                    ? extractGPUV4(b, loc, op.getCodes(), nIdx, k, bits)
                    : extractField(b, loc, op.getCodes(), 0, nIdx, k, bits);
      Value group;
      if (scheme.getActOrder()) {
        Value g = tensor::ExtractOp::create(b, loc, op.getGIdx(),
                                            ValueRange{kIdx});
        group = arith::IndexCastOp::create(b, loc, b.getIndexType(), g);
      } else if (scheme.isPerChannel()) {
        group = arith::ConstantIndexOp::create(b, loc, 0);
      } else {
        group = arith::DivUIOp::create(
            b, loc, kIdx,
            arith::ConstantIndexOp::create(b, loc, scheme.getGroupSize()));
      }
      Value zero;
      if (!op.getZeros())
        zero = i64Const(b, loc, int64_t(1) << (bits - 1));
      else if (awq)
        zero = extractAWQ(b, loc, op.getZeros(), group, n);
      else
        zero = extractField(b, loc, op.getZeros(), 1, group, n, bits);
      Value scale = tensor::ExtractOp::create(b, loc, op.getScales(),
                                              ValueRange{group, nIdx});
      Value diff = arith::SubIOp::create(b, loc, q, zero);
      Value diffF = arith::SIToFPOp::create(b, loc, elemType, diff);
      Value w = arith::MulFOp::create(b, loc, diffF, scale);
      linalg::YieldOp::create(b, loc, w);
    };
    auto generic = linalg::GenericOp::create(
        rewriter, loc, type, ValueRange{}, ValueRange{init},
        ArrayRef<AffineMap>{map},
        ArrayRef<IteratorType>{IteratorType::parallel, IteratorType::parallel},
        body);
    rewriter.replaceOp(op, generic.getResults());
    return success();
  }
};

struct LinearToLinalg : OpRewritePattern<LinearOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(LinearOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    RankedTensorType inputType = op.getInput().getType();
    RankedTensorType resultType = op.getType();
    int64_t rank = inputType.getRank();
    Type accType = rewriter.getF32Type();
    MLIRContext *ctx = getContext();

    SmallVector<Value> dynSizes;
    for (int64_t i = 0; i < rank - 1; ++i)
      if (resultType.isDynamicDim(i))
        dynSizes.push_back(tensor::DimOp::create(rewriter, loc, op.getInput(), i));
    Value empty = tensor::EmptyOp::create(rewriter, loc, resultType.getShape(),
                                          accType, dynSizes);
    Value zero = arith::ConstantOp::create(rewriter, loc,
                                           rewriter.getF32FloatAttr(0.0f));
    Value acc =
        linalg::FillOp::create(rewriter, loc, zero, empty).getResult(0);

    // Loops (d_0 .. d_{rank-2}, n, k): y[d.., n] += x[d.., k] * w[n, k].
    unsigned numLoops = rank + 1;
    SmallVector<AffineExpr> batch;
    for (int64_t i = 0; i < rank - 1; ++i)
      batch.push_back(getAffineDimExpr(i, ctx));
    AffineExpr n = getAffineDimExpr(rank - 1, ctx);
    AffineExpr k = getAffineDimExpr(rank, ctx);
    auto withLast = [&](AffineExpr e) {
      SmallVector<AffineExpr> exprs(batch);
      exprs.push_back(e);
      return AffineMap::get(numLoops, 0, exprs, ctx);
    };
    SmallVector<AffineMap> maps = {
        withLast(k), AffineMap::get(numLoops, 0, {n, k}, ctx), withLast(n)};
    SmallVector<IteratorType> iters(rank, IteratorType::parallel);
    iters.push_back(IteratorType::reduction);
    auto matmul = linalg::GenericOp::create(
        rewriter, loc, acc.getType(), ValueRange{op.getInput(), op.getWeight()},
        ValueRange{acc}, maps, iters,
        [&](OpBuilder &b, Location loc, ValueRange args) {
          Value x = castFloat(b, loc, args[0], accType);
          Value w = castFloat(b, loc, args[1], accType);
          Value prod = arith::MulFOp::create(b, loc, x, w);
          linalg::YieldOp::create(b, loc,
                                  arith::AddFOp::create(b, loc, args[2], prod)
                                      .getResult());
        });
    Value result = matmul.getResult(0);

    Type elemType = resultType.getElementType();
    if (!op.getBias() && elemType == accType) {
      rewriter.replaceOp(op, result);
      return success();
    }
    // Epilogue: bias add and the cast back to the activation type.
    Value out = tensor::EmptyOp::create(rewriter, loc, resultType.getShape(),
                                        elemType, dynSizes);
    auto ident = rewriter.getMultiDimIdentityMap(rank);
    SmallVector<Value> inputs = {result};
    SmallVector<AffineMap> epiMaps = {ident};
    if (op.getBias()) {
      inputs.push_back(op.getBias());
      epiMaps.push_back(
          AffineMap::get(rank, 0, {getAffineDimExpr(rank - 1, ctx)}, ctx));
    }
    epiMaps.push_back(ident);
    auto epilogue = linalg::GenericOp::create(
        rewriter, loc, resultType, inputs, ValueRange{out}, epiMaps,
        SmallVector<IteratorType>(rank, IteratorType::parallel),
        [&](OpBuilder &b, Location loc, ValueRange args) {
          Value v = args[0];
          if (op.getBias())
            v = arith::AddFOp::create(b, loc, v,
                                      castFloat(b, loc, args[1], accType));
          linalg::YieldOp::create(b, loc, castFloat(b, loc, v, elemType));
        });
    rewriter.replaceOp(op, epilogue.getResults());
    return success();
  }
};

struct ConvertWQToLinalgPass
    : public quant_mlir::impl::ConvertWQToLinalgBase<ConvertWQToLinalgPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateExpandQuantizedLinearPatterns(patterns);
    patterns.add<DequantizeToLinalg, LinearToLinalg>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
    // Anything left (e.g. a quantized layer whose scales and activations
    // differ in type) is an error, not silently kept.
    WalkResult left = getOperation().walk([](Operation *op) {
      if (isa<LinearOp, DequantizeOp, QuantizedLinearOp>(op)) {
        op->emitError("could not be lowered to linalg");
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (left.wasInterrupted())
      signalPassFailure();
  }
};
} // namespace
