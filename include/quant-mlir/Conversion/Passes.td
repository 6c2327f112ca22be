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

#endif // QUANT_MLIR_CONVERSION_PASSES_TD
