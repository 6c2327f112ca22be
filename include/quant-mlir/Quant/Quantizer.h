//===- Quantizer.h - min/max weight quantizer and RTN -----------*- C++ -*-===//
// The uniform min/max quantizer shared by RTN and GPTQ, the quantized-weight
// container, and round-to-nearest quantization.
//
// Scheme (docs/design.md, #wq.scheme): w = scale[g] * (q - zero[g]) with
// q in [0, 2^bits - 1]; g = g_idx[k] under act-order, else k / group_size
// (group_size = -1: one group spanning K). Symmetric schemes fix
// zero = 2^(bits-1).
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_QUANT_QUANTIZER_H
#define QUANT_MLIR_QUANT_QUANTIZER_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace quant_mlir::quant {

/// A weight quantization scheme, as #wq.scheme states it. The dialect allows
/// bits in {2, 3, 4, 8} and group sizes {32, 64, 128, 256, -1}; this library
/// accepts bits in {2, 3, 4, 8} and any group size >= 1 that divides K, or -1
/// (per output channel).
struct Scheme {
  unsigned bits = 4;
  int64_t groupSize = 128;
  bool symmetric = true;
  bool actOrder = false;

  bool isPerChannel() const { return groupSize == -1; }
  int64_t numGroups(int64_t k) const {
    return isPerChannel() ? 1 : k / groupSize;
  }
  int32_t maxCode() const { return (int32_t(1) << bits) - 1; }
  /// Group of input channel `col` when there is no g_idx.
  int64_t groupOf(int64_t col) const {
    return isPerChannel() ? 0 : col / groupSize;
  }
};

/// A quantized [N, K] weight (nn.Linear layout: N output, K input channels).
struct QuantizedWeight {
  int64_t n = 0, k = 0;
  /// The scheme the codes were produced under (bits, group size, ...).
  Scheme scheme;
  /// Codes, [K][N] row-major (the gptq packing's orientation), each in
  /// [0, 2^bits - 1].
  std::vector<uint8_t> q;
  /// [G][N] row-major, G = scheme.numGroups(k).
  std::vector<float> scales;
  /// [G][N] row-major, unpacked. 2^(bits-1) everywhere for symmetric schemes.
  std::vector<int32_t> zeros;
  /// [K]: the group of each input channel. Empty unless scheme.actOrder.
  std::vector<int32_t> gIdx;

  int64_t numGroups() const { return scheme.numGroups(k); }
  /// Group of input channel `col` (g_idx[col] under act-order).
  int64_t groupOf(int64_t col) const {
    return gIdx.empty() ? scheme.groupOf(col) : gIdx[col];
  }
  /// w[n][k] = scales[g][n] * (q[k][n] - zeros[g][n]) in float32, [N][K]
  /// row-major (wq.dequantize's semantics).
  std::vector<float> dequantize() const;
};

/// Checks bits, group size, shapes and that every value is finite; `what`
/// names the layer in the message.
llvm::Error verifyScheme(const Scheme &scheme, int64_t n, int64_t k,
                         llvm::StringRef what);

/// The quantizer's grid for one row of one group.
struct GridParams {
  /// The stored (float32-representable) scale, held as a double.
  double scale;
  int32_t zero;
};

/// GPTQ reference quant.py `Quantizer.find_params` with perchannel=True for
/// one row of a group: xmin = min(min x, 0), xmax = max(max x, 0); symmetric:
/// xmax = max(|xmin|, xmax) and xmin = -xmax if xmin < 0; both zero: xmin = -1,
/// xmax = +1; scale = (xmax - xmin) / maxq, zero = round(-xmin / scale)
/// (symmetric: zero = (maxq + 1) / 2). Rounding is to nearest, ties to even
/// (torch.round / numpy.round). Deviation from the reference, on purpose:
/// the scale is then rounded to float32 (the precision it is stored in) and
/// that rounded value is the grid used for the codes and GPTQ's error
/// feedback, so the stored model is exactly the one GPTQ compensated for; a
/// scale that would round to 0 becomes the smallest float32 denormal.
GridParams findParams(llvm::ArrayRef<double> x, unsigned bits, bool symmetric);

/// quant.py `quantize` without the dequantization:
/// q = clamp(round(x / scale) + zero, 0, maxq).
inline int32_t quantizeValue(double x, const GridParams &p, int32_t maxq) {
  // nearbyint rounds to nearest, ties to even, in the default FP environment.
  double v = std::nearbyint(x / p.scale) + double(p.zero);
  return int32_t(std::min(std::max(v, 0.0), double(maxq)));
}

/// Round-to-nearest: the same quantizer (findParams) applied to each row of
/// each group of the original weights, with no error feedback. `w` is [N][K]
/// row-major. Act-order has no meaning without a Hessian: when
/// scheme.actOrder is set, g_idx is the identity grouping k / group_size (0
/// per channel) so that the result still matches the scheme's shapes.
llvm::Expected<QuantizedWeight> quantizeRTN(llvm::ArrayRef<float> w, int64_t n,
                                            int64_t k, const Scheme &scheme);

} // namespace quant_mlir::quant

#endif // QUANT_MLIR_QUANT_QUANTIZER_H
