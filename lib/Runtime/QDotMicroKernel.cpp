//===- QDotMicroKernel.cpp - the integer-dot decode GEMV -----------------===//
// The packed decode GEMV on integer dot products for AVX2 and AVX-512 VNNI
// hosts: x as 24-bit fixed point split into signed bytes, codes as unsigned
// bytes, vpmaddubsw / vpmaddwd sums in int16 / int32 (AVX2) or vpdpbusd sums
// in int32 (VNNI), all exact, scales per group in f32
// (docs/performance-cpu.md). Registered by MicroKernels.cpp.
//===----------------------------------------------------------------------===//

#include "MicroKernelsInternal.h"
#include "quant-mlir/Runtime/Kernels.h"
#include "quant-mlir/Runtime/MicroKernels.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace quant_mlir;
using quant_mlir::detail::IndexMath;
using quant_mlir::detail::qdotName;

std::string quant_mlir::detail::qdotName(unsigned bits, int64_t rows,
                                         int64_t cols) {
  return "quant_ukernel_qdot_b" + std::to_string(bits) + "_m" +
         std::to_string(rows) + "_n" + std::to_string(cols);
}

bool quant_mlir::hasQDotGemv(const HostVectorTarget &target) {
  return (target.isa == "avx2" && target.vectorWidth == 8) ||
         (target.isa == "avx512" && target.vectorWidth == 16 && target.vnni);
}

