//===- Pipelines.h - named lowering pipelines --------------------*- C++ -*-===//
// The pass pipelines tools share: tensor-level wq IR down to the LLVM dialect.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_PIPELINES_PIPELINES_H
#define QUANT_MLIR_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"

namespace quant_mlir {
/// The kernel family the CPU lowering sends contractions and packed layers
/// to (docs/performance-cpu.md).
enum class CPUKernels {
  /// f32 contractions -> quant_contract_f32 (strided cblas_sgemm); gptq
  /// wq.quantized_linear -> quant_qlinear_f32 (fused dequant + SGEMM).
  Blas,
  /// The same calls with the vector flag: the runtime drives the compiler's
  /// own vector-dialect micro-kernels, JIT-compiled for the host CPU
  /// (lib/Runtime/MicroKernels.cpp), with OpenBLAS only as fallback.
  Vector,
  /// No runtime kernels: the reference lowering (wq -> linalg -> loops,
  /// upstream elementwise fusion, libm exp), for comparisons.
  Loops,
};

/// Options of the CPU lowering. The library default stays blas: the
/// calibration in quant-compile and the Driver API take it, and switching
/// would change their statistics in the last bits; quant-run and the
/// quant-cpu-lowering pipeline option default to vector (faster on every
/// measured shape, bench/cpu_kernels and bench/forward).
struct CPULoweringOptions {
  CPUKernels kernels = CPUKernels::Blas;
};

/// `quant-cpu-lowering{kernels=blas|vector|loops}` for quant-opt.
struct CPULoweringPipelineOptions
    : public mlir::PassPipelineOptions<CPULoweringPipelineOptions> {
  Option<CPUKernels> kernels{
      *this, "kernels", llvm::cl::desc("Kernel family for contractions and "
                                       "packed layers"),
      llvm::cl::init(CPUKernels::Vector),
      llvm::cl::values(
          clEnumValN(CPUKernels::Blas, "blas", "runtime kernels on OpenBLAS"),
          clEnumValN(CPUKernels::Vector, "vector",
                     "runtime kernels on the generated vector micro-kernels"),
          clEnumValN(CPUKernels::Loops, "loops",
                     "reference lowering, no runtime kernels"))};

  CPULoweringOptions toOptions() const { return {kernels}; }
};

/// wq + tensor-level upstream IR (after wq-weights-to-arguments) to the LLVM
/// dialect for the host CPU: wq -> linalg, bufferize (identity layouts at
/// function boundaries), free intermediates, loops, LLVM. Calls into libm for
/// math ops without an LLVM intrinsic (erf).
void buildCPULoweringPipeline(mlir::OpPassManager &pm,
                              const CPULoweringOptions &options = {});

/// Registers `quant-cpu-lowering` for quant-opt.
void registerPipelines();
} // namespace quant_mlir

#endif // QUANT_MLIR_PIPELINES_PIPELINES_H
