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

using namespace mlir;

void quant_mlir::buildCPULoweringPipeline(OpPassManager &pm,
                                          const CPULoweringOptions &options) {
  const bool kernels = options.kernels != CPUKernels::Loops;
  const bool vector = options.kernels == CPUKernels::Vector;
  // Packed gptq layers go to the fused dequant + matmul kernel first; what
  // it does not cover takes the reference linalg lowering.
  if (kernels)
    pm.addPass(createConvertWQToCPUKernels({/*vector=*/vector}));
  pm.addPass(createConvertWQToLinalg());
  pm.addPass(createConvertElementwiseToLinalgPass());
  // Upstream linalg-fuse-elementwise-ops would fuse RoPE / softmax into the
  // attention matmuls (recomputing them per column); this one keeps them.
  pm.addPass(kernels ? createQuantFuseElementwise()
                          : createLinalgElementwiseOpFusionPass());
  pm.addPass(createCanonicalizerPass());
  if (kernels)
    pm.addPass(createQuantCloneSharedFills());

  bufferization::OneShotBufferizePassOptions bufferizeOptions;
  bufferizeOptions.bufferizeFunctionBoundaries = true;
  bufferizeOptions.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferizeOptions));
  // f32 contractions (wq.linear, attention matmuls) become strided SGEMM
  // calls on the buffers; everything else stays linalg -> loops.
  if (kernels)
    pm.addPass(createConvertLinalgToBLAS({/*minFlops=*/0, /*vector=*/vector}));
  bufferization::BufferDeallocationPipelineOptions deallocOptions;
  bufferization::buildBufferDeallocationPipeline(pm, deallocOptions);
  pm.addPass(createConvertBufferizationToMemRefPass());
  if (kernels)
    pm.addPass(createQuantStridedCopyToLinalg());

  if (kernels)
    pm.addPass(createQuantApproximateMath());
  pm.addPass(createConvertLinalgToLoopsPass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  // LLVM intrinsics first where they exist (the polynomial exp's math.fma
  // must become an FMA instruction, not a call of libm's fmaf); libm for
  // the rest (erf).
  if (kernels)
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
  PassPipelineRegistration<CPULoweringPipelineOptions>(
      "quant-cpu-lowering",
      "Lower tensor-level wq IR (weights as arguments) to the LLVM dialect",
      [](OpPassManager &pm, const CPULoweringPipelineOptions &options) {
        buildCPULoweringPipeline(pm, options.toOptions());
      });
}
