//===- Kernels.h - CPU kernels that lowered code calls ----------*- C++ -*-===//
// The C entry points quant_contract_f32 / quant_qlinear_f32 (emitted by
// convert-linalg-to-blas and convert-wq-to-cpu-kernels) and their C++ cores,
// exposed for tests and benchmarks. See docs/performance-cpu.md.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_RUNTIME_KERNELS_H
#define QUANT_MLIR_RUNTIME_KERNELS_H

#include <cstdint>

extern "C" {
/// C += A * B for a contraction of up to 8 loop dims. Each operand is its
/// aligned pointer (as an integer) and element offset; each dim slot is
/// (role: 0 batch / 1 M / 2 N / 3 K, size, stride in A, B, C — 0 where the
/// operand is not indexed by it). Slots past numDims are ignored.
void quant_contract_f32(
    int64_t numDims, int64_t aPtr, int64_t aOff, int64_t bPtr, int64_t bOff,
    int64_t cPtr, int64_t cOff,
    int64_t role0, int64_t size0, int64_t sa0, int64_t sb0, int64_t sc0,
    int64_t role1, int64_t size1, int64_t sa1, int64_t sb1, int64_t sc1,
    int64_t role2, int64_t size2, int64_t sa2, int64_t sb2, int64_t sc2,
    int64_t role3, int64_t size3, int64_t sa3, int64_t sb3, int64_t sc3,
    int64_t role4, int64_t size4, int64_t sa4, int64_t sb4, int64_t sc4,
    int64_t role5, int64_t size5, int64_t sa5, int64_t sb5, int64_t sc5,
    int64_t role6, int64_t size6, int64_t sa6, int64_t sb6, int64_t sc6,
    int64_t role7, int64_t size7, int64_t sa7, int64_t sb7, int64_t sc7);

/// quant_contract_f32 on the vector family (the generated micro-kernels
/// registered with kernels::setGemmMicroKernel; OpenBLAS when none is).
void quant_vcontract_f32(
    int64_t numDims, int64_t aPtr, int64_t aOff, int64_t bPtr, int64_t bOff,
    int64_t cPtr, int64_t cOff,
    int64_t role0, int64_t size0, int64_t sa0, int64_t sb0, int64_t sc0,
    int64_t role1, int64_t size1, int64_t sa1, int64_t sb1, int64_t sc1,
    int64_t role2, int64_t size2, int64_t sa2, int64_t sb2, int64_t sc2,
    int64_t role3, int64_t size3, int64_t sa3, int64_t sb3, int64_t sc3,
    int64_t role4, int64_t size4, int64_t sa4, int64_t sb4, int64_t sc4,
    int64_t role5, int64_t size5, int64_t sa5, int64_t sb5, int64_t sc5,
    int64_t role6, int64_t size6, int64_t sa6, int64_t sb6, int64_t sc6,
    int64_t role7, int64_t size7, int64_t sa7, int64_t sb7, int64_t sc7);

/// y[m, n] = x[m, k] * dequant(codes)^T + bias for gptq packing (codes
/// [k * bits / 32, n] i32, scales [groups, n] f32, zeros [groups,
/// n * bits / 32] i32 or 0 for 2^(bits-1), g_idx [k] i32 when actOrder).
/// groupSize 0 means per-channel. Pointers are passed as integers.
/// flags bit 0: the vector family (vqlinearF32) instead of OpenBLAS.
void quant_qlinear_f32(int64_t m, int64_t n, int64_t k, int64_t bits,
                       int64_t groupSize, int64_t groups, int64_t actOrder,
                       int64_t flags, int64_t xPtr, int64_t codesPtr,
                       int64_t scalesPtr, int64_t zerosPtr, int64_t gIdxPtr,
                       int64_t biasPtr, int64_t outPtr);
}

