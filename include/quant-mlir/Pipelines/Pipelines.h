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
void buildCPULoweringPipeline(mlir::OpPassManager &pm);

/// Registers `quant-cpu-lowering` for quant-opt.
void registerPipelines();
} // namespace quant_mlir

#endif // QUANT_MLIR_PIPELINES_PIPELINES_H
