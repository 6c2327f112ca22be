//===- Kernels.cpp - fused dequant GEMV / GEMM kernel generators ------------===//
// Builds gpu.func kernels from upstream gpu/nvgpu/vector/memref/arith/scf ops
// for gpu_v4 codes (docs/codegen.md has the thread mappings).
//
// Dequantization without conversions: two codes of a 32-bit word are masked
// into the mantissas of two f16 lanes whose exponent bits are 0x6400, which
// reads as the f16 pair (1024 + q0, 1024 + q1); subtracting (1024 + zero)
// and multiplying by the scale in f16x2 gives exactly the reference's
// f16(q - zero) * scale.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Conversion/WQToGPU/WQToGPU.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/ADT/StringExtras.h"

using namespace mlir;
using namespace quant_mlir::wqgpu;

namespace {
constexpr int64_t kThreads = 128;
/// GEMV: a block covers kGemvCols columns; its 128 threads split K 32 ways.
constexpr int64_t kGemvCols = 4;
constexpr int64_t kGemvSlices = kThreads / kGemvCols;
/// GEMM: a block covers 128 columns (one per thread when dequantizing).
constexpr int64_t kGemmCols = 128;
constexpr int64_t kSmemPad = 8; // f16 elements of padding per smem row

/// Rows of gpu_v4 words read per chunk (3-bit: 3 rows = 384 bits = 128 codes,
/// so no code straddles two chunks) and codes per chunk.
int64_t chunkRows(unsigned bits) { return bits == 3 ? 3 : 1; }
int64_t chunkCodes(unsigned bits) { return 128 * chunkRows(bits) / bits; }

struct KB {
  OpBuilder &b;
  Location loc;

  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value i32(int64_t v) {
    return arith::ConstantIntOp::create(b, loc, b.getI32Type(), v);
  }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, loc, x, y); }
  Value mul(Value x, Value y) { return arith::MulIOp::create(b, loc, x, y); }
  Value divu(Value x, Value y) { return arith::DivUIOp::create(b, loc, x, y); }
  Value remu(Value x, Value y) { return arith::RemUIOp::create(b, loc, x, y); }
  Value shr(Value x, int64_t s) {
    return s == 0 ? x : arith::ShRUIOp::create(b, loc, x, i32(s)).getResult();
  }
  Value shl(Value x, int64_t s) {
    return s == 0 ? x : arith::ShLIOp::create(b, loc, x, i32(s)).getResult();
  }
  Value andi(Value x, int64_t m) {
    return arith::AndIOp::create(b, loc, x, i32(m));
  }
  Value ori(Value x, Value y) { return arith::OrIOp::create(b, loc, x, y); }
  VectorType vec(int64_t n, Type t) { return VectorType::get({n}, t); }
  Value f16Splat(double v) {
    auto type = vec(2, b.getF16Type());
    return arith::ConstantOp::create(
        b, loc, type,
        DenseElementsAttr::get(type, b.getFloatAttr(b.getF16Type(), v)));
  }
  Value f32Splat(int64_t n, double v) {
    auto type = vec(n, b.getF32Type());
    return arith::ConstantOp::create(
        b, loc, type,
        DenseElementsAttr::get(type, b.getFloatAttr(b.getF32Type(), v)));
  }
  Value splat(Value scalar, int64_t n) {
    return vector::BroadcastOp::create(b, loc, vec(n, scalar.getType()),
                                       scalar);
  }
  Value extract(Value v, int64_t i) {
    return vector::ExtractOp::create(b, loc, v, ArrayRef<int64_t>{i});
  }
  /// An i32 holding two f16 lanes -> vector<2xf16>.
  Value asHalf2(Value word) {
    Value v1 = splat(word, 1);
    return vector::BitCastOp::create(b, loc, vec(2, b.getF16Type()), v1);
  }
  Value load(Value mem, ValueRange indices) {
    return memref::LoadOp::create(b, loc, mem, indices);
  }
  Value vload(Value mem, ValueRange indices, int64_t n, Type t) {
    return vector::LoadOp::create(b, loc, vec(n, t), mem, indices,
                                  /*nontemporal=*/false,
                                  llvm::MaybeAlign(n * t.getIntOrFloatBitWidth() / 8));
  }
  void vstore(Value v, Value mem, ValueRange indices) {
    auto type = cast<VectorType>(v.getType());
    vector::StoreOp::create(
        b, loc, v, mem, indices, /*nontemporal=*/false,
        llvm::MaybeAlign(type.getNumElements() *
                         type.getElementTypeBitWidth() / 8));
  }
};

