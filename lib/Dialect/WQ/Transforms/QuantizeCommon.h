//===- QuantizeCommon.h - what wq-rtn, wq-gptq and wq-awq share --*- C++ -*-===//
// Private to lib/Dialect/WQ/Transforms: the configuration every weight
// quantization pass is built from, archive helpers, and the driver that
// rewrites selected wq.linear ops into packed (or fake-quant) layers and
// writes the new archive atomically (LayerQuantizer.cpp).
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_LIB_DIALECT_WQ_TRANSFORMS_QUANTIZECOMMON_H
#define QUANT_MLIR_LIB_DIALECT_WQ_TRANSFORMS_QUANTIZECOMMON_H

#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"
#include "quant-mlir/Dialect/WQ/Transforms/SchemeSelection.h"
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h"
#include "quant-mlir/Quant/GPTQ.h"
#include "quant-mlir/Quant/Quantizer.h"
#include "quant-mlir/Support/SafeTensors.h"

#include "mlir/IR/BuiltinOps.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace quant_mlir::wq::detail {

struct QuantizeConfig {
  SchemeSelector::Options select;
  std::string output, baseDir, scaleType, report;
  bool fakeQuant = false;
  bool gptq = false, trueSequential = false;
  /// Quantize with AutoAWQ's quantizer (wq-awq without gptq=1).
  bool awq = false;
  /// The registered custom quantizer to call instead (wq-rtn custom=NAME).
  std::string custom;
  quant::GPTQOptions gptqOptions;
  /// wq-gptq precomputed=FILE: GPTQ results of the calibration loop
  /// (LayerQuantizer::quantize), used where their key matches.
  std::string precomputed;

  /// The options that determine the quantized weights.
  std::string fingerprint() const;
};

/// What a pass that rewrites float weights before quantizing them (wq-awq)
/// hands to the driver: the rewritten tensors on demand, layer by layer in
/// program order, so that the rewrite holds the tensors in flight (about a
/// block's) instead of the whole model's.
class WeightRewriter {
public:
  virtual ~WeightRewriter();

  struct Layer {
    /// The rewritten float weight [N][K] (scaled, clipped).
    std::vector<float> weight;
    /// The float weight the error report compares against (the scaled
    /// weight before clipping); empty: `weight` itself.
    std::vector<float> reference;
    /// s [K] when the layer's input is now x / s, so that its Hessian
    /// becomes diag(1/s) H diag(1/s); empty otherwise.
    std::vector<double> inputScale;
  };
  /// Receives every other archive tensor replaced (norm weights, biases, the
  /// weights of layers left in float) or added (the scales of an
  /// activation), once each, as float32 values to be stored in `dtype`.
  using Emit = llvm::function_ref<void(
      llvm::StringRef name, safetensors::DType dtype,
      llvm::ArrayRef<int64_t> shape, llvm::ArrayRef<float> values)>;

  /// Rewrites as far as needed for `layer`'s weight to be final and hands it
  /// over (once); nullopt when the layer is not rewritten. Failures have
  /// been reported on the IR.
  virtual mlir::FailureOr<std::optional<Layer>> take(llvm::StringRef layer,
                                                     Emit emit) = 0;
  /// Completes the rewrite: what no take() needed.
  virtual mlir::LogicalResult finish(Emit emit) = 0;

  /// The report's method column ("awq", "awq+gptq").
  std::string method;
  /// Quantize nothing: write the rewritten tensors only (wq-awq mode=scale).
  bool floatOnly = false;
  /// Write the packed codes in #wq.packing<awq> where it holds them (4-bit).
  bool awqPacking = false;
};

llvm::Error fail(const llvm::Twine &msg);
/// "f16", "bf16", "f32" or "auto" (unset: the weight's own dtype).
mlir::LogicalResult parseScaleType(llvm::StringRef text,
                                   std::optional<safetensors::DType> &out);
std::string resolve(llvm::StringRef baseDir, llvm::StringRef path);
std::vector<float> toFloats(const safetensors::Reader &reader,
                            const safetensors::TensorInfo &info);
std::vector<uint8_t> fromFloats(llvm::ArrayRef<float> v,
                                safetensors::DType dtype);

/// Rewrites every selected wq.linear of `module` (RTN, or GPTQ with each
/// layer's Hessian), optionally after `rewriter`'s rewrite, and writes the
/// new archive `cfg.output`; `passName` prefixes diagnostics.
mlir::LogicalResult runQuantize(mlir::ModuleOp module,
                                const QuantizeConfig &cfg,
                                llvm::StringRef passName,
                                WeightRewriter *rewriter = nullptr);

/// The options every quantization pass has (WQQuantizeOptions in Passes.td).
template <typename PassT> QuantizeConfig commonConfig(const PassT &p) {
  QuantizeConfig cfg;
  cfg.select.bits = p.bits;
  cfg.select.groupSize = p.groupSize;
  cfg.select.zeroPoint = p.zeroPoint;
  cfg.select.actOrder = p.descAct;
  if (p.skip.hasValue())
    cfg.select.skip = llvm::SmallVector<std::string>(p.skip.begin(),
                                                     p.skip.end());
  cfg.select.overrides.assign(p.overrides.begin(), p.overrides.end());
  cfg.output = p.output;
  cfg.baseDir = p.baseDir;
  cfg.fakeQuant = p.fakeQuant;
  cfg.scaleType = p.scaleType;
  cfg.report = p.report;
  return cfg;
}

/// The configuration of wq-rtn / wq-gptq for a pass option text (RTN.cpp,
/// GPTQ.cpp).
QuantizeConfig configFromOptions(const WQRTNOptions &options);
QuantizeConfig configFromOptions(const WQGPTQOptions &options);

/// The identity of a GPTQ result: the quantizer's options, the layer's
/// scheme and the exact bytes of the Hessian and weight it was computed
/// from. GPTQ is deterministic (and independent of the BLAS thread count),
/// so equal keys mean equal results (GPTQResults.cpp).
std::string resultKey(llvm::StringRef fingerprint, const quant::Scheme &qs,
                      llvm::ArrayRef<double> hessian, llvm::ArrayRef<float> w);

/// Adds one GPTQ result to a precomputed-results archive: tensors
/// `<layer>.gptq.{q,scales,zeros,g_idx,error}` and metadata `<layer>` = key.
llvm::Error addResult(safetensors::Writer &out, llvm::StringRef layer,
                      const quant::QuantizedWeight &q,
                      const quant::GPTQOutputError &own, llvm::StringRef key);

/// The result addResult stored for `layer` if its key is `key` and its
/// tensors have the shapes of an [n][k] layer under `qs`.
std::optional<std::pair<quant::QuantizedWeight, quant::GPTQOutputError>>
findResult(const safetensors::Reader &in, llvm::StringRef layer,
           llvm::StringRef key, int64_t n, int64_t k, const quant::Scheme &qs);

} // namespace quant_mlir::wq::detail

#endif // QUANT_MLIR_LIB_DIALECT_WQ_TRANSFORMS_QUANTIZECOMMON_H
