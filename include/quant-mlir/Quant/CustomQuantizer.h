//===- CustomQuantizer.h - user-registered layer quantizers ------*- C++ -*-===//
// The research hook: a named function (e.g. a Python one, registered by the
// quant_mlir package) that quantizes one layer in place of RTN/GPTQ, while
// calibration, packing, export and evaluation stay the compiler's. wq-rtn
// with custom=NAME calls it for every selected layer; its result is checked
// (shapes, code and zero ranges, finite scales, g_idx) before it is packed.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_QUANT_CUSTOMQUANTIZER_H
#define QUANT_MLIR_QUANT_CUSTOMQUANTIZER_H

#include "quant-mlir/Quant/Quantizer.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <functional>
#include <string>
#include <vector>

namespace quant_mlir::quant {

/// What a custom quantizer sees of one layer. The statistics are empty when
/// the model was not calibrated.
struct CustomQuantizeInput {
  llvm::StringRef layer;
  llvm::ArrayRef<float> weight; ///< [N][K] row-major (nn.Linear layout)
  int64_t n = 0, k = 0;
  Scheme scheme;
  llvm::ArrayRef<double> hessian; ///< [K][K], H = 2/n sum x x^T
  llvm::ArrayRef<float> xMean;    ///< [K], mean |x| per input channel
  llvm::ArrayRef<float> rows;     ///< [numRows][K], sampled input rows
  int64_t numRows = 0;
};

/// Returns the layer's codes, scales, zeros (and g_idx under act-order) in
/// QuantizedWeight's layout, or an error (the caller adds the layer name).
using CustomQuantizeFn = std::function<llvm::Expected<QuantizedWeight>(
    const CustomQuantizeInput &)>;

/// Registers (or replaces) `name`. Names are [A-Za-z0-9_.-]+ and not one of
/// the built-in methods (none, rtn, gptq, awq, awq+gptq).
llvm::Error registerCustomQuantizer(llvm::StringRef name, CustomQuantizeFn fn);
/// Whether `name` was registered (and is now removed).
bool unregisterCustomQuantizer(llvm::StringRef name);
bool hasCustomQuantizer(llvm::StringRef name);
std::vector<std::string> customQuantizerNames();

/// Runs the quantizer registered as `name` and checks its result against
/// the scheme; errors name the layer and the quantizer.
llvm::Expected<QuantizedWeight>
runCustomQuantizer(llvm::StringRef name, const CustomQuantizeInput &input);

/// The checks runCustomQuantizer applies: sizes for [N, K] and the scheme's
/// groups, codes in [0, 2^bits - 1], zeros in range (2^(bits-1) everywhere
/// for symmetric schemes, whose packing stores none), finite non-zero
/// scales, g_idx only and always under act-order with every group in range.
llvm::Error checkQuantizedWeight(const QuantizedWeight &q, int64_t n, int64_t k,
                                 const Scheme &scheme, llvm::StringRef what);

} // namespace quant_mlir::quant

#endif // QUANT_MLIR_QUANT_CUSTOMQUANTIZER_H
