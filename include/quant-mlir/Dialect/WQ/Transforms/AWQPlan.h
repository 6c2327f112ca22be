//===- AWQPlan.h - the groups wq-awq scores by module output ----*- C++ -*-===//
// What a caller that runs the model (Runtime/AWQCalibration.h) needs to
// measure AutoAWQ's module-output loss for the scaling groups wq-awq will
// search: built from the pass's own option struct, so both use one
// configuration, and fingerprinted, so the pass can check the losses it
// reads were measured for its options.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_DIALECT_WQ_TRANSFORMS_AWQPLAN_H
#define QUANT_MLIR_DIALECT_WQ_TRANSFORMS_AWQPLAN_H

#include "quant-mlir/Dialect/WQ/Transforms/Passes.h"
#include "quant-mlir/Quant/AWQ.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"

#include <optional>
#include <string>
#include <vector>

namespace quant_mlir::wq {

struct AWQPlanLayer {
  std::string name;   // the wq.linear
  std::string weight; // its archive tensor [N, K]
  int64_t n = 0;
  /// Unset: a skipped layer (scaled, not quantized).
  std::optional<quant::Scheme> scheme;
};

/// A group whose inspected module is more than its own linears: the
/// linears after a norm (AutoAWQ's [q, k, v] -> self_attn, [gate, up] ->
/// mlp, GPT-2's c_attn, c_fc, GPT-NeoX's query_key_value, dense_h_to_4h).
/// The loss is the block output's; `zero` lists the linears of the next
/// norm-headed branch (the MLP after the attention) with their weights and
/// biases, set to zero in both runs where they are in the same block, so
/// that the block output differs by the module's output only.
struct AWQPlanGroup {
  std::vector<AWQPlanLayer> layers;
  int64_t k = 0;
  struct Zeroed {
    std::string layer, tensor;
  };
  std::vector<Zeroed> zero;
};

struct AWQPlan {
  std::vector<AWQPlanGroup> groups;
  quant::AWQOptions options;
  /// Stored as statistics metadata "awq_module_loss"; wq-awq{loss=module}
  /// requires it to equal its own.
  std::string fingerprint;
};

/// The plan of `wq-awq{options}` on `module`.
llvm::Expected<AWQPlan> planAWQModuleLoss(mlir::ModuleOp module,
                                          const WQAWQOptions &options);

} // namespace quant_mlir::wq

#endif // QUANT_MLIR_DIALECT_WQ_TRANSFORMS_AWQPLAN_H
