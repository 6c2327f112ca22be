//===- Support.h - small helpers shared by lib/Export's files ---*- C++ -*-===//
// Internal to lib/Export: the error and JSON-file helpers that quant-export
// and quant-import --checkpoint both need, kept in one place.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_LIB_EXPORT_SUPPORT_H
#define QUANT_MLIR_LIB_EXPORT_SUPPORT_H

#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

namespace quant_mlir::hf {

/// A string error (the message names the layer, tensor or file).
llvm::Error makeError(const llvm::Twine &msg);

/// Reads `path` as one JSON object; errors name the file.
llvm::Expected<llvm::json::Object> readJSONObject(llvm::StringRef path);

} // namespace quant_mlir::hf

#endif // QUANT_MLIR_LIB_EXPORT_SUPPORT_H
