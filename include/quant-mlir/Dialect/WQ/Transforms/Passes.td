//===- Passes.td - wq transformation passes -----------------*- tablegen -*-===//
// Passes that rewrite wq IR in place (scheme assignment, decomposition).
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_DIALECT_WQ_TRANSFORMS_PASSES_TD
#define QUANT_MLIR_DIALECT_WQ_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def WQAssignScheme : Pass<"wq-assign-scheme", "mlir::ModuleOp"> {
  let summary = "Choose each wq.linear's quantization scheme, with per-module overrides";
  let description = [{
    Sets the `scheme` attribute of every `wq.linear` from the options. Layers
    whose `name` matches a `skip` glob (by default lm_head and embeddings)
    get no scheme and stay in float. `overrides` entries have the form
    `GLOB:key=value[:key=value...]` with keys `bits`, `group-size`,
    `zero-point` (0/1), `act-order` (0/1) or the bare key `skip`; later
    entries win. An invalid resulting scheme is an error naming the layer.
  }];
  let options = [
    Option<"bits", "bits", "unsigned", "4", "Bits per weight: 2, 3, 4 or 8">,
    Option<"groupSize", "group-size", "int64_t", "128",
           "Input channels per group: 32, 64, 128, 256, or -1 for per-channel">,
    Option<"zeroPoint", "zero-point", "bool", "false",
           "Asymmetric quantization with a stored zero point per group">,
    Option<"actOrder", "act-order", "bool", "false",
           "Quantize columns in order of decreasing Hessian diagonal (desc_act)">,
    ListOption<"skip", "skip", "std::string",
               "Globs of layer names left in float (default: lm_head, embeddings)">,
    ListOption<"overrides", "overrides", "std::string",
               "Per-module overrides: GLOB:key=value[:key=value]">,
  ];
  let dependentDialects = [];
}

def WQExpandQuantizedLinear
    : Pass<"wq-expand-quantized-linear", "mlir::ModuleOp"> {
  let summary = "Rewrite wq.quantized_linear as wq.dequantize + wq.linear";
  let description = [{
    The reference semantics of a quantized layer, used by the CPU lowering
    and by fake-quant evaluation.
  }];
}

def WQWeightsToArguments : Pass<"wq-weights-to-arguments", "mlir::ModuleOp"> {
  let summary = "Turn wq.weight references into function arguments";
  let description = [{
    Each distinct archive tensor a function references becomes a new trailing
    argument carrying `{wq.weight = "name"}`, so the compiled code holds no
    weight bytes and the runner binds the mmapped archive tensors at call
    time (zero copy). Functions with wq.weight that are called from elsewhere
    are rejected: inline them first.
  }];
}

def WQInstrumentCalibration
    : Pass<"wq-instrument-calibration", "mlir::ModuleOp"> {
  let summary = "Record the input of every wq.linear through a runtime hook";
  let description = [{
    Before each named `wq.linear`, the input is flattened to `[rows, K]`,
    converted to f32 and passed to the external function
    `wq_calib_record(layer: i64, x: tensor<?x?xf32>)`, which the runner
    provides (it accumulates H = 2/n sum x x^T in float64, mean |x| and a
    seeded sample of rows). The module attribute `wq.calib_layers` lists the
    layer names by index. Layers without a name are an error.
  }];
  let dependentDialects = ["mlir::func::FuncDialect",
                           "mlir::tensor::TensorDialect",
                           "mlir::arith::ArithDialect"];
}

def WQOutlineBlocks : Pass<"wq-outline-blocks", "mlir::ModuleOp"> {
  let summary = "Split a decoder's entry function into a prologue, one function per transformer block, and an epilogue";
  let description = [{
    Makes each transformer block a function that runs alone on given input
    activations (for block-by-block calibration: GPTQ's true-sequential mode
    and per-block searches). The entry function's body becomes calls:

    ```mlir
    %p:3 = call @main.prologue(%ids)        // -> h0 and side values
    %h1 = call @main.block0(%p#0, %p#1, %p#2) // h -> h'
    ...
    %logits = call @main.epilogue(%hL, %p#1, %p#2)
    ```

    Blocks are found from the archive names of `wq.weight` references: a
    name's first all-digit component is its layer ("model.layers.3.mlp..."
    is layer 3). Block b ends at the nearest common post-dominator (in the
    def-use graph, towards the return) of all uses of layer b's weights: the
    residual-stream value after the block. Block 0 starts at the earliest
    weight-free value of the residual stream's type that layer 0's ops use
    (the embedding). Values computed before block 0 that blocks also use
    (attention mask, rotary tables, dynamic sizes) are returned by the
    prologue and passed to every stage ("side values"; scalars travel as 0-d
    tensors). Constants, `wq.weight`, `tensor.empty` and `linalg.fill` are
    re-created in each stage that uses them. A graph that does not split this
    way (a value of one block used by a later block other than through the
    residual stream, outputs computed inside blocks) is an error naming the
    ops. The module attribute `wq.blocks` lists the stage functions in order.
  }];
  let options = [
    Option<"entry", "func", "std::string", "\"\"",
           "Entry function (default: the only public function)">,
  ];
  let dependentDialects = ["mlir::func::FuncDialect",
                           "mlir::tensor::TensorDialect",
                           "mlir::arith::ArithDialect"];
}

