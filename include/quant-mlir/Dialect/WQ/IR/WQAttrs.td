//===- WQAttrs.td - wq attributes ---------------------------*- tablegen -*-===//
// Quantization scheme, packing layout and calibration-statistics references.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_DIALECT_WQ_IR_WQATTRS_TD
#define QUANT_MLIR_DIALECT_WQ_IR_WQATTRS_TD

include "quant-mlir/Dialect/WQ/IR/WQ.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

class WQ_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<WQ_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

def WQ_PackingGPTQ : I32EnumAttrCase<"gptq", 0>;
def WQ_PackingAWQ  : I32EnumAttrCase<"awq", 1>;
def WQ_PackingGPUV4 : I32EnumAttrCase<"gpu_v4", 2>;
def WQ_Packing : I32EnumAttr<"Packing", "layout of packed integer codes",
    [WQ_PackingGPTQ, WQ_PackingAWQ, WQ_PackingGPUV4]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::quant_mlir::wq";
}

def WQ_PackingAttr : EnumAttr<WQ_Dialect, WQ_Packing, "packing"> {
  let summary = "packed-code layout";
  let description = [{
    `gptq` (canonical; AutoGPTQ's): codes are a bit stream along K, packed
    little-endian into int32 words: `codes[K*bits/32, N]`, zeros
    `[groups, N*bits/32]` packed along N the same way.
    `awq` (AutoAWQ's GEMM layout, 4-bit only): codes `[K, N*bits/32]` packed
    along N in the interleaved order 0,2,4,6,1,3,5,7; zeros likewise.
    `gpu_v4` (the NVPTX GEMV/GEMM kernels' layout, docs/codegen.md): the
    gptq words of each output column regrouped four at a time, codes
    `[K*bits/128, 4*N]` with element `[r, 4*n + j]` = gptq word `4*r + j` of
    column n, so one 128-bit load yields consecutive K of one column; for
    2/4/8 bits the fields of a word are interleaved (codes 0,2,4,..,1,3,5,..)
    so that `(w >> s) & 0x000F000F` holds two consecutive K codes. Scales,
    zeros and g_idx are as in gptq. Made by `wq-pack`.
  }];
  let assemblyFormat = "`<` $value `>`";
}

def WQ_SchemeAttr : WQ_Attr<"Scheme", "scheme"> {
  let summary = "a weight quantization scheme";
  let description = [{
    `#wq.scheme<bits = 4, group_size = 128, symmetric = false, act_order = true>`

    w = scale[g] * (q - zero[g]) with q in [0, 2^bits - 1], g the group of the
    input channel (g_idx[k] under act-order, else k / group_size).
    `group_size = -1` is per-output-channel (one group spanning K).
    Symmetric schemes have no stored zeros: zero = 2^(bits-1).
  }];
  let parameters = (ins
    "unsigned":$bits,
    "int64_t":$group_size,
    DefaultValuedParameter<"bool", "true">:$symmetric,
    DefaultValuedParameter<"bool", "false">:$act_order);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    bool isPerChannel() const { return getGroupSize() == -1; }
    /// Number of quantization groups along an input dimension of size K.
    int64_t getNumGroups(int64_t k) const {
      return isPerChannel() ? 1 : k / getGroupSize();
    }
    /// Largest integer code.
    int64_t getMaxCode() const { return (int64_t(1) << getBits()) - 1; }
  }];
}

def WQ_StatsAttr : WQ_Attr<"Stats", "stats"> {
  let summary = "calibration statistics of one linear layer, by archive key";
  let description = [{
    `#wq.stats<key = "model.layers.0.mlp.up_proj", tokens = 65536, rows = 512>`
    names the tensors `<key>.hessian` (f64 [K, K], H = 2/n sum x x^T),
    `<key>.absmean` (f32 [K], mean |x| per input channel) and, when rows > 0,
    `<key>.inputs` (f32 [rows, K], a seeded sample of input rows) in the
    module's statistics archive (`wq.stats_archive`). `tokens` is n.
  }];
  let parameters = (ins
    StringRefParameter<"archive key prefix">:$key,
    "int64_t":$tokens,
    DefaultValuedParameter<"int64_t", "0">:$rows);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    std::string getHessianKey() const { return (getKey() + ".hessian").str(); }
    std::string getAbsMeanKey() const { return (getKey() + ".absmean").str(); }
    std::string getInputsKey() const { return (getKey() + ".inputs").str(); }
  }];
}

#endif // QUANT_MLIR_DIALECT_WQ_IR_WQATTRS_TD
