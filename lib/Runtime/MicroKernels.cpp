//===- MicroKernels.cpp - generate and JIT the host's GEMM micro-kernel ----===//
// The vector family's register tile and decode GEMVs (f32 and packed),
// written in MLIR's vector dialect and compiled for the CPU this runs on
// (AVX-512 where present, AVX2 otherwise) by ExecutionEngine with
// JITTargetMachineBuilder::detectHost. The packing and blocking around them
// are in KernelsVector.cpp.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Runtime/MicroKernels.h"
#include "quant-mlir/Runtime/Kernels.h"
#include "MicroKernelsInternal.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/TargetParser/Host.h"

#include <functional>
#include <mutex>

using namespace mlir;
using namespace quant_mlir;
using quant_mlir::detail::IndexMath;
using quant_mlir::detail::qdotName;

namespace {
constexpr const char *kGemmKernel = "quant_ukernel_gemm_f32";
constexpr const char *kPackKernel = "quant_ukernel_pack_t_f32";

} // namespace

HostVectorTarget quant_mlir::detectHostVectorTarget() {
  HostVectorTarget t;
  t.cpu = llvm::sys::getHostCPUName().str();
  llvm::StringMap<bool> features = llvm::sys::getHostCPUFeatures();
  if (features.lookup("avx512f")) {
    // 32 zmm registers: 8 x 2 accumulators, 2 B vectors, broadcasts.
    t.isa = "avx512";
    t.vectorWidth = 16;
    t.mr = 8;
    t.maxGemvRows = 8;
    t.vnni = features.lookup("avx512vnni");
  } else if (features.lookup("avx2") && features.lookup("fma")) {
    // 16 ymm registers: 6 x 2 accumulators, 2 B vectors, 1 broadcast.
    t.isa = "avx2";
    t.vectorWidth = 8;
    t.mr = 6;
  } else {
    t.isa = "generic";
    t.vectorWidth = 4;
    t.mr = 4;
  }
  t.nr = 2 * t.vectorWidth;
  return t;
}

void quant_mlir::buildGemmMicroKernel(ModuleOp module,
                                      const HostVectorTarget &target) {
  OpBuilder b = OpBuilder::atBlockEnd(module.getBody());
  Location loc = module.getLoc();
  Type f32 = b.getF32Type(), index = b.getIndexType();
  auto buffer = MemRefType::get({ShapedType::kDynamic}, f32);
  auto fn = func::FuncOp::create(
      b, loc, kGemmKernel,
      b.getFunctionType({buffer, buffer, buffer, index, index, index}, {}));
  Block *entry = fn.addEntryBlock();
  b.setInsertionPointToStart(entry);
  Value a = entry->getArgument(0), bb = entry->getArgument(1),
        c = entry->getArgument(2), cOff = entry->getArgument(3),
        kc = entry->getArgument(4), ldc = entry->getArgument(5);
  const int64_t mr = target.mr, vl = target.vectorWidth,
                nv = target.nr / target.vectorWidth;
  auto vt = VectorType::get({vl}, f32);
  IndexMath ix{b, loc};
  Value zero = arith::ConstantOp::create(b, loc, vt, b.getZeroAttr(vt));
  // The C tile is read and written once, after the k loop: ask for its
  // lines now (rows are ldc apart, in L2 or beyond), so that the update
  // does not wait on them (it was ~5% of a 100M forward's samples).
  for (int64_t i = 0; i < mr; ++i) {
    Value row = ix.add(cOff, ix.mul(ldc, ix.cst(i)));
    for (int64_t j = 0; j < target.nr; j += 16)
      memref::PrefetchOp::create(b, loc, c, ValueRange{ix.add(row, ix.cst(j))},
                                 /*isWrite=*/true, /*localityHint=*/3,
                                 /*isDataCache=*/true);
  }
  SmallVector<Value> init(mr * nv, zero);
  auto loop = scf::ForOp::create(
      b, loc, ix.cst(0), kc, ix.cst(1), init,
      [&](OpBuilder &lb, Location l, Value k, ValueRange acc) {
        IndexMath lx{lb, l};
        Value bRow = lx.mul(k, lx.cst(target.nr));
        SmallVector<Value> bv;
        for (int64_t j = 0; j < nv; ++j) {
          Value off = lx.add(bRow, lx.cst(j * vl));
          bv.push_back(vector::LoadOp::create(lb, l, vt, bb, off));
        }
        Value aRow = lx.mul(k, lx.cst(mr));
        SmallVector<Value> next;
        for (int64_t i = 0; i < mr; ++i) {
          Value off = lx.add(aRow, lx.cst(i));
          Value ai = memref::LoadOp::create(lb, l, a, off);
          Value splat = vector::BroadcastOp::create(lb, l, vt, ai);
          for (int64_t j = 0; j < nv; ++j)
            next.push_back(
                vector::FMAOp::create(lb, l, splat, bv[j], acc[i * nv + j]));
        }
        scf::YieldOp::create(lb, l, next);
      });
  for (int64_t i = 0; i < mr; ++i) {
    Value row = ix.add(cOff, ix.mul(ldc, ix.cst(i)));
    for (int64_t j = 0; j < nv; ++j) {
      Value off = ix.add(row, ix.cst(j * vl));
      Value old = vector::LoadOp::create(b, loc, vt, c, off);
      Value sum = arith::AddFOp::create(b, loc, old,
                                        loop.getResult(i * nv + j));
      vector::StoreOp::create(b, loc, sum, c, off);
    }
  }
  func::ReturnOp::create(b, loc);
}

