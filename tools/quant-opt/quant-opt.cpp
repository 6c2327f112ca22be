//===- quant-opt.cpp - the quant-mlir optimizer driver ----------------------===//
// Upstream dialects and passes plus the wq dialect and every quant-mlir pass.
//===----------------------------------------------------------------------===//

#include "quant-mlir/InitAllDialects.h"
#include "quant-mlir/Conversion/Passes.h"
#include "quant-mlir/Conversion/WQToGPU/WQToGPU.h"
#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h"
#include "quant-mlir/Pipelines/Pipelines.h"
#include "quant-mlir/Quant/BLASKernels.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  quant_mlir::quant::configureBLASKernels();
  mlir::registerAllPasses();
  quant_mlir::wq::registerWQPasses();
  quant_mlir::registerQuantMLIRConversionPasses();
  quant_mlir::registerPipelines();
  quant_mlir::wqgpu::registerGPUCodegenPipeline();

  mlir::DialectRegistry registry;
  quant_mlir::registerAllDialects(registry);
  quant_mlir::wqgpu::registerGPUCodegenDialects(registry);
  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "quant-mlir optimizer driver\n", registry));
}
