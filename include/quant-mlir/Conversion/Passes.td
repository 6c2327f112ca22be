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

def ConvertLinalgToBLAS : Pass<"convert-linalg-to-blas", "mlir::ModuleOp"> {
  let summary = "Rewrite f32 linalg contractions on buffers into calls of the runtime's strided SGEMM";
  let description = [{
    Runs after bufferization. Every linalg op on memrefs that is an f32
    contraction (`linalg.matmul`, `linalg.batch_matmul`, or a
    `linalg.generic` with a mul-add body and projected-permutation maps, as
    `convert-wq-to-linalg` emits for `wq.linear` and `quant-import` for ONNX
    MatMul) with at most two batch dims, at most two M dims, one N and one K
    dim becomes `func.call @quant_contract_f32(...)`: loop sizes, each
    operand's aligned pointer, offset and per-loop-dim strides (0 where a dim
    does not index the operand), all as `index`. The runtime
    (lib/Runtime/Kernels.cpp) accumulates C += A * B with cblas_sgemm
    (transposes and leading dimensions picked from the strides; operands
    that fit no BLAS layout are packed). See docs/performance-cpu.md.
  }];
  let options = [
    Option<"minFlops", "min-flops", "int64_t", "0",
           "Leave contractions whose static M*N*K is below this as loops "
           "(dynamic sizes always convert; the runtime picks loops for tiny ones)">,
    Option<"vector", "vector", "bool", "false",
           "Call quant_vcontract_f32 (the generated vector micro-kernels) "
           "instead of quant_contract_f32 (OpenBLAS); same arguments">,
  ];
  let dependentDialects = [
    "mlir::func::FuncDialect", "mlir::memref::MemRefDialect",
    "mlir::arith::ArithDialect"
  ];
}

def ConvertWQToCPUKernels : Pass<"convert-wq-to-cpu-kernels", "mlir::ModuleOp"> {
  let summary = "Lower f32 gptq wq.quantized_linear to the fused dequant+SGEMM runtime kernel";
  let description = [{
    Runs before `convert-wq-to-linalg`, on tensors. Each
    `wq.quantized_linear` with `#wq.packing<gptq>` codes and f32 input,
    scales, bias and result becomes bufferization.to_buffer of its operands,
    an output memref.alloc, `func.call @quant_qlinear_f32(...)` (sizes,
    scheme and aligned pointers as `index`) and bufferization.to_tensor.
    The kernel dequantizes a block of K rows of W^T into an L2-sized f32
    buffer and multiplies it with cblas_sgemm, so the full [N, K] float
    weight is never materialized. Other packings and types are left for
    `convert-wq-to-linalg` (the reference lowering).
  }];
  let options = [
    Option<"vector", "vector", "bool", "false",
           "Set the kernel's vector flag: the generated vector micro-kernels "
           "(dequantizing in registers) instead of OpenBLAS">,
  ];
  let dependentDialects = [
    "mlir::func::FuncDialect", "mlir::memref::MemRefDialect",
    "mlir::arith::ArithDialect", "mlir::bufferization::BufferizationDialect",
    "mlir::tensor::TensorDialect"
  ];
}

def QuantFuseElementwise : Pass<"quant-fuse-elementwise", "mlir::ModuleOp"> {
  let summary = "Elementwise linalg fusion that never recomputes producers or hides contractions";
  let description = [{
    Upstream's elementwise fusion and reshape-by-expansion patterns with a
    control function that fuses a single-use producer only into a consumer
    that indexes it with a permutation of all its loops (no recomputation
    under broadcasts) and never fuses into or out of contractions, so
    `convert-linalg-to-blas` still sees plain mul-add contractions.
  }];
  let dependentDialects = [
    "mlir::linalg::LinalgDialect", "mlir::tensor::TensorDialect",
    "mlir::affine::AffineDialect", "mlir::arith::ArithDialect"
  ];
}

def QuantApproximateMath : Pass<"quant-approximate-math", "mlir::ModuleOp"> {
  let summary = "Replace f32 math.exp with upstream's inline polynomial approximation";
  let description = [{
    libm's expf is a call per element and takes a slow path (errno) on the
    -inf entries of a causal attention mask; the polynomial (MLIR's
    ExpApproximation, a few ulp) is inline and vectorizable.
  }];
  let dependentDialects = [
    "mlir::arith::ArithDialect", "mlir::math::MathDialect",
    "mlir::vector::VectorDialect"
  ];
}

def QuantCloneSharedFills : Pass<"quant-clone-shared-fills", "mlir::ModuleOp"> {
  let summary = "Give every user of a shared tensor linalg.fill its own fill";
  let description = [{
    CSE merges the identical `tensor.empty` + `linalg.fill` that initialise
    each layer's accumulators (the attention scores and outputs of every
    layer share one), and one-shot bufferization then keeps the filled
    buffer intact by copying it before each in-place write: eleven 3 MB
    copies per 100M-model forward. Cloning the fill (and its empty tensor)
    per use before bufferization lets each accumulator be filled in place.
    Only fills of `tensor.empty` are cloned, so no real data is duplicated.
  }];
  let dependentDialects = [
    "mlir::linalg::LinalgDialect", "mlir::tensor::TensorDialect"
  ];
}

def QuantStridedCopyToLinalg : Pass<"quant-strided-copy-to-linalg", "mlir::ModuleOp"> {
  let summary = "Rewrite memref.copy between non-contiguous memrefs as linalg.copy";
  let description = [{
    finalize-memref-to-llvm lowers a memref.copy whose operands are not
    both contiguous into a call of the runtime's generic `memrefCopy`,
    which walks the index space one element (one memcpy) at a time; RoPE's
    rotate_half concatenation copies each layer's q and k that way. As a
    linalg.copy it becomes loops that LLVM vectorizes along the contiguous
    innermost dim. Copies of contiguous memrefs stay (they become memcpy).
  }];
  let dependentDialects = ["mlir::linalg::LinalgDialect"];
}

#endif // QUANT_MLIR_CONVERSION_PASSES_TD