/// Code `j` (0 <= j < chunkCodes) of a 3-bit chunk of 12 words (plain stream).
Value extract3(KB &kb, ArrayRef<Value> words, int64_t j) {
  int64_t pos = j * 3, w = pos / 32, off = pos % 32;
  Value v = kb.shr(words[w], off);
  if (off + 3 > 32)
    v = kb.ori(v, kb.shl(words[w + 1], 32 - off));
  return kb.andi(v, 7);
}

/// The biased f16 pairs (1024 + q[2p], 1024 + q[2p+1]) of one chunk, as
/// vector<2xf16>, p = 0 .. chunkCodes/2 - 1.
SmallVector<Value> biasedPairs(KB &kb, ArrayRef<Value> words, unsigned bits) {
  SmallVector<Value> pairs;
  Value exponent = kb.i32(0x64006400);
  if (bits == 3) {
    for (int64_t p = 0; p < chunkCodes(bits) / 2; ++p) {
      Value q0 = extract3(kb, words, 2 * p);
      Value q1 = extract3(kb, words, 2 * p + 1);
      Value w = kb.ori(kb.ori(q0, kb.shl(q1, 16)), exponent);
      pairs.push_back(kb.asHalf2(w));
    }
    return pairs;
  }
  int64_t mask = (int64_t(1) << bits) - 1;
  int64_t pairMask = mask | (mask << 16);
  for (Value word : words)
    for (int64_t i = 0; i < 16 / int64_t(bits); ++i) {
      // Fields i and i + 16/bits hold codes 2i and 2i+1 (gpu_v4 interleave).
      Value w = kb.ori(kb.andi(kb.shr(word, i * bits), pairMask), exponent);
      pairs.push_back(kb.asHalf2(w));
    }
  return pairs;
}

/// Loads the chunk's words of column `col`: rows chunk*L .. chunk*L+L-1.
SmallVector<Value> loadChunk(KB &kb, Value codes, Value chunk, Value col,
                             unsigned bits) {
  SmallVector<Value> words;
  int64_t rows = chunkRows(bits);
  for (int64_t r = 0; r < rows; ++r) {
    Value row = kb.add(kb.mul(chunk, kb.idx(rows)), kb.idx(r));
    Value v = kb.vload(codes, {row, kb.mul(col, kb.idx(4))}, 4,
                       kb.b.getI32Type());
    for (int64_t i = 0; i < 4; ++i)
      words.push_back(kb.extract(v, i));
  }
  return words;
}

