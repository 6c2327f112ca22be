//===- Passes.td - conversion passes ------------------------*- tablegen -*-===//
// Lowerings out of the wq dialect.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_CONVERSION_PASSES_TD
#define QUANT_MLIR_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertWQToLinalg : Pass<"convert-wq-to-linalg", "mlir::ModuleOp"> {
  let summary = "Lower wq.linear, wq.dequantize and wq.quantized_linear to linalg";
  let description = [{
    `wq.linear` becomes a linalg.generic contraction over the [N, K] weight
    (accumulating in f32), plus a broadcast bias add; `wq.dequantize` becomes
    a linalg.generic that unpacks codes in the named packing layout and
    applies scales and zeros; `wq.quantized_linear` is first expanded into
    the two. `wq.weight` references stay: they are bound to archive tensors
    when the module runs.
  }];
  let dependentDialects = [
    "mlir::arith::ArithDialect", "mlir::linalg::LinalgDialect",
    "mlir::tensor::TensorDialect"
  ];
}

def ConvertWQToGPU : Pass<"convert-wq-to-gpu", "mlir::ModuleOp"> {
  let summary = "Lower gpu_v4 wq.quantized_linear to fused dequant GEMV / tensor-core GEMM kernels";
  let description = [{
    Each `wq.quantized_linear` with `#wq.packing<gpu_v4>` codes, f16
    activations, scales and result, static shapes and no act-order becomes a
    `gpu.func` kernel in the `@wq_kernels` gpu.module plus a
    `gpu.launch_func` on the tensors' buffers (bufferization.to_buffer /
    to_tensor): a GEMV (128-bit code loads, f16x2 dequant, warp-shuffle
    K reduction) when M <= `gemv-max-m`, else a tensor-core GEMM (dequantize
    a K-tile into shared memory, nvgpu.ldmatrix + nvgpu.mma.sync m16n8k16,
    m16n8k8 on sm_75) when M is a multiple of 16 and N of 128. Layers the
    kernels do not cover are left for the CPU path with a warning.
    See docs/codegen.md.
  }];
  let options = [
    Option<"gemvMaxM", "gemv-max-m", "int64_t", "8",
           "Largest M (rows of x) that uses the GEMV kernel">,
    Option<"chip", "chip", "std::string", "\"sm_80\"",
           "Target SM (sm_75 .. sm_90): selects the mma shape">,
    Option<"f16Partials", "f16-partials", "bool", "true",
           "GEMV: sum up to 32 products in f16x2 before the f32 accumulator">,
  ];
  let dependentDialects = [
    "mlir::gpu::GPUDialect", "mlir::nvgpu::NVGPUDialect",
    "mlir::vector::VectorDialect", "mlir::memref::MemRefDialect",
    "mlir::scf::SCFDialect", "mlir::arith::ArithDialect",
    "mlir::bufferization::BufferizationDialect", "mlir::tensor::TensorDialect"
  ];
}

#endif // QUANT_MLIR_CONVERSION_PASSES_TD