void quant_mlir::buildPackTransposeKernel(ModuleOp module,
                                          const HostVectorTarget &target) {
  OpBuilder b = OpBuilder::atBlockEnd(module.getBody());
  Location loc = module.getLoc();
  Type f32 = b.getF32Type(), index = b.getIndexType();
  auto buffer = MemRefType::get({ShapedType::kDynamic}, f32);
  auto fn = func::FuncOp::create(
      b, loc, kPackKernel,
      b.getFunctionType({buffer, buffer, index, index, index, index, index},
                        {}));
  Block *entry = fn.addEntryBlock();
  b.setInsertionPointToStart(entry);
  Value src = entry->getArgument(0), dst = entry->getArgument(1),
        srcOff = entry->getArgument(2), ld = entry->getArgument(3),
        dstOff = entry->getArgument(4), dstLd = entry->getArgument(5),
        blocks = entry->getArgument(6);
  const int64_t vl = target.vectorWidth;
  auto vt = VectorType::get({vl}, f32);
  IndexMath ix{b, loc};
  scf::ForOp::create(
      b, loc, ix.cst(0), blocks, ix.cst(1), ValueRange{},
      [&](OpBuilder &lb, Location l, Value t, ValueRange) {
        IndexMath lx{lb, l};
        Value k0 = lx.mul(t, lx.cst(vl));
        Value s0 = lx.add(srcOff, k0);
        SmallVector<Value> v;
        for (int64_t i = 0; i < vl; ++i)
          v.push_back(vector::LoadOp::create(
              lb, l, vt, src, lx.add(s0, lx.mul(ld, lx.cst(i)))));
        // Round `bit` swaps bit `bit` of the row index with that of the
        // lane index: rows r and r | bit exchange the lanes where the two
        // differ. After log2(vl) rounds, row c holds column c.
        for (int64_t bit = 1; bit < vl; bit <<= 1)
          for (int64_t r = 0; r < vl; ++r) {
            if (r & bit)
              continue;
            SmallVector<int64_t> lo, hi;
            for (int64_t c = 0; c < vl; ++c) {
              lo.push_back(c & bit ? vl + (c ^ bit) : c);
              hi.push_back(c & bit ? vl + c : (c | bit));
            }
            Value nlo = vector::ShuffleOp::create(lb, l, v[r], v[r | bit], lo);
            Value nhi = vector::ShuffleOp::create(lb, l, v[r], v[r | bit], hi);
            v[r] = nlo;
            v[r | bit] = nhi;
          }
        Value d0 = lx.add(dstOff, lx.mul(k0, dstLd));
        for (int64_t c = 0; c < vl; ++c)
          vector::StoreOp::create(lb, l, v[c], dst,
                                  lx.add(d0, lx.mul(dstLd, lx.cst(c))));
        scf::YieldOp::create(lb, l);
      });
  func::ReturnOp::create(b, loc);
}