/// Per sub-group of the chunk: (scale, 1024 + zero) splatted to f16x2.
/// A chunk lies in one group unless the group is shorter than the chunk.
void groupParams(KB &kb, const KernelConfig &c, Value scales, Value zeros,
                 Value chunk, Value col, SmallVectorImpl<Value> &s2,
                 SmallVectorImpl<Value> &z2) {
  int64_t codes = chunkCodes(c.bits);
  int64_t subs = c.groupSize >= codes ? 1 : codes / c.groupSize;
  Value first = kb.divu(kb.mul(chunk, kb.idx(codes)), kb.idx(c.groupSize));
  for (int64_t s = 0; s < subs; ++s) {
    Value g = kb.add(first, kb.idx(s));
    s2.push_back(kb.splat(kb.load(scales, {g, col}), 2));
    if (!c.zeros) {
      z2.push_back(kb.f16Splat(1024.0 + double(1 << (c.bits - 1))));
      continue;
    }
    // zeros: gptq stream along N; a 3-bit field may straddle two words.
    auto zt = cast<MemRefType>(zeros.getType());
    Value bitPos = kb.mul(col, kb.idx(c.bits));
    Value w = kb.divu(bitPos, kb.idx(32));
    Value off = arith::IndexCastOp::create(kb.b, kb.loc, kb.b.getI64Type(),
                                           kb.remu(bitPos, kb.idx(32)));
    Value next = arith::MinUIOp::create(kb.b, kb.loc, kb.add(w, kb.idx(1)),
                                        kb.idx(zt.getDimSize(1) - 1));
    auto wide = [&](Value i) {
      return arith::ExtUIOp::create(kb.b, kb.loc, kb.b.getI64Type(),
                                    kb.load(zeros, {g, i}))
          .getResult();
    };
    Value hi = arith::ShLIOp::create(
        kb.b, kb.loc, wide(next),
        arith::ConstantIntOp::create(kb.b, kb.loc, kb.b.getI64Type(), 32));
    Value v = arith::OrIOp::create(kb.b, kb.loc, wide(w), hi);
    v = arith::ShRUIOp::create(kb.b, kb.loc, v, off);
    Value z = arith::TruncIOp::create(kb.b, kb.loc, kb.b.getI32Type(), v);
    z = kb.ori(kb.andi(z, (1 << c.bits) - 1), kb.i32(0x6400));
    Value z16 = arith::TruncIOp::create(kb.b, kb.loc, kb.b.getI16Type(), z);
    Value zf = arith::BitcastOp::create(kb.b, kb.loc, kb.b.getF16Type(), z16);
    z2.push_back(kb.splat(zf, 2));
  }
}

/// Dequantized f16 pairs of one chunk of column `col`.
SmallVector<Value> dequantChunk(KB &kb, const KernelConfig &c, Value codes,
                                Value scales, Value zeros, Value chunk,
                                Value col) {
  SmallVector<Value> words = loadChunk(kb, codes, chunk, col, c.bits);
  SmallVector<Value> s2, z2;
  groupParams(kb, c, scales, zeros, chunk, col, s2, z2);
  SmallVector<Value> pairs = biasedPairs(kb, words, c.bits);
  int64_t perSub = c.groupSize >= chunkCodes(c.bits)
                       ? int64_t(pairs.size())
                       : c.groupSize / 2;
  for (size_t p = 0; p < pairs.size(); ++p) {
    int64_t s = int64_t(p) / perSub;
    Value diff = arith::SubFOp::create(kb.b, kb.loc, pairs[p], z2[s]);
    pairs[p] = arith::MulFOp::create(kb.b, kb.loc, diff, s2[s]);
  }
  return pairs;
}

/// Shared memory as 16-byte aligned memref.globals of the gpu.module
/// (workgroup attributions lower to 2-byte aligned .shared arrays, too
/// little for ldmatrix rows and 128-bit st.shared).
SmallVector<Value> sharedBuffers(OpBuilder &moduleBuilder, OpBuilder &b,
                                 Location loc, StringRef kernel,
                                 ArrayRef<MemRefType> types) {
  SmallVector<Value> values;
  for (auto [i, type] : llvm::enumerate(types)) {
    std::string name = (kernel + "_smem" + Twine(i)).str();
    memref::GlobalOp::create(moduleBuilder, loc,
                             moduleBuilder.getStringAttr(name),
                             moduleBuilder.getStringAttr("private"),
                             TypeAttr::get(type), moduleBuilder.getUnitAttr(),
                             /*constant=*/UnitAttr(),
                             moduleBuilder.getI64IntegerAttr(16));
    values.push_back(memref::GetGlobalOp::create(
        b, loc, type, FlatSymbolRefAttr::get(b.getContext(), name)));
  }
  return values;
}