def WQPack : Pass<"wq-pack", "mlir::ModuleOp"> {
  let summary = "Repack gptq codes into a kernel layout (gpu_v4)";
  let description = [{
    Rewrites every `wq.quantized_linear` / `wq.dequantize` whose codes are
    in the canonical `gptq` layout into `layout` (only `gpu_v4` today, see
    docs/codegen.md). Codes given as `arith.constant` are repacked in the IR.
    Codes that are `wq.weight "name"` references are read from the module's
    archive (resolved against `base-dir`), repacked with
    `quant_mlir::gpupack::gptqToGPUV4` and stored as `name.gpu_v4` in a new
    archive `output` that also holds every tensor of the old one; it is
    written atomically and the module's `wq.archive` is set to `output`.
    Scales, zeros and g_idx are shared with gptq and are not touched. Layers
    the layout cannot hold (K * bits not a multiple of 128) stay in gptq with
    a warning.
  }];
  let options = [
    Option<"layout", "layout", "std::string", "\"gpu_v4\"",
           "Target packing: gpu_v4">,
    Option<"output", "output", "std::string", "\"\"",
           "Archive to write repacked archive weights to (required when "
           "codes are wq.weight references)">,
    Option<"baseDir", "base-dir", "std::string", "\"\"",
           "Directory that relative archive paths are resolved against">,
  ];
  let dependentDialects = ["mlir::arith::ArithDialect"];
}

defvar WQQuantizeOptions = [
  Option<"bits", "bits", "unsigned", "4", "Bits per weight: 2, 3, 4 or 8">,
  Option<"groupSize", "group-size", "int64_t", "128",
         "Input channels per group: 32, 64, 128, 256, or -1 for per-channel">,
  Option<"zeroPoint", "zero-point", "bool", "false",
         "Asymmetric quantization with a stored zero point per group">,
  Option<"descAct", "desc-act", "bool", "false",
         "Act-order: quantize columns by decreasing Hessian diagonal, record g_idx">,
  ListOption<"skip", "skip", "std::string",
             "Globs of layer names left in float (default: lm_head, embeddings)">,
  ListOption<"overrides", "overrides", "std::string",
             "Per-module overrides: GLOB:key=value[:key=value] (bits, group-size, zero-point, act-order, skip)">,
  Option<"output", "output", "std::string", "\"\"",
         "Weight archive to write (required); becomes the module's wq.archive">,
  Option<"baseDir", "base-dir", "std::string", "\"\"",
         "Directory that relative archive paths are resolved against">,
  Option<"fakeQuant", "fake-quant", "bool", "false",
         "Write dequantized float weights instead of packed codes (research)">,
  Option<"scaleType", "scale-dtype", "std::string", "\"auto\"",
         "Scale dtype: f16, bf16, f32, or auto (the weight's)">,
  Option<"report", "report", "std::string", "\"\"",
         "Write a per-layer error table (CSV) here">,
];

def WQRTN : Pass<"wq-rtn", "mlir::ModuleOp"> {
  let summary = "Round-to-nearest quantization of every selected wq.linear";
  let description = [{
    Rewrites each selected `wq.linear` into `wq.quantized_linear` on gptq-
    packed codes, scales, zeros (zero-point) and g_idx (act-order), written
    with every untouched tensor to the `output` archive. A layer's own
    `scheme` attribute (from wq-assign-scheme) wins over the options. With
    `fake-quant` the IR keeps `wq.linear` and the archive holds the
    dequantized weights. With `custom=NAME` each layer is quantized by the
    quantizer registered under NAME (quant::registerCustomQuantizer, e.g. a
    Python function through quant_mlir.register_quantizer), given the
    layer's statistics when the module has them; its codes are checked and
    packed like RTN's.
  }];
  let options = WQQuantizeOptions # [
    Option<"custom", "custom", "std::string", "\"\"",
           "Quantize with the custom quantizer registered under this name">,
  ];
}