namespace {
std::string qgemvName(unsigned bits, int64_t rows, int64_t cols) {
  return "quant_ukernel_qgemv_b" + std::to_string(bits) + "_m" +
         std::to_string(rows) + "_n" + std::to_string(cols);
}

} // namespace

int64_t quant_mlir::qgemvWideColumns(const HostVectorTarget &target,
                                     int64_t rows) {
  // Accumulators (rows x vectors) within half the vector registers, the
  // loaded code vectors and temporaries in the rest; at most
  // kernels' 128-column chunk.
  const int64_t regs = target.isa == "avx512" ? 32 : 16;
  const int64_t vectors = std::clamp<int64_t>(
      regs / 2 / rows, target.nr / target.vectorWidth, regs / 4);
  return std::min<int64_t>(vectors * target.vectorWidth, 128);
}

quant_mlir::detail::QGemvArgs
quant_mlir::detail::createQGemvFunc(OpBuilder &b, ModuleOp module,
                                    StringRef name, Type xElement) {
  b.setInsertionPointToEnd(module.getBody());
  Location loc = module.getLoc();
  Type f32 = b.getF32Type(), index = b.getIndexType();
  auto fbuf = MemRefType::get({ShapedType::kDynamic}, f32);
  auto ibuf = MemRefType::get({ShapedType::kDynamic}, b.getI32Type());
  auto xbuf = MemRefType::get({ShapedType::kDynamic}, xElement);
  auto fn = func::FuncOp::create(
      b, loc, name,
      b.getFunctionType({ibuf, fbuf, fbuf, xbuf, fbuf, fbuf, index, index,
                         index, index, index},
                        {}));
  Block *entry = fn.addEntryBlock();
  b.setInsertionPointToStart(entry);
  auto arg = [&](unsigned i) { return entry->getArgument(i); };
  return {arg(0), arg(1), arg(2), arg(3), arg(4),  arg(5),
          arg(6), arg(7), arg(8), arg(9), arg(10)};
}