gpu::GPUFuncOp createKernelFunc(OpBuilder &builder, Location loc,
                                const KernelConfig &c,
                                ArrayRef<Type> workgroup) {
  MLIRContext *ctx = builder.getContext();
  Type f16 = builder.getF16Type(), i32 = builder.getI32Type();
  int64_t groups = c.k / c.groupSize;
  SmallVector<Type> args = {
      MemRefType::get({c.m, c.k}, f16),
      MemRefType::get({c.k * c.bits / 128, 4 * c.n}, i32),
      MemRefType::get({groups, c.n}, f16)};
  if (c.zeros)
    args.push_back(MemRefType::get({groups, c.n * c.bits / 32}, i32));
  if (c.bias)
    args.push_back(MemRefType::get({c.n}, f16));
  args.push_back(MemRefType::get({c.m, c.n}, f16));
  auto fn = gpu::GPUFuncOp::create(builder, loc, c.name(),
                                   FunctionType::get(ctx, args, {}),
                                   TypeRange(workgroup), TypeRange());
  fn->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), builder.getUnitAttr());
  fn.setKnownBlockSizeAttr(
      builder.getDenseI32ArrayAttr({int32_t(c.blockX()), 1, 1}));
  return fn;
}

struct Args {
  Value x, codes, scales, zeros, bias, y;
};
Args kernelArgs(gpu::GPUFuncOp fn, const KernelConfig &c) {
  Args a;
  unsigned i = 0;
  a.x = fn.getArgument(i++);
  a.codes = fn.getArgument(i++);
  a.scales = fn.getArgument(i++);
  if (c.zeros)
    a.zeros = fn.getArgument(i++);
  if (c.bias)
    a.bias = fn.getArgument(i++);
  a.y = fn.getArgument(i++);
  return a;
}

Value withBias(KB &kb, const Args &a, Value sum, Value col) {
  if (!a.bias)
    return sum;
  Value bias = arith::ExtFOp::create(kb.b, kb.loc, kb.b.getF32Type(),
                                     kb.load(a.bias, {col}));
  return arith::AddFOp::create(kb.b, kb.loc, sum, bias);
}

