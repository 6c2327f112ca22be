//===- SchemeSelection.h - per-layer scheme from options ---------*- C++ -*-===//
// The rules every quantization pass shares: default scheme, skip globs
// (lm_head and embeddings by default) and GLOB:key=value overrides.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_DIALECT_WQ_TRANSFORMS_SCHEMESELECTION_H
#define QUANT_MLIR_DIALECT_WQ_TRANSFORMS_SCHEMESELECTION_H

#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"

#include "llvm/Support/GlobPattern.h"

#include <memory>
#include <optional>
#include <vector>

namespace quant_mlir::wq {

class SchemeSelector {
public:
  struct Options {
    int64_t bits = 4, groupSize = 128;
    bool zeroPoint = false, actOrder = false;
    /// std::nullopt: the default skip list (lm_head, *.lm_head, *embed*).
    std::optional<llvm::SmallVector<std::string>> skip;
    llvm::SmallVector<std::string> overrides;
  };

  /// The layers left in float when no skip list is given: the output head
  /// and the embeddings, as AutoGPTQ and AutoAWQ leave them.
  static llvm::SmallVector<std::string> defaultSkip() {
    return {"lm_head", "*.lm_head", "*embed*"};
  }

  /// Parses globs and overrides; errors go through `emitError`. Held by
  /// pointer: the parsed globs refer to the pattern strings it owns.
  static mlir::FailureOr<std::unique_ptr<SchemeSelector>>
  create(const Options &options,
         llvm::function_ref<mlir::InFlightDiagnostic()> emitError);

  /// The scheme for `op` (by its name), a null attribute when the layer is
  /// skipped, or failure (with a diagnostic naming the layer).
  mlir::FailureOr<SchemeAttr> select(LinearOp op) const;

private:
  struct Override {
    llvm::GlobPattern glob;
    llvm::SmallVector<std::pair<std::string, std::string>> settings;
  };
  SchemeSelector() = default;
  Options options;
  /// Pattern texts, never resized after parsing (GlobPattern keeps views).
  std::vector<std::string> patterns;
  llvm::SmallVector<llvm::GlobPattern> skips;
  llvm::SmallVector<Override> parsed;
};

} // namespace quant_mlir::wq

#endif // QUANT_MLIR_DIALECT_WQ_TRANSFORMS_SCHEMESELECTION_H