void quant_mlir::buildQGemvMicroKernel(ModuleOp module,
                                       const HostVectorTarget &target,
                                       unsigned bits, int64_t rows,
                                       int64_t cols) {
  OpBuilder b(module.getContext());
  Location loc = module.getLoc();
  Type f32 = b.getF32Type(), i32 = b.getI32Type();
  const quant_mlir::detail::QGemvArgs args =
      quant_mlir::detail::createQGemvFunc(b, module,
                                          qgemvName(bits, rows, cols), f32);
  Value q = args.q, s = args.s, nz = args.nz, x = args.x, xs = args.xs,
        y = args.y, ldq = args.ldq, ldx = args.ldx, groups = args.groups,
        wpg = args.wpg, pf = args.pf;
  const int64_t vl = target.vectorWidth, nv = cols / vl;
  const int64_t per = 32 / bits;
  // Partial sums per row and lane vector: at least 4 independent FMA chains.
  const int64_t parts = std::max<int64_t>(1, 4 / (rows * nv));
  auto vf = VectorType::get({vl}, f32), vi = VectorType::get({vl}, i32);
  IndexMath ix{b, loc};
  auto accIndex = [&](int64_t r, int64_t j, int64_t p) {
    return (r * nv + j) * parts + p;
  };
  Value zero = arith::ConstantOp::create(b, loc, vf, b.getZeroAttr(vf));
  Value mask = arith::ConstantOp::create(
      b, loc, vi, DenseElementsAttr::get(vi, int32_t((1u << bits) - 1)));
  // AVX-512's vpermps reads the low 4 bits of each index: with a table of
  // float(i & mask) for i < 16, one permute turns a shifted 2- or 4-bit
  // field into its float, no mask and no conversion (shift, permute, FMA
  // per field instead of shift, mask, convert, FMA; the same values).
  const bool permute =
      target.isa == "avx512" && vl == 16 && (bits == 2 || bits == 4);
  Value table;
  if (permute) {
    SmallVector<float> values;
    for (uint32_t i = 0; i < 16; ++i)
      values.push_back(float(i & ((1u << bits) - 1)));
    table = arith::ConstantOp::create(
        b, loc, vf, DenseElementsAttr::get(vf, ArrayRef<float>(values)));
  }
  SmallVector<Value> shifts;
  for (int64_t f = 0; f < per; ++f)
    shifts.push_back(arith::ConstantOp::create(
        b, loc, vi, DenseElementsAttr::get(vi, int32_t(f * bits))));
  // Per group: acc = sum_k x[r, k] * q[k, :] (codes only: shift, mask,
  // convert, FMA), then y[r, :] += s[g, :] * acc + nzs[g, :] * xs[r, g]
  // with xs the group's sum of x: the scale and zero cost nothing per k.
  SmallVector<Value> init(rows * nv * parts, zero);
  scf::ForOp::create(
      b, loc, ix.cst(0), groups, ix.cst(1), ValueRange{},
      [&](OpBuilder &gb, Location l, Value g, ValueRange) {
        IndexMath gx{gb, l};
        Value w0 = gx.mul(g, wpg);
        Value w1 = gx.add(w0, wpg);
        auto wordLoop = scf::ForOp::create(
            gb, l, w0, w1, gx.cst(1), init,
            [&](OpBuilder &wb, Location wl, Value w, ValueRange wacc) {
              IndexMath wx{wb, wl};
              SmallVector<Value> acc(wacc.begin(), wacc.end());
              Value qrow = wx.mul(w, ldq);
              // Prefetch what a later call reads, pf codes past this row's
              // (the next chunk's columns), one per 64-byte line; past the
              // end is harmless: a prefetch never faults.
              Value ahead = wx.add(qrow, pf);
              for (int64_t j = 0; j < nv * vl; j += 16)
                memref::PrefetchOp::create(
                    wb, wl, q, ValueRange{wx.add(ahead, wx.cst(j))},
                    /*isWrite=*/false, /*localityHint=*/2,
                    /*isDataCache=*/true);
              SmallVector<Value> qv;
              for (int64_t j = 0; j < nv; ++j) {
                Value off = wx.add(qrow, wx.cst(j * vl));
                qv.push_back(vector::LoadOp::create(wb, wl, vi, q, off));
              }
              Value k0 = wx.mul(w, wx.cst(per));
              SmallVector<Value> xrow;
              for (int64_t r = 0; r < rows; ++r)
                xrow.push_back(wx.add(k0, wx.mul(ldx, wx.cst(r))));
              for (int64_t f = 0; f < per; ++f) {
                SmallVector<Value> wv;
                for (int64_t j = 0; j < nv; ++j) {
                  // The top field needs no mask, the bottom one no shift.
                  Value field = qv[j];
                  if (f > 0)
                    field = arith::ShRUIOp::create(wb, wl, field, shifts[f]);
                  if (permute) {
                    wv.push_back(
                        LLVM::CallIntrinsicOp::create(
                            wb, wl, vf,
                            wb.getStringAttr("llvm.x86.avx512.permvar.sf.512"),
                            ValueRange{table, field})
                            .getResult(0));
                    continue;
                  }
                  if (f + 1 < per)
                    field = arith::AndIOp::create(wb, wl, field, mask);
                  wv.push_back(arith::UIToFPOp::create(wb, wl, vf, field));
                }
                for (int64_t r = 0; r < rows; ++r) {
                  Value off = wx.add(xrow[r], wx.cst(f));
                  Value xv = memref::LoadOp::create(wb, wl, x, off);
                  Value splat = vector::BroadcastOp::create(wb, wl, vf, xv);
                  for (int64_t j = 0; j < nv; ++j) {
                    Value &a = acc[accIndex(r, j, f % parts)];
                    a = vector::FMAOp::create(wb, wl, splat, wv[j], a);
                  }
                }
              }
              scf::YieldOp::create(wb, wl, acc);
            });
        Value srow = gx.mul(g, ldq);
        for (int64_t j = 0; j < nv; ++j) {
          Value soff = gx.add(srow, gx.cst(j * vl));
          Value sv = vector::LoadOp::create(gb, l, vf, s, soff);
          Value zv = vector::LoadOp::create(gb, l, vf, nz, soff);
          for (int64_t r = 0; r < rows; ++r) {
            Value total = wordLoop.getResult(accIndex(r, j, 0));
            for (int64_t p = 1; p < parts; ++p)
              total = arith::AddFOp::create(
                  gb, l, total, wordLoop.getResult(accIndex(r, j, p)));
            Value xoff = gx.add(gx.mul(groups, gx.cst(r)), g);
            Value xsum = vector::BroadcastOp::create(
                gb, l, vf, memref::LoadOp::create(gb, l, xs, xoff));
            Value yoff = gx.add(gx.mul(ldq, gx.cst(r)), gx.cst(j * vl));
            Value yv = vector::LoadOp::create(gb, l, vf, y, yoff);
            yv = vector::FMAOp::create(gb, l, sv, total, yv);
            yv = vector::FMAOp::create(gb, l, zv, xsum, yv);
            vector::StoreOp::create(gb, l, yv, y, yoff);
          }
        }
        scf::YieldOp::create(gb, l);
      });
  func::ReturnOp::create(b, loc);
}