//===----------------------------------------------------------------------===//
// GEMV: block = 4 columns x 32 K-slices. Lane l of warp w works on column
// 4*block + l % 4 and K-chunks (w * 8 + l / 4) + 32 i: each K-chunk row of a
// warp is 4 adjacent columns x 16 bytes, so a warp issues 8 fully used 64-byte
// segments per 128-bit load. Partial sums are reduced across the 8 K-lanes
// of a warp with gpu.shuffle xor 4/8/16, then across the 4 warps in shared
// memory.
//===----------------------------------------------------------------------===//
gpu::GPUFuncOp buildGemv(OpBuilder &builder, Location loc, const KernelConfig &c) {
  Type f32 = builder.getF32Type(), f16 = builder.getF16Type();
  auto wg = gpu::AddressSpaceAttr::get(builder.getContext(),
                                       gpu::AddressSpace::Workgroup);
  auto redType = MemRefType::get({kThreads / 32, c.m, kGemvCols}, f32,
                                 MemRefLayoutAttrInterface(), wg);
  gpu::GPUFuncOp fn = createKernelFunc(builder, loc, c, {});
  Args a = kernelArgs(fn, c);
  OpBuilder b = OpBuilder::atBlockBegin(&fn.getBody().front());
  Value red = sharedBuffers(builder, b, loc, c.name(), {redType})[0];

  KB kb{b, loc};
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value bid = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  Value lane = kb.remu(tid, kb.idx(32));
  Value warp = kb.divu(tid, kb.idx(32));
  Value nl = kb.remu(lane, kb.idx(kGemvCols));
  Value kl = kb.divu(lane, kb.idx(kGemvCols));
  Value slice = kb.add(kb.mul(warp, kb.idx(32 / kGemvCols)), kl);
  Value col = kb.add(kb.mul(bid, kb.idx(kGemvCols)), nl);
  int64_t codes = chunkCodes(c.bits), chunks = c.k / codes;

  SmallVector<Value> init(c.m, kb.f32Splat(2, 0.0));
  auto loop = scf::ForOp::create(
      b, loc, slice, kb.idx(chunks), kb.idx(kGemvSlices), init,
      [&](OpBuilder &lb, Location l, Value chunk, ValueRange acc) {
        KB ib{lb, l};
        SmallVector<Value> w = dequantChunk(ib, c, a.codes, a.scales, a.zeros,
                                            chunk, col);
        Value k0 = ib.mul(chunk, ib.idx(codes));
        SmallVector<Value> next;
        for (int64_t m = 0; m < c.m; ++m) {
          SmallVector<Value> x8;
          for (int64_t j = 0; j < codes / 8; ++j)
            x8.push_back(ib.vload(a.x, {ib.idx(m), ib.add(k0, ib.idx(8 * j))},
                                  8, f16));
          Value sum = acc[m];
          Value part;
          for (auto [p, wp] : llvm::enumerate(w)) {
            int64_t e = 2 * int64_t(p);
            Value x2 = vector::ShuffleOp::create(
                lb, l, x8[e / 8], x8[e / 8],
                ArrayRef<int64_t>{e % 8, e % 8 + 1});
            if (c.f16Partials) {
              if (p % 16 == 0)
                part = ib.f16Splat(0.0);
              part = vector::FMAOp::create(lb, l, x2, wp, part);
              if (p % 16 == 15 || p + 1 == w.size())
                sum = arith::AddFOp::create(
                    lb, l, sum,
                    arith::ExtFOp::create(lb, l, ib.vec(2, f32), part));
            } else {
              Value xf = arith::ExtFOp::create(lb, l, ib.vec(2, f32), x2);
              Value wf = arith::ExtFOp::create(lb, l, ib.vec(2, f32), wp);
              sum = vector::FMAOp::create(lb, l, xf, wf, sum);
            }
          }
          next.push_back(sum);
        }
        scf::YieldOp::create(lb, l, next);
      });

  // Reduce: the two f32 lanes, the 8 K-lanes of a warp, then the 4 warps.
  Value isLead = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, kl,
                                       kb.idx(0));
  for (int64_t m = 0; m < c.m; ++m) {
    Value v = loop.getResult(m);
    Value s = arith::AddFOp::create(b, loc, kb.extract(v, 0), kb.extract(v, 1));
    for (int32_t off : {4, 8, 16})
      s = arith::AddFOp::create(
          b, loc, s,
          gpu::ShuffleOp::create(b, loc, s, off, 32, gpu::ShuffleMode::XOR)
              .getShuffleResult());
    Value mIdx = kb.idx(m);
    auto ifOp = scf::IfOp::create(b, loc, isLead, /*withElse=*/false);
    OpBuilder tb = ifOp.getThenBodyBuilder();
    memref::StoreOp::create(tb, loc, s, red, ValueRange{warp, mIdx, nl});
  }
  gpu::BarrierOp::create(b, loc);
  Value writer = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, tid,
                                       kb.idx(c.m * kGemvCols));
  auto ifOp = scf::IfOp::create(b, loc, writer, /*withElse=*/false);
  {
    OpBuilder tb = ifOp.getThenBodyBuilder();
    KB t{tb, loc};
    Value m = t.divu(tid, t.idx(kGemvCols));
    Value cl = t.remu(tid, t.idx(kGemvCols));
    Value outCol = t.add(t.mul(bid, t.idx(kGemvCols)), cl);
    Value s = t.load(red, {t.idx(0), m, cl});
    for (int64_t w = 1; w < kThreads / 32; ++w)
      s = arith::AddFOp::create(tb, loc, s, t.load(red, {t.idx(w), m, cl}));
    s = withBias(t, a, s, outCol);
    Value h = arith::TruncFOp::create(tb, loc, f16, s);
    memref::StoreOp::create(tb, loc, h, a.y, ValueRange{m, outCol});
  }
  gpu::ReturnOp::create(b, loc);
  return fn;
}

