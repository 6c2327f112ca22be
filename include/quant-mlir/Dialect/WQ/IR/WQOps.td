//===- WQOps.td - wq operations -----------------------------*- tablegen -*-===//
// Weight references, float and quantized linear layers, and dequantization.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_DIALECT_WQ_IR_WQOPS_TD
#define QUANT_MLIR_DIALECT_WQ_IR_WQOPS_TD

include "quant-mlir/Dialect/WQ/IR/WQ.td"
include "quant-mlir/Dialect/WQ/IR/WQAttrs.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/IR/BuiltinTypes.td"

def WQ_ArchiveElementType : AnyTypeOf<[F64, F32, F16, BF16, I64, I32, I8, UI8]>;
def WQ_FloatTensor : RankedTensorOf<[F32, F16, BF16]>;

def WQ_WeightOp : WQ_Op<"weight", [Pure]> {
  let summary = "a tensor of the module's weight archive, by name";
  let description = [{
    ```mlir
    %w = wq.weight "model.layers.0.mlp.up_proj.weight" : tensor<11008x4096xf16>
    ```
    The bytes stay in the safetensors archive named by the enclosing module's
    `wq.archive` attribute; tools mmap them. The type must be static and its
    element type one the archive stores. Pure: two references to the same
    name are the same value (tied embeddings CSE into one).
  }];
  let arguments = (ins StrAttr:$name);
  let results = (outs RankedTensorOf<[WQ_ArchiveElementType]>:$result);
  let assemblyFormat = "$name attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def WQ_LinearOp : WQ_Op<"linear", [Pure]> {
  let summary = "y = x W^T + b, a linear layer before quantization";
  let description = [{
    `input` is `[..., K]`, `weight` is `[N, K]` (out_features x in_features,
    torch.nn.Linear's layout), `bias` is `[N]`; the result is `[..., N]`.
    `name` is the layer's module path (`model.layers.0.mlp.up_proj`); `stats`
    references its calibration statistics; `scheme` is the scheme a
    quantization pass is asked to apply (set by `wq-assign-scheme`).
  }];
  let arguments = (ins WQ_FloatTensor:$input, WQ_FloatTensor:$weight,
                       Optional<WQ_FloatTensor>:$bias,
                       OptionalAttr<StrAttr>:$name,
                       OptionalAttr<WQ_StatsAttr>:$stats,
                       OptionalAttr<WQ_SchemeAttr>:$scheme);
  let results = (outs WQ_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight (`bias` $bias^)? attr-dict `:`
    type($input) `,` type($weight) (`,` type($bias)^)? `->` type($result)
  }];
  let hasVerifier = 1;
}

def WQ_QuantizedLinearOp : WQ_Op<"quantized_linear",
    [Pure, AttrSizedOperandSegments]> {
  let summary = "a linear layer on packed integer weights";
  let description = [{
    Equal to `wq.linear(input, wq.dequantize(codes, scales, zeros, g_idx))`
    with optional bias. Shapes follow the `packing` layout (see
    `#wq.packing`): for `gptq`, codes `[K*bits/32, N] i32`, scales
    `[groups, N]`, zeros `[groups, N*bits/32] i32` (zero-point schemes only),
    g_idx `[K] i32` (act-order only), bias `[N]`.
  }];
  let arguments = (ins WQ_FloatTensor:$input,
                       RankedTensorOf<[I32]>:$codes,
                       WQ_FloatTensor:$scales,
                       Optional<RankedTensorOf<[I32]>>:$zeros,
                       Optional<RankedTensorOf<[I32]>>:$g_idx,
                       Optional<WQ_FloatTensor>:$bias,
                       WQ_SchemeAttr:$scheme,
                       WQ_PackingAttr:$packing,
                       OptionalAttr<StrAttr>:$name);
  let results = (outs WQ_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $codes `,` $scales (`zeros` $zeros^)? (`g_idx` $g_idx^)?
    (`bias` $bias^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def WQ_DequantizeOp : WQ_Op<"dequantize",
    [Pure, AttrSizedOperandSegments]> {
  let summary = "unpack and dequantize codes into a float [N, K] weight";
  let description = [{
    w[n, k] = scales[g, n] * (q[k, n] - zero[g, n]) with g = g_idx[k] under
    act-order, else k / group_size; the result is in wq.linear's `[N, K]`
    weight layout, so `wq.linear(x, wq.dequantize(...))` is the reference
    semantics of `wq.quantized_linear`.
  }];
  let arguments = (ins RankedTensorOf<[I32]>:$codes,
                       WQ_FloatTensor:$scales,
                       Optional<RankedTensorOf<[I32]>>:$zeros,
                       Optional<RankedTensorOf<[I32]>>:$g_idx,
                       WQ_SchemeAttr:$scheme,
                       WQ_PackingAttr:$packing);
  let results = (outs WQ_FloatTensor:$result);
  let assemblyFormat = [{
    $codes `,` $scales (`zeros` $zeros^)? (`g_idx` $g_idx^)? attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

#endif // QUANT_MLIR_DIALECT_WQ_IR_WQOPS_TD