def WQGPTQ : Pass<"wq-gptq", "mlir::ModuleOp"> {
  let summary = "GPTQ quantization (arXiv 2210.17323) of every selected wq.linear";
  let description = [{
    Like wq-rtn, with the error feedback of GPTQ driven by each layer's
    Hessian from its `#wq.stats` (the module's `wq.stats_archive`, written by
    `quant-run --calibrate`). A layer without statistics is an error.
  }];
  let options = WQQuantizeOptions # [
    Option<"dampPercent", "damp-percent", "double", "0.01",
           "Dampening: damp-percent * mean(diag H) is added to diag H">,
    Option<"blockSize", "block-size", "int64_t", "128",
           "Columns per lazy batch update">,
    Option<"staticGroups", "static-groups", "bool", "false",
           "Compute every group's scale and zero up front on the original weights">,
    Option<"trueSequential", "true-sequential", "bool", "false",
           "The statistics must have been recorded with this quantization in "
           "the loop (quant-compile --true-sequential: blocks in order, each "
           "block's inputs from the quantized blocks before it, and within a "
           "block each group of linears sharing an input after the groups "
           "before it); checked against their metadata">,
    Option<"precomputed", "precomputed", "std::string", "\"\"",
           "GPTQ results of the calibration loop (quant-compile's quantized "
           "block inputs), relative to base-dir: a layer whose entry has this "
           "pass's options and scheme and the same Hessian and weight bytes "
           "(xxh3) takes it instead of running GPTQ again; others run GPTQ">,
  ];
}