//===----------------------------------------------------------------------===//
// GEMM: block tile blockM x 128 columns, 4 warps; K-tile = one chunk.
// Per K-tile: the block copies x[blockM, BK] into shared memory (16-byte
// vectors), thread t dequantizes column t's chunk (128-bit loads) into the
// [128][BK] f16 tile (n-major = the "col" B operand of mma.sync), barrier;
// warp w then multiplies the blockM rows by its 32 columns with
// nvgpu.ldmatrix (x4 for A, x2 for B) and nvgpu.mma.sync m16n8k16 (two
// m16n8k8 on sm_75) into f32 fragments.
//===----------------------------------------------------------------------===//
gpu::GPUFuncOp buildGemm(OpBuilder &builder, Location loc, const KernelConfig &c) {
  Type f16 = builder.getF16Type(), f32 = builder.getF32Type();
  int64_t bk = chunkCodes(c.bits), bm = c.blockM;
  auto wg = gpu::AddressSpaceAttr::get(builder.getContext(),
                                       gpu::AddressSpace::Workgroup);
  auto aType = MemRefType::get({bm, bk + kSmemPad}, f16,
                               MemRefLayoutAttrInterface(), wg);
  auto bType = MemRefType::get({kGemmCols, bk + kSmemPad}, f16,
                               MemRefLayoutAttrInterface(), wg);
  gpu::GPUFuncOp fn = createKernelFunc(builder, loc, c, {});
  Args a = kernelArgs(fn, c);
  OpBuilder b = OpBuilder::atBlockBegin(&fn.getBody().front());
  SmallVector<Value> smem =
      sharedBuffers(builder, b, loc, c.name(), {aType, bType});
  Value sA = smem[0], sB = smem[1];

  KB kb{b, loc};
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value bx = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  Value by = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  Value lane = kb.remu(tid, kb.idx(32));
  Value warp = kb.divu(tid, kb.idx(32));
  Value n0 = kb.mul(bx, kb.idx(kGemmCols));
  Value m0 = kb.mul(by, kb.idx(bm));
  int64_t mTiles = bm / 16, nTiles = kGemmCols / 4 / 8;
  int64_t chunks = c.k / bk;
  bool k16 = c.sm >= 80;

  auto accType = VectorType::get({2, 2}, f32);
  Value zeroAcc = arith::ConstantOp::create(
      b, loc, accType,
      DenseElementsAttr::get(accType, b.getFloatAttr(f32, 0.0)));
  SmallVector<Value> init(mTiles * nTiles, zeroAcc);
  auto loop = scf::ForOp::create(
      b, loc, kb.idx(0), kb.idx(chunks), kb.idx(1), init,
      [&](OpBuilder &lb, Location l, Value chunk, ValueRange acc) {
        KB ib{lb, l};
        Value k0 = ib.mul(chunk, ib.idx(bk));
        // x tile -> shared memory, 8 halves per thread and step.
        int64_t vecsPerRow = bk / 8;
        auto copy = scf::ForOp::create(lb, l, tid, ib.idx(bm * vecsPerRow),
                                       ib.idx(kThreads));
        {
          OpBuilder cb = OpBuilder::atBlockBegin(copy.getBody());
          KB cc{cb, l};
          Value v = copy.getInductionVar();
          Value row = cc.divu(v, cc.idx(vecsPerRow));
          Value c8 = cc.mul(cc.remu(v, cc.idx(vecsPerRow)), cc.idx(8));
          Value x = cc.vload(a.x, {cc.add(m0, row), cc.add(k0, c8)}, 8, f16);
          cc.vstore(x, sA, {row, c8});
        }
        // Dequantize column n0 + tid of this K-chunk -> sB[tid, :].
        SmallVector<Value> w = dequantChunk(ib, c, a.codes, a.scales, a.zeros,
                                            chunk, ib.add(n0, tid));
        for (size_t j = 0; j + 3 < w.size(); j += 4) {
          Value lo = vector::ShuffleOp::create(lb, l, w[j], w[j + 1],
                                               ArrayRef<int64_t>{0, 1, 2, 3});
          Value hi = vector::ShuffleOp::create(
              lb, l, w[j + 2], w[j + 3], ArrayRef<int64_t>{0, 1, 2, 3});
          Value v8 = vector::ShuffleOp::create(
              lb, l, lo, hi, ArrayRef<int64_t>{0, 1, 2, 3, 4, 5, 6, 7});
          ib.vstore(v8, sB, {tid, ib.idx(2 * int64_t(j))});
        }
        gpu::BarrierOp::create(lb, l);

        SmallVector<Value> next(acc.begin(), acc.end());
        auto aFragType = VectorType::get({4, 2}, f16);
        auto bFragType = VectorType::get({2, 2}, f16);
        for (int64_t ks = 0; ks < bk / 16; ++ks) {
          SmallVector<Value> aFrag, bFrag;
          for (int64_t mt = 0; mt < mTiles; ++mt) {
            // Lanes 0-15 address rows 0-15 at k 0, lanes 16-31 at k 8.
            Value row = ib.add(ib.idx(mt * 16), ib.remu(lane, ib.idx(16)));
            Value kc = ib.add(ib.idx(ks * 16),
                              ib.mul(ib.divu(lane, ib.idx(16)), ib.idx(8)));
            aFrag.push_back(nvgpu::LdMatrixOp::create(
                lb, l, aFragType, sA, ValueRange{row, kc}, false, 4));
          }
          for (int64_t nt = 0; nt < nTiles; ++nt) {
            // Lanes 0-7 address n rows at k 0, lanes 8-15 at k 8.
            Value row = ib.add(ib.add(ib.mul(warp, ib.idx(32)), ib.idx(nt * 8)),
                               ib.remu(lane, ib.idx(8)));
            Value kc = ib.add(
                ib.idx(ks * 16),
                ib.mul(ib.remu(ib.divu(lane, ib.idx(8)), ib.idx(2)),
                       ib.idx(8)));
            bFrag.push_back(nvgpu::LdMatrixOp::create(
                lb, l, bFragType, sB, ValueRange{row, kc}, false, 2));
          }
          for (int64_t mt = 0; mt < mTiles; ++mt)
            for (int64_t nt = 0; nt < nTiles; ++nt) {
              Value &d = next[mt * nTiles + nt];
              if (k16) {
                d = nvgpu::MmaSyncOp::create(lb, l, aFrag[mt], bFrag[nt], d,
                                             ArrayRef<int64_t>{16, 8, 16});
                continue;
              }
              // sm_75: k 0-7 uses A rows {0,1} and B row 0; k 8-15 the rest.
              auto half2 = VectorType::get({2, 2}, f16);
              auto one2 = VectorType::get({1, 2}, f16);
              for (int64_t h = 0; h < 2; ++h) {
                Value a2 = arith::ConstantOp::create(
                    lb, l, half2,
                    DenseElementsAttr::get(half2, lb.getFloatAttr(f16, 0.0)));
                for (int64_t r = 0; r < 2; ++r)
                  a2 = vector::InsertOp::create(
                      lb, l, ib.extract(aFrag[mt], 2 * h + r), a2,
                      ArrayRef<int64_t>{r});
                Value b1 = arith::ConstantOp::create(
                    lb, l, one2,
                    DenseElementsAttr::get(one2, lb.getFloatAttr(f16, 0.0)));
                b1 = vector::InsertOp::create(lb, l, ib.extract(bFrag[nt], h),
                                              b1, ArrayRef<int64_t>{0});
                d = nvgpu::MmaSyncOp::create(lb, l, a2, b1, d,
                                             ArrayRef<int64_t>{16, 8, 8});
              }
            }
        }
        gpu::BarrierOp::create(lb, l);
        scf::YieldOp::create(lb, l, next);
      });

  // Epilogue: fragment row (lane / 4) [+ 8], columns 2 * (lane % 4) + {0, 1}.
  Value g = kb.divu(lane, kb.idx(4));
  Value tig = kb.remu(lane, kb.idx(4));
  for (int64_t mt = 0; mt < mTiles; ++mt)
    for (int64_t nt = 0; nt < nTiles; ++nt) {
      Value d = loop.getResult(mt * nTiles + nt);
      Value col = kb.add(
          kb.add(n0, kb.add(kb.mul(warp, kb.idx(32)), kb.idx(nt * 8))),
          kb.mul(tig, kb.idx(2)));
      for (int64_t h = 0; h < 2; ++h) {
        Value row = kb.add(kb.add(m0, kb.idx(mt * 16 + 8 * h)), g);
        Value v = kb.extract(d, h); // vector<2xf32>
        if (a.bias) {
          Value b2 = kb.vload(a.bias, {col}, 2, f16);
          v = arith::AddFOp::create(
              b, loc, v,
              arith::ExtFOp::create(b, loc, kb.vec(2, f32), b2));
        }
        Value h2 = arith::TruncFOp::create(b, loc, kb.vec(2, f16), v);
        kb.vstore(h2, a.y, {row, col});
      }
    }
  gpu::ReturnOp::create(b, loc);
  return fn;
}
} // namespace

