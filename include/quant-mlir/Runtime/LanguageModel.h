//===- LanguageModel.h - a decoder's entry as the runtime scores it -*- C++ -*-===//
// Imported decoders take more than token ids: attention_mask, position_ids,
// token_type_ids and an (empty) KV-cache past, as optimum exports them. For
// perplexity and calibration the runtime specializes the entry: it keeps
// the logits result only, replaces the past by empty tensors, and fills the
// remaining inputs by name from the token windows.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_RUNTIME_LANGUAGEMODEL_H
#define QUANT_MLIR_RUNTIME_LANGUAGEMODEL_H

#include "quant-mlir/Runtime/CPURunner.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace quant_mlir {

/// What an entry input is, recognised by its ONNX name (`onnx.name`).
enum class InputRole {
  InputIds,      // input_ids [B, S] (or the only i64 [B, S] input)
  AttentionMask, // attention_mask [B, past + S]: 1 for real tokens
  PositionIds,   // position_ids [B, S]
  TokenTypeIds,  // token_type_ids [B, S]: zeros
  PastKeyValue,  // past_key_values.N.key / .value (specialized away)
};

/// The scoring form of an entry: ids (and mask, positions, ...) -> logits.
struct LanguageModelEntry {
  std::string name;                      // the function
  std::vector<std::string> inputNames;   // in argument order
  std::vector<InputRole> roles;          // in argument order
  int64_t vocab = 0;

  /// The inputs for `batch` rows of `seq` token ids (row-major). Row b's
  /// first `padLeft[b]` tokens are padding (mask 0, positions as
  /// transformers computes them: cumsum(mask) - 1, 1 where masked). With a
  /// KV cache of `past` positions before the rows (generation), the mask
  /// covers past + seq (ones for the past) and positions count on from
  /// past; PastKeyValue inputs are left empty for the caller to bind.
  std::vector<HostTensor> inputs(llvm::ArrayRef<int64_t> ids, int64_t batch,
                                 int64_t seq,
                                 llvm::ArrayRef<int64_t> padLeft = {},
                                 int64_t past = 0) const;
};

/// Picks the entry (`func`, else the only public function, else the only
/// one without past_key_values inputs), and returns a clone of `module`
/// whose only public function is its scoring form: the logits result (named
/// `logits`, else the one rank-3 f32 result with a static vocabulary), the
/// past replaced by empty tensors. Errors name the function or input.
llvm::Expected<mlir::OwningOpRef<mlir::ModuleOp>>
specializeForScoring(mlir::ModuleOp module, llvm::StringRef func,
                     LanguageModelEntry &entry);

/// The role of an input name, if it has one.
std::optional<InputRole> inputRole(llvm::StringRef onnxName);

} // namespace quant_mlir

#endif // QUANT_MLIR_RUNTIME_LANGUAGEMODEL_H
