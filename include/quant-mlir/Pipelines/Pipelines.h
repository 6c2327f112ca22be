//===- Pipelines.h - named lowering pipelines --------------------*- C++ -*-===//
// The pass pipelines tools share: tensor-level wq IR down to the LLVM dialect.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_PIPELINES_PIPELINES_H
#define QUANT_MLIR_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"

namespace quant_mlir {
/// wq + tensor-level upstream IR (after wq-weights-to-arguments) to the LLVM
/// dialect for the host CPU: wq -> linalg, bufferize (identity layouts at
/// function boundaries), free intermediates, loops, LLVM. Calls into libm for
/// math ops without an LLVM intrinsic (erf).
/// With the default options from the environment (CPULoweringOptions::fromEnv).
void buildCPULoweringPipeline(mlir::OpPassManager &pm);

/// Which runtime kernels the CPU lowering calls (docs/performance-cpu.md).
struct CPULoweringOptions {
  /// f32 contractions -> quant_contract_f32 (cblas_sgemm), after bufferization.
  bool blas = true;
  /// gptq wq.quantized_linear -> quant_qlinear_f32 (fused dequant + SGEMM).
  bool fusedQuantized = true;
  /// Defaults, except QUANT_MLIR_CPU_KERNELS=0 turns both off (the scalar
  /// reference lowering, for comparisons).
  static CPULoweringOptions fromEnv();
};
void buildCPULoweringPipeline(mlir::OpPassManager &pm,
                              const CPULoweringOptions &options);

/// Registers `quant-cpu-lowering` for quant-opt.
void registerPipelines();
} // namespace quant_mlir

#endif // QUANT_MLIR_PIPELINES_PIPELINES_H
