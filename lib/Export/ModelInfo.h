//===- ModelInfo.h - what the exporter reads off a quantized module -*- C++ -*-===//
// Internal to lib/Export: the module's layers with their archive tensors,
// the Hugging Face name prefix, and the architecture (config.json) derived
// from the IR.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_LIB_EXPORT_MODELINFO_H
#define QUANT_MLIR_LIB_EXPORT_MODELINFO_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <string>

namespace quant_mlir::hf {

/// The archive-name prefix the importer put before the Hugging Face names
/// ("m." for a wrapper module, usually ""): the text before
/// "model.embed_tokens.weight" (or "transformer.wte.weight").
std::string findNamePrefix(mlir::ModuleOp module);

/// `name` without `prefix`.
std::string stripPrefix(llvm::StringRef name, llvm::StringRef prefix);

/// The Hugging Face name of the token embedding ("model.embed_tokens.weight",
/// "transformer.wte.weight", "gpt_neox.embed_in.weight"), or "".
std::string embeddingName(mlir::ModuleOp module, llvm::StringRef prefix);

/// Whether `name` (a Hugging Face module path) is the output head:
/// lm_head, or GPT-NeoX's embed_out.
bool isHeadLayer(llvm::StringRef name);

/// Whether `name` is a GPT-2 Conv1D module, whose float weight is stored
/// [in, out] (the graph's wq.weight is [out, in]).
bool isConv1D(llvm::StringRef name);

/// config.json for a Llama, Qwen2, GPT-2 or GPT-NeoX decoder, derived from the IR: sizes
/// from the weights, heads from the reshape after q_proj, the RMSNorm eps
/// from the constant added before its sqrt, rope_theta from the inverse
/// frequencies. Errors say what could not be derived (then --hf-config).
llvm::Expected<llvm::json::Object> deriveConfig(mlir::ModuleOp module,
                                                llvm::StringRef prefix);

/// The Hugging Face names of a Llama/Qwen2 module's RMSNorm weights, in the
/// order the norms run (layers.i.input_layernorm, post_attention_layernorm,
/// ..., model.norm), each with the wq.weight it uses. The importer merges
/// identical initializers (freshly initialized norms are all ones), so one
/// wq.weight may serve several norms; each still needs its own tensor.
/// Empty if the module does not have 2 * layers + 1 such uses.
std::vector<std::pair<std::string, mlir::Operation *>>
normWeights(mlir::ModuleOp module, llvm::StringRef prefix);

} // namespace quant_mlir::hf

#endif // QUANT_MLIR_LIB_EXPORT_MODELINFO_H