namespace {
std::string gemvDotName(int64_t rows, int64_t wrows) {
  return "quant_ukernel_gemv_t_f32_m" + std::to_string(rows) + "_r" +
         std::to_string(wrows);
}
std::string gemvAxpyName(int64_t rows, int64_t cols) {
  return "quant_ukernel_gemv_n_f32_m" + std::to_string(rows) + "_n" +
         std::to_string(cols);
}

/// The f32 GEMV signature: memrefs a, b, out, then lda, ldb, steps, pf.
func::FuncOp createGemvFunc(OpBuilder &b, Location loc, StringRef name) {
  Type f32 = b.getF32Type(), index = b.getIndexType();
  auto buffer = MemRefType::get({ShapedType::kDynamic}, f32);
  auto fn = func::FuncOp::create(
      b, loc, name,
      b.getFunctionType({buffer, buffer, buffer, index, index, index, index},
                        {}));
  fn.addEntryBlock();
  return fn;
}
} // namespace

int64_t quant_mlir::f32GemvWeightRows(const HostVectorTarget &target,
                                      int64_t rows) {
  const int64_t regs = target.isa == "avx512" ? 32 : 16;
  int64_t wrows = 1;
  while (wrows * 2 * rows <= regs / 2 && wrows < 8)
    wrows *= 2;
  return wrows;
}

