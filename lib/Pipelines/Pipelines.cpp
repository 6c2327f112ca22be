//===- Pipelines.cpp - named lowering pipelines -----------------------------===//
// One definition of the CPU lowering, used by quant-opt, quant-run and tests.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Pipelines/Pipelines.h"
#include "quant-mlir/Conversion/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

#include <cstdlib>
#include <string>

using namespace mlir;

quant_mlir::CPULoweringOptions quant_mlir::CPULoweringOptions::fromEnv() {
  CPULoweringOptions options;
  if (const char *v = std::getenv("QUANT_MLIR_CPU_KERNELS"))
    options.blas = options.fusedQuantized = std::string(v) != "0";
  return options;
}

void quant_mlir::buildCPULoweringPipeline(OpPassManager &pm) {
  buildCPULoweringPipeline(pm, CPULoweringOptions::fromEnv());
}

void quant_mlir::buildCPULoweringPipeline(OpPassManager &pm,
                                          const CPULoweringOptions &options) {
  // Packed gptq layers go to the fused dequant + SGEMM kernel first; what it
  // does not cover takes the reference linalg lowering.
  if (options.fusedQuantized)
    pm.addPass(createConvertWQToCPUKernels());
  pm.addPass(createConvertWQToLinalg());
  pm.addPass(createConvertElementwiseToLinalgPass());
  // Upstream linalg-fuse-elementwise-ops would fuse RoPE / softmax into the
  // attention matmuls (recomputing them per column); this one keeps them.
  pm.addPass(options.blas ? createQuantFuseElementwise()
                          : createLinalgElementwiseOpFusionPass());
  pm.addPass(createCanonicalizerPass());

  bufferization::OneShotBufferizePassOptions bufferizeOptions;
  bufferizeOptions.bufferizeFunctionBoundaries = true;
  bufferizeOptions.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferizeOptions));
  // f32 contractions (wq.linear, attention matmuls) become strided SGEMM
  // calls on the buffers; everything else stays linalg -> loops.
  if (options.blas)
    pm.addPass(createConvertLinalgToBLAS());
  bufferization::BufferDeallocationPipelineOptions deallocOptions;
  bufferization::buildBufferDeallocationPipeline(pm, deallocOptions);
  pm.addPass(createConvertBufferizationToMemRefPass());

  if (options.blas)
    pm.addPass(createQuantApproximateMath());
  pm.addPass(createConvertLinalgToLoopsPass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  // LLVM intrinsics first where they exist (the polynomial exp's math.fma
  // must become an FMA instruction, not a call of libm's fmaf); libm for
  // the rest (erf).
  if (options.blas)
    pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createConvertMathToLibmPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
}

void quant_mlir::registerPipelines() {
  PassPipelineRegistration<>(
      "quant-cpu-lowering",
      "Lower tensor-level wq IR (weights as arguments) to the LLVM dialect",
      [](OpPassManager &pm) { buildCPULoweringPipeline(pm); });
}
