//===- MicroKernels.h - generated vector micro-kernels for the host -*- C++ -*-===//
// The vector kernel family's f32 GEMM micro-kernel: built in MLIR's vector
// dialect with a register tile chosen from the host CPU's features, lowered
// and JIT-compiled for the host CPU (docs/performance-cpu.md).
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_RUNTIME_MICROKERNELS_H
#define QUANT_MLIR_RUNTIME_MICROKERNELS_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>

namespace quant_mlir {
/// What the generator targets: the host CPU (llvm::sys::getHostCPUName),
/// its widest f32 vector (16 lanes with avx512f, 8 with avx2 + fma, else 4)
/// and the register tile (mr rows x nr = 2 vectors columns) that fits its
/// vector registers (32 with AVX-512, 16 otherwise).
struct HostVectorTarget {
  std::string cpu, isa;
  int64_t vectorWidth = 4, mr = 4, nr = 8;
  /// AVX-512 VNNI (vpdpbusd: four u8 x s8 products summed into each int32
  /// lane in one instruction), which the integer-dot GEMV uses.
  bool vnni = false;
  /// Largest row count of the decode GEMV kernels (8 with 32 registers).
  int64_t maxGemvRows = 4;
  /// Largest row count of the f32 GEMV kernels: the M the GEMM tile does
  /// not take (M * 2 < mr, see kernels::vcontractF32).
  int64_t maxF32GemvRows() const { return (mr - 1) / 2; }
};
HostVectorTarget detectHostVectorTarget();

/// Adds `func.func @quant_ukernel_gemm_f32(memref<?xf32> a, memref<?xf32> b,
/// memref<?xf32> c, index cOff, index kc, index ldc)` (see
/// kernels::GemmMicroKernel) to `module`: mr x nr/vectorWidth vector
/// accumulators carried through an scf.for over k, one broadcast FMA per
/// row and vector, C += acc at the end.
void buildGemmMicroKernel(mlir::ModuleOp module, const HostVectorTarget &target);

/// Adds `func.func @quant_ukernel_pack_t_f32` (kernels::GemmMicroKernel::
/// packT): vl x vl blocks of a row-major matrix transposed in registers by
/// log2(vl) rounds of two-source shuffles, one scf.for iteration per block.
void buildPackTransposeKernel(mlir::ModuleOp module,
                              const HostVectorTarget &target);
/// Adds `func.func @quant_ukernel_qgemv_b<bits>_m<rows>` (see
/// kernels::QGemvMicroKernel) for bits dividing 32: per word row, one
/// vector load of codes per nr/vectorWidth lanes, each of the 32 / bits
/// fields extracted with a shift and mask, converted and scaled in
/// registers (q * s + nzs), then one broadcast FMA per row; a few partial
/// accumulators per row break the FMA dependency chain when rows are few.
/// `cols` (a multiple of the vector width) columns per call: the narrow
/// variant takes target.nr, the wide one qgemvWideColumns(target, rows),
/// whose longer contiguous runs per word row stream better. Each word row
/// also prefetches the codes a runtime offset ahead (the next call's).
void buildQGemvMicroKernel(mlir::ModuleOp module,
                           const HostVectorTarget &target, unsigned bits,
                           int64_t rows, int64_t cols);
/// Whether the host gets the integer-dot decode GEMVs below: AVX2 without
/// AVX-512 (vpmaddubsw / vpmaddwd on ymm) or AVX-512 with VNNI (vpdpbusd on
/// zmm). AVX-512 hosts without VNNI keep the float kernel.
bool hasQDotGemv(const HostVectorTarget &target);
/// Adds `func.func @quant_ukernel_qdot_b<bits>_m<rows>_n<cols>` (see
/// kernels::QGemvMicroKernel::dot) for bits 2 and 4: the decode GEMV on
/// integer dot products. x arrives as 24-bit fixed point per row and group,
/// split into three signed bytes; each word's codes become unsigned bytes
/// with a shift and a mask, and vpmaddubsw + vpmaddwd (AVX2) or vpdpbusd
/// (AVX-512 VNNI) sum 4 code x digit products per lane into int32 (exact),
/// instead of a shift, mask, convert and FMA per code. Same arguments as
/// the float kernel except x (i32: the digit words) and xs (pairs: group
/// sum, digit scale). `cols` is target.nr: on AVX2 two int32 and three
/// int16 accumulators per row and vector fill the 16 registers with the
/// codes and digits (32 columns spilled); with VNNI three int32 ones.
void buildQDotGemvMicroKernel(mlir::ModuleOp module,
                              const HostVectorTarget &target, unsigned bits,
                              int64_t rows, int64_t cols);
/// Adds `func.func @quant_ukernel_gemv_t_f32_m<rows>_r<wrows>` (see
/// kernels::F32GemvMicroKernel::dot): rows x wrows vector accumulators, one
/// vector load per weight row and k step, reduced across lanes at the end.
void buildF32GemvDotKernel(mlir::ModuleOp module,
                           const HostVectorTarget &target, int64_t rows,
                           int64_t wrows);
/// Adds `func.func @quant_ukernel_gemv_n_f32_m<rows>_n<cols>` (see
/// kernels::F32GemvMicroKernel::axpy): per k, cols / vectorWidth vector
/// loads of a weight row, one broadcast FMA per row of x and vector.
void buildF32GemvAxpyKernel(mlir::ModuleOp module,
                            const HostVectorTarget &target, int64_t rows,
                            int64_t cols);
/// Weight rows per call of the f32 dot-form GEMV for `rows` rows of x
/// (a power of two: rows x wrows accumulators within half the registers).
int64_t f32GemvWeightRows(const HostVectorTarget &target, int64_t rows);

/// Columns per call of the wide decode GEMV for `rows` rows of x: as many
/// vectors as keep rows x vectors accumulators within half the registers
/// (AVX-512, rows 1: 128 columns), at least target.nr.
int64_t qgemvWideColumns(const HostVectorTarget &target, int64_t rows);

/// Once per process: generates the micro-kernel for the host, lowers it to
/// LLVM, JIT-compiles it with the host CPU and features and registers it
/// (kernels::setGemmMicroKernel, setQGemvMicroKernels). Thread-safe; later calls return the
/// first result.
llvm::Expected<HostVectorTarget> initVectorKernels();
} // namespace quant_mlir

#endif // QUANT_MLIR_RUNTIME_MICROKERNELS_H