void quant_mlir::buildF32GemvDotKernel(ModuleOp module,
                                       const HostVectorTarget &target,
                                       int64_t rows, int64_t wrows) {
  OpBuilder b = OpBuilder::atBlockEnd(module.getBody());
  Location loc = module.getLoc();
  func::FuncOp fn = createGemvFunc(b, loc, gemvDotName(rows, wrows));
  Block *entry = &fn.getBody().front();
  b.setInsertionPointToStart(entry);
  Value a = entry->getArgument(0), w = entry->getArgument(1),
        out = entry->getArgument(2), lda = entry->getArgument(3),
        ldb = entry->getArgument(4), steps = entry->getArgument(5),
        pf = entry->getArgument(6);
  const int64_t vl = target.vectorWidth;
  auto vt = VectorType::get({vl}, b.getF32Type());
  IndexMath ix{b, loc};
  Value zero = arith::ConstantOp::create(b, loc, vt, b.getZeroAttr(vt));
  SmallVector<Value> init(rows * wrows, zero);
  // One weight row per accumulator column: wrows sequential streams, each
  // element loaded once and used by every row of x (no packing: the weight
  // is read where it lies, which for M = 1 is all the work there is).
  auto loop = scf::ForOp::create(
      b, loc, ix.cst(0), steps, ix.cst(1), init,
      [&](OpBuilder &lb, Location l, Value t, ValueRange acc) {
        IndexMath lx{lb, l};
        Value k = lx.mul(t, lx.cst(vl));
        SmallVector<Value> wv;
        for (int64_t j = 0; j < wrows; ++j) {
          Value off = lx.add(lx.mul(ldb, lx.cst(j)), k);
          // Software prefetch pf floats ahead along the row: the hardware
          // prefetcher follows few streams this far apart.
          memref::PrefetchOp::create(lb, l, w, ValueRange{lx.add(off, pf)},
                                     /*isWrite=*/false, /*localityHint=*/3,
                                     /*isDataCache=*/true);
          wv.push_back(vector::LoadOp::create(lb, l, vt, w, off));
        }
        SmallVector<Value> next(acc.begin(), acc.end());
        for (int64_t r = 0; r < rows; ++r) {
          Value xv = vector::LoadOp::create(lb, l, vt, a,
                                            lx.add(lx.mul(lda, lx.cst(r)), k));
          for (int64_t j = 0; j < wrows; ++j)
            next[r * wrows + j] =
                vector::FMAOp::create(lb, l, xv, wv[j], next[r * wrows + j]);
        }
        scf::YieldOp::create(lb, l, next);
      });
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < wrows; ++j) {
      Value sum = vector::ReductionOp::create(b, loc,
                                              vector::CombiningKind::ADD,
                                              loop.getResult(r * wrows + j));
      memref::StoreOp::create(b, loc, sum, out,
                              ValueRange{ix.cst(r * wrows + j)});
    }
  func::ReturnOp::create(b, loc);
}

void quant_mlir::buildF32GemvAxpyKernel(ModuleOp module,
                                        const HostVectorTarget &target,
                                        int64_t rows, int64_t cols) {
  OpBuilder b = OpBuilder::atBlockEnd(module.getBody());
  Location loc = module.getLoc();
  func::FuncOp fn = createGemvFunc(b, loc, gemvAxpyName(rows, cols));
  Block *entry = &fn.getBody().front();
  b.setInsertionPointToStart(entry);
  Value a = entry->getArgument(0), w = entry->getArgument(1),
        out = entry->getArgument(2), lda = entry->getArgument(3),
        ldb = entry->getArgument(4), kn = entry->getArgument(5);
  const int64_t vl = target.vectorWidth, nv = cols / vl;
  auto vt = VectorType::get({vl}, b.getF32Type());
  IndexMath ix{b, loc};
  Value zero = arith::ConstantOp::create(b, loc, vt, b.getZeroAttr(vt));
  SmallVector<Value> init(rows * nv, zero);
  auto loop = scf::ForOp::create(
      b, loc, ix.cst(0), kn, ix.cst(1), init,
      [&](OpBuilder &lb, Location l, Value k, ValueRange acc) {
        IndexMath lx{lb, l};
        Value row = lx.mul(k, ldb);
        SmallVector<Value> wv;
        for (int64_t j = 0; j < nv; ++j)
          wv.push_back(vector::LoadOp::create(lb, l, vt, w,
                                              lx.add(row, lx.cst(j * vl))));
        SmallVector<Value> next(acc.begin(), acc.end());
        for (int64_t r = 0; r < rows; ++r) {
          Value xs = memref::LoadOp::create(lb, l, a,
                                            lx.add(lx.mul(lda, lx.cst(r)), k));
          Value splat = vector::BroadcastOp::create(lb, l, vt, xs);
          for (int64_t j = 0; j < nv; ++j)
            next[r * nv + j] =
                vector::FMAOp::create(lb, l, splat, wv[j], next[r * nv + j]);
        }
        scf::YieldOp::create(lb, l, next);
      });
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < nv; ++j)
      vector::StoreOp::create(b, loc, loop.getResult(r * nv + j), out,
                              ValueRange{ix.cst(r * cols + j * vl)});
  func::ReturnOp::create(b, loc);
}