namespace quant_mlir::kernels {
/// Loop dims quant_contract_f32 takes.
constexpr int64_t kMaxContractDims = 8;

/// Once per process (CPUModule::compile): glibc malloc settings that keep
/// large freed intermediates in the heap instead of unmapping them
/// (CPUCompileOptions::tuneAllocator = false leaves the defaults).
void configureAllocator();

/// Rows of K dequantized per block by qlinearF32.
int64_t qlinearBlockK(int64_t n, int64_t groupSize);

/// The fused gptq dequantize + SGEMM (see quant_qlinear_f32).
void qlinearF32(int64_t m, int64_t n, int64_t k, unsigned bits,
                int64_t groupSize, int64_t groups, const float *x,
                const int32_t *codes, const float *scales,
                const int32_t *zeros, const int32_t *gIdx, const float *bias,
                float *y);

/// C[m, n] += A[m, k] * B[k, n] with element strides (SGEMM when a BLAS
/// layout fits, packing otherwise).
void contractF32(int64_t m, int64_t n, int64_t k, const float *a, int64_t sam,
                 int64_t sak, const float *b, int64_t sbk, int64_t sbn,
                 float *c, int64_t scm, int64_t scn);

/// The f32 GEMM micro-kernel that MicroKernels.cpp generates (vector
/// dialect) and JIT-compiles for the host: C[0:mr, 0:nr] (row stride ldc,
/// from c + cOff) += sum over k < kc of a[k * mr + i] * b[k * nr + j], on
/// packed panels. Arguments are memref<?xf32> descriptors in MLIR's expanded
/// calling convention (allocated, aligned, offset, size, stride) for a, b, c,
/// then cOff, kc, ldc.
struct GemmMicroKernel {
  using Fn = void (*)(float *, float *, int64_t, int64_t, int64_t, float *,
                      float *, int64_t, int64_t, int64_t, float *, float *,
                      int64_t, int64_t, int64_t, int64_t, int64_t, int64_t);
  Fn fn = nullptr;
  int64_t mr = 0, nr = 0;
  /// The panel packer for B stored transposed (W[N, K], K contiguous): for
  /// t < blocks, the vl x vl block src[srcOff + i * ld + t * vl + c] (i, c <
  /// vl) goes to dst[dstOff + (t * vl + c) * dstLd + i], transposed in
  /// registers with shuffles. Memrefs src, dst (expanded convention), then
  /// srcOff, ld, dstOff, dstLd, blocks. Null: scalar packing.
  using PackFn = void (*)(float *, float *, int64_t, int64_t, int64_t,
                          float *, float *, int64_t, int64_t, int64_t,
                          int64_t, int64_t, int64_t, int64_t, int64_t);
  PackFn packT = nullptr;
  int64_t vl = 0;
};
/// The decode GEMV micro-kernels (MicroKernels.cpp) for gptq layers with
/// 32 / bits codes per word (bits 2, 4, 8): for `rows` rows of x and one
/// panel of nr columns, y[r, 0:nr] += sum over groups g of
/// s[g, :] * (sum over k in g of x[r, k] * q[k, :]) + nzs[g, :] * xs[r, g],
/// nzs = -zero * scale, xs[r, g] = the group's sum of x[r, :]; the codes are
/// streamed once and unpacked in registers (shift, mask, convert). Memrefs
/// codes (i32), scales, nzs, x, xs, y in the expanded convention, then ldq
/// (row stride of codes, scales, nzs and y: N), ldx (K), groups, words per
/// group, and pf: each word row w prefetches codes[w * ldq + pf ...] (the
/// driver passes the next call's columns).
/// Words of codes the integer-dot GEMV sums in int16 before widening.
constexpr int64_t kQDotWords = 4;
struct QGemvMicroKernel {
  using Fn = void (*)(int32_t *, int32_t *, int64_t, int64_t, int64_t,
                      float *, float *, int64_t, int64_t, int64_t, float *,
                      float *, int64_t, int64_t, int64_t, float *, float *,
                      int64_t, int64_t, int64_t, float *, float *, int64_t,
                      int64_t, int64_t, float *, float *, int64_t, int64_t,
                      int64_t, int64_t, int64_t, int64_t, int64_t, int64_t);
  /// fn[bits][rows] for bits in {2, 4, 8} and rows in {1, 2, 4, 8}; null
  /// where not generated.
  Fn fn[9][9] = {};
  int64_t nr = 0;
  /// The same on wideCols[rows] columns per call (a multiple of nr that
  /// divides the 128-column chunk), for full runs of a chunk.
  Fn wide[9][9] = {};
  int64_t wideCols[9] = {};
  /// The integer-dot variants (hasQDotGemv hosts; bits 2 and 4, rows 1 and
  /// 2): x is passed as digit words and xs as (group sum, digit scale)
  /// pairs, laid out by kernels' packDigits; words per group a multiple of
  /// kQDotWords; one block of K (wpg words) per call, the groups argument
  /// counting nr-column panels side by side (a run of columns per call);
  /// null where not generated.
  Fn dot[9][3] = {};
};
void setQGemvMicroKernels(const QGemvMicroKernel &kernels);
const QGemvMicroKernel &qgemvMicroKernels();

/// The f32 GEMV micro-kernels for M below the GEMM tile's (decode), which
/// read the weight where it lies (no packing). Both write a tile `out`
/// (overwritten, [rows][width]) from x rows a[r * lda + k] (k contiguous):
///  - dot[rows] (B stored transposed, W[N, K] of a linear layer):
///    out[r * wrows + j] = sum over k < kv * vl of a[r * lda + k] *
///    b[j * ldb + k], with j < dotRows[rows]; dot1[rows] does one weight row;
///    the last index argument is pf, a prefetch distance in floats along
///    each weight row;
///  - axpy[rows] (B row-major [K, N]): out[r * cols + j] = sum over k < kn
///    of a[r * lda + k] * b[k * ldb + j], j < axpyCols[rows]; axpy1[rows] on
///    vl columns.
/// Memrefs a, b, out (expanded convention), then lda, ldb, kv / kn, pf.
struct F32GemvMicroKernel {
  using Fn = void (*)(float *, float *, int64_t, int64_t, int64_t, float *,
                      float *, int64_t, int64_t, int64_t, float *, float *,
                      int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                      int64_t);
  Fn dot[4] = {}, dot1[4] = {}, axpy[4] = {}, axpy1[4] = {};
  int64_t dotRows[4] = {}, axpyCols[4] = {};
  int64_t vl = 0, maxRows = 0;
};
void setF32GemvMicroKernels(const F32GemvMicroKernel &kernels);
const F32GemvMicroKernel &f32GemvMicroKernel();

/// Process-wide: the micro-kernel the vector family uses (set once, by
/// initVectorKernels in CPURunner.h; the code must outlive every use).
void setGemmMicroKernel(const GemmMicroKernel &kernel);
const GemmMicroKernel &gemmMicroKernel();

/// contractF32 / qlinearF32 on the vector family: activation and weight
/// tiles packed into panels, the micro-kernel on each mr x nr tile, fixed
/// kChunkN-column chunks per thread (bitwise independent of the thread
/// count). m below mr / 2 (decode) runs on the f32 GEMV micro-kernels
/// when W or W^T is contiguous along k or n, else OpenBLAS (also when no
/// micro-kernel is set);
/// vqlinearF32 runs m below mr / 2 (decode) on the GEMV micro-kernels when
/// bits divide 32, there is no act-order and nr divides n.
void vcontractF32(int64_t m, int64_t n, int64_t k, const float *a,
                  int64_t sam, int64_t sak, const float *b, int64_t sbk,
                  int64_t sbn, float *c, int64_t scm, int64_t scn);
void vqlinearF32(int64_t m, int64_t n, int64_t k, unsigned bits,
                 int64_t groupSize, int64_t groups, const float *x,
                 const int32_t *codes, const float *scales,
                 const int32_t *zeros, const int32_t *gIdx, const float *bias,
                 float *y);
} // namespace quant_mlir::kernels

#endif // QUANT_MLIR_RUNTIME_KERNELS_H
