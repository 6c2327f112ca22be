//===- WQToGPU.h - wq.quantized_linear to NVPTX kernels ----------*- C++ -*-===//
// The kernel generators behind `convert-wq-to-gpu` and the device-side
// `quant-gpu-codegen` pipeline (gpu.module -> PTX). docs/codegen.md.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_CONVERSION_WQTOGPU_WQTOGPU_H
#define QUANT_MLIR_CONVERSION_WQTOGPU_WQTOGPU_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"

#include <string>

namespace quant_mlir::wqgpu {

/// One fused dequant kernel: y[M, N] = x[M, K] W^T (+ bias) on gpu_v4 codes,
/// f16 activations/scales/result, f32 accumulation.
struct KernelConfig {
  enum class Kind { GEMV, GEMM };
  Kind kind = Kind::GEMV;
  int64_t m = 1, k = 0, n = 0;
  unsigned bits = 4;
  /// Effective group size: K for per-channel schemes.
  int64_t groupSize = 128;
  bool zeros = false, bias = false;
  /// GEMV: sum runs of up to 32 products in f16x2 (fma.rn.f16x2) before
  /// adding them to the f32 accumulator; false converts every product to f32.
  bool f16Partials = true;
  /// Compute capability * 10 + minor (75, 80, 86, 87, 89, 90): picks the
  /// mma shape (m16n8k8 on sm_75, m16n8k16 from sm_80).
  int sm = 80;
  /// GEMM rows per block (16, 32 or 64).
  int64_t blockM = 64;

  std::string name() const;
  /// Launch geometry (blocks x threads, 1-D threads).
  int64_t gridX() const, gridY() const, blockX() const;
  /// Empty if the kernels support this configuration, else why not.
  std::string check() const;
};

/// Kernel arguments, in order: x [M,K] f16, codes [K*bits/128, 4N] i32,
/// scales [groups, N] f16, zeros [groups, N*bits/32] i32 (if zeros),
/// bias [N] f16 (if bias), y [M, N] f16. Builds a `gpu.func ... kernel` at
/// the builder's insertion point (inside a gpu.module).
mlir::Operation *buildKernel(mlir::OpBuilder &builder, mlir::Location loc,
                             const KernelConfig &config);

/// Parses "sm_86" -> 86; 0 if malformed.
int parseChip(llvm::StringRef chip);

struct GPUCodegenOptions
    : public mlir::PassPipelineOptions<GPUCodegenOptions> {
  Option<std::string> chip{*this, "chip",
                           llvm::cl::desc("Target SM, e.g. sm_80"),
                           llvm::cl::init("sm_80")};
  Option<std::string> features{
      *this, "features",
      llvm::cl::desc("PTX features (default +ptx80, enough for sm_75..sm_90)"),
      llvm::cl::init("+ptx80")};
  Option<int> optLevel{*this, "opt-level",
                       llvm::cl::desc("LLVM optimization level"),
                       llvm::cl::init(3)};
  Option<std::string> format{
      *this, "format",
      llvm::cl::desc("gpu-module-to-binary format: isa (PTX text), bin "
                     "(cubin, needs ptxas at compile time), fatbin"),
      llvm::cl::init("isa")};
};

/// Device side only: attaches #nvvm.target, lowers every gpu.module to NVVM
/// (bare-pointer kernel arguments) and serializes it with
/// gpu-module-to-binary. Host code is left alone.
void buildGPUCodegenPipeline(mlir::OpPassManager &pm,
                             const GPUCodegenOptions &options);
/// Registers `quant-gpu-codegen`.
void registerGPUCodegenPipeline();
/// What gpu-module-to-binary needs in a registry: the NVVM target attribute
/// and the LLVM IR translations of builtin/llvm/nvvm/gpu.
void registerGPUCodegenDialects(mlir::DialectRegistry &registry);

} // namespace quant_mlir::wqgpu

#endif // QUANT_MLIR_CONVERSION_WQTOGPU_WQTOGPU_H