namespace {
struct VectorKernels {
  MLIRContext context;
  std::unique_ptr<ExecutionEngine> engine;
  HostVectorTarget target;
  std::string error;
};

VectorKernels *compileVectorKernels() {
  auto *vk = new VectorKernels();
  vk->target = detectHostVectorTarget();
  MLIRContext &ctx = vk->context;
  ctx.loadDialect<func::FuncDialect, arith::ArithDialect,
                  memref::MemRefDialect, scf::SCFDialect,
                  vector::VectorDialect, LLVM::LLVMDialect>();
  DialectRegistry registry;
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  ctx.appendDialectRegistry(registry);
  OwningOpRef<ModuleOp> module = ModuleOp::create(UnknownLoc::get(&ctx));
  buildGemmMicroKernel(*module, vk->target);
  buildPackTransposeKernel(*module, vk->target);
  for (unsigned bits : {2u, 4u, 8u})
    for (int64_t rows = 1; rows <= vk->target.maxGemvRows; rows *= 2) {
      buildQGemvMicroKernel(*module, vk->target, bits, rows, vk->target.nr);
      int64_t wide = qgemvWideColumns(vk->target, rows);
      if (wide != vk->target.nr)
        buildQGemvMicroKernel(*module, vk->target, bits, rows, wide);
    }
  if (hasQDotGemv(vk->target))
    for (unsigned bits : {2u, 4u})
      for (int64_t rows = 1; rows <= 2; ++rows) {
        buildQDotGemvMicroKernel(*module, vk->target, bits, rows,
                                 vk->target.nr);
      }
  for (int64_t rows = 1; rows <= vk->target.maxF32GemvRows(); ++rows) {
    int64_t wrows = f32GemvWeightRows(vk->target, rows);
    buildF32GemvDotKernel(*module, vk->target, rows, wrows);
    if (wrows != 1)
      buildF32GemvDotKernel(*module, vk->target, rows, 1);
    int64_t cols = qgemvWideColumns(vk->target, rows);
    buildF32GemvAxpyKernel(*module, vk->target, rows, cols);
    if (cols != vk->target.vectorWidth)
      buildF32GemvAxpyKernel(*module, vk->target, rows,
                             vk->target.vectorWidth);
  }

  PassManager pm(&ctx);
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createConvertVectorToLLVMPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  if (failed(pm.run(*module))) {
    vk->error = "lowering the vector micro-kernel failed";
    return vk;
  }

  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  // The IR optimizer and the code generator both get the host's CPU name
  // and features: vector<16xf32> becomes zmm FMAs with AVX-512, ymm pairs
  // with AVX2.
  std::unique_ptr<llvm::TargetMachine> machine;
  if (auto builder = llvm::orc::JITTargetMachineBuilder::detectHost()) {
    builder->setCodeGenOptLevel(llvm::CodeGenOptLevel::Aggressive);
    if (auto tm = builder->createTargetMachine())
      machine = std::move(*tm);
    else
      llvm::consumeError(tm.takeError());
  } else {
    llvm::consumeError(builder.takeError());
  }
  // ExecutionEngineOptions::transformer is a function_ref: the callable must
  // outlive create() (a temporary here was a stack-use-after-scope, ASan).
  std::function<llvm::Error(llvm::Module *)> transformer =
      makeOptimizingTransformer(2, 0, machine.get());
  ExecutionEngineOptions options;
  options.transformer = transformer;
  options.jitCodeGenOptLevel = llvm::CodeGenOptLevel::Aggressive;
  auto engine = ExecutionEngine::create(*module, options);
  if (!engine) {
    vk->error = llvm::toString(engine.takeError());
    return vk;
  }
  vk->engine = std::move(*engine);
  auto address = vk->engine->lookup(kGemmKernel);
  if (!address) {
    vk->error = llvm::toString(address.takeError());
    return vk;
  }
  kernels::GemmMicroKernel kernel;
  kernel.fn = reinterpret_cast<kernels::GemmMicroKernel::Fn>(*address);
  kernel.mr = vk->target.mr;
  kernel.nr = vk->target.nr;
  auto pack = vk->engine->lookup(kPackKernel);
  if (!pack) {
    vk->error = llvm::toString(pack.takeError());
    return vk;
  }
  kernel.packT = reinterpret_cast<kernels::GemmMicroKernel::PackFn>(*pack);
  kernel.vl = vk->target.vectorWidth;
  kernels::QGemvMicroKernel gemv;
  gemv.nr = vk->target.nr;
  for (unsigned bits : {2u, 4u, 8u})
    for (int64_t rows = 1; rows <= vk->target.maxGemvRows; rows *= 2) {
      int64_t wide = qgemvWideColumns(vk->target, rows);
      auto fn = vk->engine->lookup(qgemvName(bits, rows, vk->target.nr));
      auto wfn = vk->engine->lookup(qgemvName(bits, rows, wide));
      if (!fn || !wfn) {
        vk->error = llvm::toString(
            llvm::joinErrors(fn.takeError(), wfn.takeError()));
        return vk;
      }
      gemv.fn[bits][rows] =
          reinterpret_cast<kernels::QGemvMicroKernel::Fn>(*fn);
      gemv.wide[bits][rows] =
          reinterpret_cast<kernels::QGemvMicroKernel::Fn>(*wfn);
      gemv.wideCols[rows] = wide;
    }
  if (hasQDotGemv(vk->target))
    for (unsigned bits : {2u, 4u})
      for (int64_t rows = 1; rows <= 2; ++rows) {
        auto fn = vk->engine->lookup(qdotName(bits, rows, vk->target.nr));
        if (!fn) {
          vk->error = llvm::toString(fn.takeError());
          return vk;
        }
        gemv.dot[bits][rows] =
            reinterpret_cast<kernels::QGemvMicroKernel::Fn>(*fn);
      }
  kernels::F32GemvMicroKernel f32gemv;
  f32gemv.vl = vk->target.vectorWidth;
  f32gemv.maxRows = std::min<int64_t>(vk->target.maxF32GemvRows(), 3);
  for (int64_t rows = 1; rows <= f32gemv.maxRows; ++rows) {
    int64_t wrows = f32GemvWeightRows(vk->target, rows);
    int64_t cols = qgemvWideColumns(vk->target, rows);
    auto lookup = [&](const std::string &name) {
      auto fn = vk->engine->lookup(name);
      if (!fn) {
        vk->error = llvm::toString(fn.takeError());
        return kernels::F32GemvMicroKernel::Fn(nullptr);
      }
      return reinterpret_cast<kernels::F32GemvMicroKernel::Fn>(*fn);
    };
    f32gemv.dot[rows] = lookup(gemvDotName(rows, wrows));
    f32gemv.dot1[rows] = lookup(gemvDotName(rows, 1));
    f32gemv.axpy[rows] = lookup(gemvAxpyName(rows, cols));
    f32gemv.axpy1[rows] = lookup(gemvAxpyName(rows, vk->target.vectorWidth));
    f32gemv.dotRows[rows] = wrows;
    f32gemv.axpyCols[rows] = cols;
    if (!vk->error.empty())
      return vk;
  }
  kernels::setGemmMicroKernel(kernel);
  kernels::setQGemvMicroKernels(gemv);
  kernels::setF32GemvMicroKernels(f32gemv);
  return vk;
}
} // namespace

llvm::Expected<HostVectorTarget> quant_mlir::initVectorKernels() {
  // Built once and never freed: registered code must outlive every module
  // that calls it, up to process exit.
  static VectorKernels *vk = compileVectorKernels();
  if (!vk->error.empty())
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "vector micro-kernels: " + vk->error);
  return vk->target;
}
