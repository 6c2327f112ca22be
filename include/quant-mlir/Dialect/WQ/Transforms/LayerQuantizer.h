//===- LayerQuantizer.h - one layer of wq-rtn / wq-gptq ----------*- C++ -*-===//
// The per-layer quantization the wq-rtn and wq-gptq passes perform, for
// callers that quantize while calibrating (GPTQ's true-sequential mode):
// built from the pass's option struct, so both use one configuration.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_DIALECT_WQ_TRANSFORMS_LAYERQUANTIZER_H
#define QUANT_MLIR_DIALECT_WQ_TRANSFORMS_LAYERQUANTIZER_H

#include "quant-mlir/Dialect/WQ/Transforms/Passes.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace quant_mlir::safetensors {
class Writer;
} // namespace quant_mlir::safetensors

namespace quant_mlir::wq {
namespace detail {
struct QuantizeConfig;
} // namespace detail

class LayerQuantizer {
public:
  /// The layer quantizer of wq-gptq / wq-rtn with these options (the
  /// passes' generated option structs). The module's float weights are read
  /// from its archive (relative to baseDir).
  static llvm::Expected<std::unique_ptr<LayerQuantizer>>
  create(mlir::ModuleOp module, const WQGPTQOptions &options);
  static llvm::Expected<std::unique_ptr<LayerQuantizer>>
  create(mlir::ModuleOp module, const WQRTNOptions &options);
  ~LayerQuantizer();

  /// Whether the pass will quantize layer `name` (not skipped, and known).
  bool selects(llvm::StringRef name) const;

  /// Quantizes layer `name` (GPTQ with `hessian`, [K, K]; RTN ignores it)
  /// and returns the weight the output model will compute with: dequantized
  /// (through scales of the stored dtype), in the archive's dtype and
  /// shape, under the weight's archive name. With `results`, a GPTQ result
  /// (codes, grids, g_idx, GPTQ's output error) is also added there, keyed
  /// by this quantizer's fingerprint, the scheme and hashes of the Hessian
  /// and weight bytes: wq-gptq precomputed=FILE uses it instead of running
  /// GPTQ again on the same inputs.
  llvm::Expected<std::pair<std::string, std::vector<uint8_t>>>
  quantize(llvm::StringRef name, llvm::ArrayRef<double> hessian,
           safetensors::Writer *results = nullptr) const;

  /// The options that determine the quantized weights; statistics recorded
  /// with quantization in the loop carry it (metadata "true_sequential"),
  /// and wq-gptq{true-sequential=1} checks it.
  const std::string &fingerprint() const;

  struct Impl;

private:
  static llvm::Expected<std::unique_ptr<LayerQuantizer>>
  create(mlir::ModuleOp module, detail::QuantizeConfig config,
         llvm::StringRef passName);
  explicit LayerQuantizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl;
};

} // namespace quant_mlir::wq

#endif // QUANT_MLIR_DIALECT_WQ_TRANSFORMS_LAYERQUANTIZER_H
