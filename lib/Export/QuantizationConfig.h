//===- QuantizationConfig.h - quantization_config of an export -*- C++ -*-===//
// Internal to lib/Export: the quantization_config (and quantize_config.json)
// each format states for a model's layers, mixed schemes included, and the
// regex GPTQModel's `dynamic` keys use.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_LIB_EXPORT_QUANTIZATIONCONFIG_H
#define QUANT_MLIR_LIB_EXPORT_QUANTIZATIONCONFIG_H

#include "quant-mlir/Export/HFExport.h"

#include "llvm/Support/JSON.h"

namespace quant_mlir::hf {

/// quantization_config for `layers` (quantized) and `floatLinears` (left in
/// float16). GPTQ formats state the most common scheme and GPTQModel
/// `dynamic` overrides ("+:^layer$": {bits, ...}, "-:^layer$": {} for a
/// float layer); compressed-tensors one config group per scheme and
/// `ignore`; AWQ one scheme and `modules_to_not_convert` (mixed schemes are
/// refused, naming two layers).
llvm::Expected<llvm::json::Object>
quantizationConfig(const ExportOptions &options,
                   llvm::ArrayRef<QuantLayer> layers,
                   llvm::ArrayRef<std::string> floatLinears);

/// `^name$` with the regex metacharacters of `name` escaped.
std::string exactRegex(llvm::StringRef name);

} // namespace quant_mlir::hf

#endif // QUANT_MLIR_LIB_EXPORT_QUANTIZATIONCONFIG_H
