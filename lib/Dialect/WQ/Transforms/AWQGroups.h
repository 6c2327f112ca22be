//===- AWQGroups.h - AWQ's scaling groups in the IR ------------*- C++ -*-===//
// Private to lib/Dialect/WQ/Transforms: the linears that share an input and
// the op before them that can absorb a per-channel scale (AutoAWQ's
// get_layers_for_scaling, found from the IR instead of per architecture),
// for wq-awq (AWQ.cpp) and the module-loss plan.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_LIB_DIALECT_WQ_TRANSFORMS_AWQGROUPS_H
#define QUANT_MLIR_LIB_DIALECT_WQ_TRANSFORMS_AWQGROUPS_H

#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"
#include "quant-mlir/Dialect/WQ/Transforms/AWQPlan.h"
#include "quant-mlir/Dialect/WQ/Transforms/SchemeSelection.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringMap.h"

#include <string>
#include <vector>

namespace quant_mlir::wq::detail {

/// A scaling group: the balanced linears (all readers of `input`) and the op
/// before them that absorbs 1/s.
struct ScaleGroup {
  enum class Prev { Norm, Linear, Activation } prev;
  mlir::Value input;
  llvm::SmallVector<LinearOp> consumers;
  WeightOp normWeight, normBias; // Prev::Norm (bias optional)
  LinearOp prevLinear;           // Prev::Linear
};

/// The archive tensor behind `v` when it is a wq.weight that nothing else
/// reads (so that it can be rewritten in place), else null.
WeightOp soleWeight(mlir::Value v, const llvm::StringMap<int> &uses);

/// AutoAWQ auto_clip: avoid_clipping = ["q_", "k_", "query", "key", "Wqkv"].
bool avoidsClipping(llvm::StringRef layer);

/// AutoAWQ's ScaledActivation: the group's readers get x / s, with s the
/// archive tensor `name` [K], computed right after the activation x.
void insertActivationScale(ScaleGroup &g, llvm::StringRef name);

/// The scaling groups of `module` in program order, every layer's scheme
/// (null: left in float) and the readers of each archive name (a tensor read
/// twice is never rewritten in place).
mlir::LogicalResult
collectGroups(mlir::ModuleOp module, const SchemeSelector &selector,
              llvm::StringMap<int> &uses,
              llvm::DenseMap<mlir::Operation *, SchemeAttr> &schemes,
              llvm::SmallVector<ScaleGroup> &groups);

/// The linears of the norm-headed branch after group `g` in program order
/// (the MLP after the attention), which the module loss of `g` cuts off.
std::vector<AWQPlanGroup::Zeroed> nextBranch(llvm::ArrayRef<ScaleGroup> groups,
                                             size_t g,
                                             llvm::ArrayRef<LinearOp> linears);

/// The names of the archive tensors group `g` reads and rewrites: its
/// readers' weights and the op before it that absorbs 1/s.
llvm::SmallVector<std::string> touchedBy(ScaleGroup &g);

} // namespace quant_mlir::wq::detail

#endif // QUANT_MLIR_LIB_DIALECT_WQ_TRANSFORMS_AWQGROUPS_H