def WQAWQ : Pass<"wq-awq", "mlir::ModuleOp"> {
  let summary = "AWQ (arXiv 2306.00978) as AutoAWQ runs it: scale search, folding, clip search, quantization";
  let description = [{
    Finds the scaling groups in the IR: the linears that share one input
    (q, k, v; gate, up; c_attn; query_key_value; ...) after a norm whose
    weight (and bias) is a 1-D `wq.weight`, `o_proj` after `v_proj` when
    their shapes match (not under GQA), `down_proj` after the product with
    `up_proj`, and a linear after an element-wise activation of another
    linear (GELU -> c_proj / dense_4h_to_h), where a per-channel division
    by the scales is inserted (AutoAWQ's ScaledActivation). For each group
    the per-input-channel scales s are searched on the statistics
    (`#wq.stats`: mean |x| and the Hessian; docs/awq.md), the balanced
    layers' columns are multiplied by s and s is folded into the norm's
    weight and bias or the preceding linear's rows and bias, so the float
    function is unchanged. Then (mode gemm/fake) each layer's weights are
    clipped per row and group (clip search on the sampled input rows; not
    for q/k) and quantized with AutoAWQ's quantizer, or with GPTQ on the
    Hessians of the scaled model (gptq=1, `--method awq+gptq`). mode=scale
    writes the scaled float model only.
  }];
  let options = [
    Option<"bits", "bits", "unsigned", "4", "Bits per weight: 2, 3, 4 or 8">,
    Option<"groupSize", "group-size", "int64_t", "128",
           "Input channels per group: 32, 64, 128, 256, or -1 for per-channel">,
    Option<"zeroPoint", "zero-point", "bool", "true",
           "Asymmetric quantization with a zero point per group (AutoAWQ's default)">,
    Option<"descAct", "desc-act", "bool", "false",
           "Act-order for the GPTQ step (gptq=1)">,
    ListOption<"skip", "skip", "std::string",
               "Globs of layer names left in float (default: lm_head, embeddings)">,
    ListOption<"overrides", "overrides", "std::string",
               "Per-module overrides: GLOB:key=value[:key=value]">,
    Option<"output", "output", "std::string", "\"\"",
           "Weight archive to write (required); becomes the module's wq.archive">,
    Option<"baseDir", "base-dir", "std::string", "\"\"",
           "Directory that relative archive paths are resolved against">,
    Option<"fakeQuant", "fake-quant", "bool", "false",
           "Same as mode=fake">,
    Option<"scaleType", "scale-dtype", "std::string", "\"auto\"",
           "Scale dtype: f16, bf16, f32, or auto (the weight's)">,
    Option<"report", "report", "std::string", "\"\"",
           "Write a per-layer error table (CSV) here">,
    Option<"mode", "mode", "std::string", "\"gemm\"",
           "gemm (packed; #wq.packing<awq> for 4-bit layers, gptq otherwise), "
           "fake (dequantized float weights), scale (scales folded, no "
           "clipping, no quantization) or clip (scales folded and weights "
           "clipped, no quantization)">,
    Option<"awqReport", "awq-report", "std::string", "\"\"",
           "Write each scaling group's layers, preceding op, alpha, duo and "
           "loss (CSV) here">,
    Option<"duoScaling", "duo-scaling", "std::string", "\"true\"",
           "true: s = x^a / (w^(1-a) + 1e-4); false: s = x^a; both: the better">,
    Option<"clip", "clip", "bool", "true",
           "Clip search (AutoAWQ apply_clip; never for q/k/query/key/Wqkv)">,
    Option<"nGrid", "n-grid", "int64_t", "20", "Scale candidates a = i / n-grid">,
    Option<"loss", "loss", "std::string", "\"linear\"",
           "Scale-search loss: linear (the group's own outputs, from the "
           "Hessian) or module (AutoAWQ's: the inspected module's output, "
           "measured on the block by quant-compile --awq-loss module and "
           "read from the statistics)">,
    Option<"gptq", "gptq", "bool", "false",
           "Quantize the scaled, clipped weights with GPTQ on H' = diag(1/s) H diag(1/s)">,
    Option<"dampPercent", "damp-percent", "double", "0.01", "GPTQ dampening (gptq=1)">,
    Option<"blockSize", "block-size", "int64_t", "128", "GPTQ lazy-batch width (gptq=1)">,
    Option<"staticGroups", "static-groups", "bool", "false", "GPTQ static groups (gptq=1)">,
  ];
  let dependentDialects = ["mlir::linalg::LinalgDialect",
                           "mlir::tensor::TensorDialect",
                           "mlir::arith::ArithDialect"];
}

def WQDeriveKVCache : Pass<"wq-derive-kv-cache", "mlir::ModuleOp"> {
  let summary = "Derive a cached decode step from a decoder's full-sequence graph";
  let description = [{
    Adds `@F.decode_step(%ids: tensor<1x?xi64>, %pos: tensor<1xi64>,
    %k0, %v0, %k1, %v1, ...) -> logits` next to the entry `@F` (token ids ->
    logits, no past inputs): it runs the new tokens at positions
    pos..pos+S-1 against keys and values kept in the caller's cache buffers
    `memref<1xHkvxMxDxf32>` (M = `max-seq-len`, batch 1), writing the new
    tokens' keys and values into slots pos..pos+S-1 in place
    (`bufferization.to_tensor restrict writable`, `tensor.insert_slice`,
    `bufferization.materialize_in_destination`): One-Shot Bufferize turns
    this into a copy of the S new rows into a subview of the buffer, so a
    step neither copies nor allocates anything of the cache's size.

    Attention is found as a contraction (generic: mulf + addf, one
    reduction) whose left operand is computed from another contraction (the
    scores Q.K^T) through elementwise ops and reductions (scale, mask,
    softmax); its right operand is V. K and V are the rank-4 values
    [B, Hkv, S, D] reached from the contractions' right operands through
    transpose(0,1,3,2) (K only), GQA head repeats (expand_shape, broadcast
    copy, collapse_shape). The ops from the cache to the scores and from the
    scores to the output are re-created on the written prefix of the cache
    (pos + S slots, an extract_slice). Position
    sources (`linalg.generic` computing arange(S) from `linalg.index`) become
    arange(S) + pos, so RoPE tables and position embeddings follow; the
    causal mask (an index comparison of two aranges consumed by the scores'
    chain) compares the query positions with the cache positions
    0..pos+S-1.

    Refused, with an error naming the op: no attention found, K/V not of
    the form [B, Hkv, S, D] with static Hkv and D, an op between cache and
    output it cannot re-create, a mask not computed from positions, or
    graphs that already have inputs besides the token ids.
  }];
  let options = [
    Option<"maxSeqLen", "max-seq-len", "int64_t", "512",
           "Positions in the preallocated key/value cache">,
    Option<"func", "func", "std::string", "\"\"",
           "Entry function (default: the only public one)">,
  ];
  let dependentDialects = ["mlir::tensor::TensorDialect",
                           "mlir::linalg::LinalgDialect",
                           "mlir::arith::ArithDialect",
                           "mlir::bufferization::BufferizationDialect"];
}

#endif // QUANT_MLIR_DIALECT_WQ_TRANSFORMS_PASSES_TD
