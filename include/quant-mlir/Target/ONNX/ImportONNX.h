//===- ImportONNX.h - ONNX model importer -----------------------*- C++ -*-===//
// Turns an ONNX model into a func/tensor/linalg/arith/math + wq module and a
// safetensors archive holding its weights (see docs/importer.md).
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_TARGET_ONNX_IMPORTONNX_H
#define QUANT_MLIR_TARGET_ONNX_IMPORTONNX_H

#include "quant-mlir/Support/SafeTensors.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <map>
#include <vector>
#include <memory>
#include <string>

namespace mlir {
class MLIRContext;
class DialectRegistry;
} // namespace mlir

namespace quant_mlir::onnx_import {

struct ImportOptions {
  /// Value of the module's `wq.archive` attribute (relative to the .mlir).
  std::string archiveName = "model.safetensors";
  /// Run CSE + canonicalization on the imported function.
  bool cleanup = true;
  /// Graph inputs replaced by constants (`--set-input NAME=VALUE`): an If
  /// on such an input imports only its taken branch. A bool input that
  /// selects If branches and is not fixed here gives one entry per value:
  /// `main_graph` (false) and `main_graph_<input>` (true).
  std::map<std::string, int64_t> fixedInputs;
};

/// The ONNX operators the importer has handlers for (default domain).
std::vector<std::string> supportedOperators();

struct ImportStats {
  int64_t nodes = 0;
  int64_t linears = 0;
  int64_t tensors = 0; // archive entries
  uint64_t bytes = 0;  // archive payload bytes
  int64_t opset = 0;
};

class ImportedModel {
public:
  ~ImportedModel();
  ImportedModel(const ImportedModel &) = delete;
  ImportedModel &operator=(const ImportedModel &) = delete;

  mlir::ModuleOp getModule() { return *module; }
  /// The archive; its entries may point into buffers this object owns
  /// (the parsed protobuf, mmapped external data), so write it before
  /// destroying the ImportedModel.
  const safetensors::Writer &getArchive() const { return archive; }
  const ImportStats &getStats() const { return stats; }

  /// Opaque to users: the buffers the module and archive refer to.
  struct Storage;

private:
  friend class Importer;
  friend llvm::Expected<std::unique_ptr<ImportedModel>>
  importONNXModel(llvm::StringRef, mlir::MLIRContext *, const ImportOptions &);
  ImportedModel();

  std::unique_ptr<Storage> storage;
  mlir::OwningOpRef<mlir::ModuleOp> module;
  safetensors::Writer archive;
  ImportStats stats;
};

/// Registers the dialects the importer emits.
void registerImportDialects(mlir::DialectRegistry &registry);

/// Parses `path` (an .onnx file; external data is resolved relative to its
/// directory) and builds the module and archive. Errors name the offending
/// node (`node '<name>' (<OpType>): ...`) or initializer.
llvm::Expected<std::unique_ptr<ImportedModel>>
importONNXModel(llvm::StringRef path, mlir::MLIRContext *context,
                const ImportOptions &options = {});

} // namespace quant_mlir::onnx_import

#endif // QUANT_MLIR_TARGET_ONNX_IMPORTONNX_H