std::string KernelConfig::name() const {
  std::string s = kind == Kind::GEMV ? "wq_gemv" : "wq_gemm";
  s += "_m" + std::to_string(m) + "_k" + std::to_string(k) + "_n" +
       std::to_string(n) + "_b" + std::to_string(bits) + "_g" +
       std::to_string(groupSize);
  if (zeros)
    s += "_z";
  if (bias)
    s += "_bias";
  if (kind == Kind::GEMV && !f16Partials)
    s += "_f32";
  if (kind == Kind::GEMM)
    s += "_sm" + std::to_string(sm);
  return s;
}

int64_t KernelConfig::gridX() const {
  return kind == Kind::GEMV ? n / kGemvCols : n / kGemmCols;
}
int64_t KernelConfig::gridY() const {
  return kind == Kind::GEMV ? 1 : m / blockM;
}
int64_t KernelConfig::blockX() const { return kThreads; }

std::string KernelConfig::check() const {
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
    return "bits must be 2, 3, 4 or 8";
  int64_t codes = chunkCodes(bits);
  if (k % codes != 0)
    return "K must be a multiple of " + std::to_string(codes);
  if (groupSize % 16 != 0 || k % groupSize != 0 ||
      (groupSize < codes && codes % groupSize != 0) ||
      (groupSize >= codes && groupSize % codes != 0))
    return "group size " + std::to_string(groupSize) +
           " does not tile the kernel's " + std::to_string(codes) +
           "-code K chunks";
  if (kind == Kind::GEMV) {
    if (m < 1 || m > 8)
      return "the GEMV kernel takes 1 <= M <= 8";
    if (n % kGemvCols != 0)
      return "the GEMV kernel needs N to be a multiple of 4";
    return {};
  }
  if (sm < 75)
    return "tensor-core GEMM needs sm_75 or newer";
  if (m % 16 != 0)
    return "the tensor-core GEMM needs M to be a multiple of 16";
  if (n % kGemmCols != 0)
    return "the tensor-core GEMM needs N to be a multiple of 128";
  if (blockM % 16 != 0 || m % blockM != 0)
    return "block M must be a multiple of 16 dividing M";
  int64_t smem = (blockM + kGemmCols) * (codes + kSmemPad) * 2;
  if (smem > 48 * 1024)
    return "shared memory tile of " + std::to_string(smem) +
           " bytes exceeds 48 KiB";
  return {};
}

Operation *quant_mlir::wqgpu::buildKernel(OpBuilder &builder, Location loc,
                                          const KernelConfig &config) {
  assert(config.check().empty() && "unsupported kernel configuration");
  OpBuilder::InsertionGuard guard(builder);
  if (config.kind == KernelConfig::Kind::GEMV)
    return buildGemv(builder, loc, config);
  return buildGemm(builder, loc, config);
}

int quant_mlir::wqgpu::parseChip(StringRef chip) {
  int v = 0;
  if (!chip.consume_front("sm_") || chip.getAsInteger(10, v))
    return 0;
  return v;
}
