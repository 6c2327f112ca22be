//===- WeightsToArguments.cpp - wq-weights-to-arguments ---------------------===//
// Hoists archive references into function arguments bound at run time.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/MapVector.h"

namespace quant_mlir::wq {
#define GEN_PASS_DEF_WQWEIGHTSTOARGUMENTS
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h.inc"
} // namespace quant_mlir::wq

using namespace mlir;
using namespace quant_mlir::wq;

namespace {
struct WeightsToArgumentsPass
    : public quant_mlir::wq::impl::WQWeightsToArgumentsBase<
          WeightsToArgumentsPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTableCollection symbols;
    for (auto func : module.getOps<func::FuncOp>()) {
      if (func.isExternal())
        continue;
      // One argument per archive tensor, in first-use order (deterministic).
      llvm::MapVector<StringAttr, SmallVector<WeightOp>> byName;
      func.walk([&](WeightOp op) { byName[op.getNameAttr()].push_back(op); });
      if (byName.empty())
        continue;
      if (auto uses = SymbolTable::getSymbolUses(func, module);
          uses && !uses->empty()) {
        func.emitError() << "function '" << func.getSymName()
                         << "' references weights and has callers; inline "
                            "it before wq-weights-to-arguments";
        return signalPassFailure();
      }
      for (auto &[name, ops] : byName) {
        Type type = ops.front().getType();
        if (llvm::any_of(ops, [&](WeightOp op) { return op.getType() != type; })) {
          ops.front().emitError() << "weight '" << name.getValue()
                                  << "' is referenced with different types";
          return signalPassFailure();
        }
        unsigned index = func.getNumArguments();
        auto attrs = DictionaryAttr::get(
            &getContext(), {NamedAttribute(StringAttr::get(
                                               &getContext(),
                                               WQDialect::kWeightArgAttrName),
                                           name)});
        if (failed(func.insertArgument(index, type, attrs, ops.front().getLoc())))
          return signalPassFailure();
        BlockArgument arg = func.getArgument(index);
        for (WeightOp op : ops) {
          op.replaceAllUsesWith(arg);
          op.erase();
        }
      }
    }
  }
};
} // namespace