void quant_mlir::buildQDotGemvMicroKernel(ModuleOp module,
                                          const HostVectorTarget &target,
                                          unsigned bits, int64_t rows,
                                          int64_t cols) {
  OpBuilder b(module.getContext());
  Location loc = module.getLoc();
  Type f32 = b.getF32Type(), i32 = b.getI32Type();
  const quant_mlir::detail::QGemvArgs args =
      quant_mlir::detail::createQGemvFunc(b, module,
                                          qdotName(bits, rows, cols), i32);
  Value q = args.q, s = args.s, nz = args.nz, xd = args.x, xs = args.xs,
        y = args.y, ldq = args.ldq, ldx = args.ldx, groups = args.groups,
        wpg = args.wpg, pf = args.pf;
  const int64_t vl = target.vectorWidth, nv = cols / vl;
  const int64_t sets = 8 / bits, perWord = 3 * sets;
  auto vf = VectorType::get({vl}, f32), vi = VectorType::get({vl}, i32);
  auto vb = VectorType::get({vl * 4}, b.getI8Type());
  auto vh = VectorType::get({vl * 2}, b.getI16Type());
  IndexMath ix{b, loc};
  // Accumulators per row r and vector j: on AVX2 A (digit 0) and B (digit
  // 1 plus 256 x digit 2), so that sum_k q * X = A + 256 * B; with VNNI
  // one per digit (vpdpbusd accumulates in int32 and cannot weight), B
  // formed after the word loop.
  const bool vnni = target.vnni && vl == 16;
  const int64_t accs = vnni ? 3 : 2;
  auto accIndex = [&](int64_t r, int64_t j, int64_t which) {
    return (r * nv + j) * accs + which;
  };
  auto splatI32 = [&](int32_t v) {
    return arith::ConstantOp::create(b, loc, vi, DenseElementsAttr::get(vi, v));
  };
  auto splatI16 = [&](int16_t v) {
    return arith::ConstantOp::create(b, loc, vh, DenseElementsAttr::get(vh, v));
  };
  Value zero = splatI32(0);
  uint32_t field = (1u << bits) - 1;
  Value byteMask = splatI32(int32_t(field * 0x01010101u));
  Value one16 = splatI16(1), w256 = splatI16(256), shift8 = splatI32(8);
  Value f256 =
      arith::ConstantOp::create(b, loc, vf, DenseElementsAttr::get(vf, 256.0f));
  SmallVector<Value> shifts;
  for (int64_t t = 0; t < sets; ++t)
    shifts.push_back(splatI32(int32_t(t * bits)));
  auto madd = [&](OpBuilder &wb, Location wl, Value codes, Value digits) {
    return LLVM::CallIntrinsicOp::create(
               wb, wl, vh, wb.getStringAttr("llvm.x86.avx2.pmadd.ub.sw"),
               ValueRange{codes, digits})
        .getResult(0);
  };
  auto widen = [&](OpBuilder &wb, Location wl, Value pairs, Value weights) {
    return LLVM::CallIntrinsicOp::create(
               wb, wl, vi, wb.getStringAttr("llvm.x86.avx2.pmadd.wd"),
               ValueRange{pairs, weights})
        .getResult(0);
  };
  auto dpbusd = [&](OpBuilder &wb, Location wl, Value acc, Value codes,
                    Value digits) {
    return LLVM::CallIntrinsicOp::create(
               wb, wl, vi, wb.getStringAttr("llvm.x86.avx512.vpdpbusd.512"),
               ValueRange{acc, codes, digits})
        .getResult(0);
  };
  SmallVector<Value> init(rows * nv * accs, zero);
  // One block of K (wpg word rows) on `groups` panels of `cols` columns
  // side by side: one call covers a run of columns (the driver's per-call
  // overhead, 35 arguments, was paid per 32 columns).
  Value panels = groups;
  scf::ForOp::create(
      b, loc, ix.cst(0), panels, ix.cst(1), ValueRange{},
      [&](OpBuilder &gb, Location l, Value p, ValueRange) {
        IndexMath gx{gb, l};
        Value colOff = gx.mul(p, gx.cst(cols));
        Value w0 = gx.cst(0);
        Value w1 = wpg;
        // kQDotWords words per iteration, summed in int16 (per word and
        // lane at most 2 x sets x (2^bits - 1) x 128: 4-bit 7680, so four
        // words stay below 2^15) and widened once (vpmaddwd is the scarce
        // multiply: one per four words instead of one per word).
        auto wordLoop = scf::ForOp::create(
            gb, l, w0, w1, gx.cst(kernels::kQDotWords), init,
            [&](OpBuilder &wb, Location wl, Value w0u, ValueRange wacc) {
              IndexMath wx{wb, wl};
              SmallVector<Value> acc(wacc.begin(), wacc.end());
              // sums[(r * nv + j) * 3 + d]: digit d's int16 pair sums.
              SmallVector<Value> sums(rows * nv * 3);
              for (int64_t u = 0; u < kernels::kQDotWords; ++u) {
                Value w = wx.add(w0u, wx.cst(u));
                Value qrow = wx.add(wx.mul(w, ldq), colOff);
                Value ahead = wx.add(qrow, pf);
                for (int64_t j = 0; j < nv * vl; j += 16)
                  memref::PrefetchOp::create(
                      wb, wl, q, ValueRange{wx.add(ahead, wx.cst(j))},
                      /*isWrite=*/false, /*localityHint=*/2,
                      /*isDataCache=*/true);
                // codes[j][t]: byte i of lane c is field i * sets + t of
                // column c's word, as an unsigned byte.
                SmallVector<SmallVector<Value>> codes(nv);
                for (int64_t j = 0; j < nv; ++j) {
                  Value word = vector::LoadOp::create(
                      wb, wl, vi, q, wx.add(qrow, wx.cst(j * vl)));
                  for (int64_t t = 0; t < sets; ++t) {
                    Value f = word;
                    if (t > 0)
                      f = arith::ShRUIOp::create(wb, wl, f, shifts[t]);
                    f = arith::AndIOp::create(wb, wl, f, byteMask);
                    codes[j].push_back(
                        vector::BitCastOp::create(wb, wl, vb, f));
                  }
                }
                for (int64_t r = 0; r < rows; ++r) {
                  Value xbase = wx.add(wx.mul(ldx, wx.cst(r)),
                                       wx.mul(w, wx.cst(perWord)));
                  for (int64_t d = 0; d < 3; ++d) {
                    SmallVector<Value> dig;
                    for (int64_t t = 0; t < sets; ++t) {
                      Value v = memref::LoadOp::create(
                          wb, wl, xd,
                          ValueRange{wx.add(xbase, wx.cst(d * sets + t))});
                      dig.push_back(vector::BitCastOp::create(
                          wb, wl, vb,
                          vector::BroadcastOp::create(wb, wl, vi, v)));
                    }
                    for (int64_t j = 0; j < nv; ++j) {
                      if (vnni) {
                        Value &a = acc[accIndex(r, j, d)];
                        for (int64_t t = 0; t < sets; ++t)
                          a = dpbusd(wb, wl, a, codes[j][t], dig[t]);
                        continue;
                      }
                      Value &p = sums[(r * nv + j) * 3 + d];
                      for (int64_t t = 0; t < sets; ++t) {
                        Value m = madd(wb, wl, codes[j][t], dig[t]);
                        p = p ? arith::AddIOp::create(wb, wl, p, m) : m;
                      }
                    }
                  }
                }
              }
              for (int64_t r = 0; r < rows && !vnni; ++r)
                for (int64_t j = 0; j < nv; ++j)
                  for (int64_t d = 0; d < 3; ++d) {
                    Value sum = widen(wb, wl, sums[(r * nv + j) * 3 + d],
                                      d == 2 ? w256 : one16);
                    Value &a = acc[accIndex(r, j, d == 0 ? 0 : 1)];
                    a = arith::AddIOp::create(wb, wl, a, sum);
                  }
              scf::YieldOp::create(wb, wl, acc);
            });
        // y[r, :] += (s * 2^e) * (A + 256 B) + nzs * xs[r], with xs and
        // 2^e the pair (block sum, digit scale) at xs[2 r].
        for (int64_t j = 0; j < nv; ++j) {
          Value soff = gx.add(colOff, gx.cst(j * vl));
          Value sv = vector::LoadOp::create(gb, l, vf, s, soff);
          Value zv = vector::LoadOp::create(gb, l, vf, nz, soff);
          for (int64_t r = 0; r < rows; ++r) {
            Value ib = wordLoop.getResult(accIndex(r, j, 1));
            if (vnni) // B = digit 1's sum + 256 x digit 2's, exact in int32.
              ib = arith::AddIOp::create(
                  gb, l, ib,
                  arith::ShLIOp::create(
                      gb, l, wordLoop.getResult(accIndex(r, j, 2)), shift8));
            Value fa = arith::SIToFPOp::create(
                gb, l, vf, wordLoop.getResult(accIndex(r, j, 0)));
            Value fb = arith::SIToFPOp::create(gb, l, vf, ib);
            Value total = vector::FMAOp::create(gb, l, f256, fb, fa);
            Value pair = gx.cst(2 * r);
            Value xsum = vector::BroadcastOp::create(
                gb, l, vf, memref::LoadOp::create(gb, l, xs, pair));
            Value scale = vector::BroadcastOp::create(
                gb, l, vf,
                memref::LoadOp::create(gb, l, xs, gx.add(pair, gx.cst(1))));
            Value yoff = gx.add(gx.mul(ldq, gx.cst(r)), soff);
            Value yv = vector::LoadOp::create(gb, l, vf, y, yoff);
            Value se = arith::MulFOp::create(gb, l, sv, scale);
            yv = vector::FMAOp::create(gb, l, se, total, yv);
            yv = vector::FMAOp::create(gb, l, zv, xsum, yv);
            vector::StoreOp::create(gb, l, yv, y, yoff);
          }
        }
        scf::YieldOp::create(gb, l);
      });
  func::ReturnOp::create(b, loc);
}
