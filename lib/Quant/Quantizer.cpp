//===- Quantizer.cpp - min/max weight quantizer and RTN -------------------===//

#include "quant-mlir/Quant/Quantizer.h"

#include "llvm/ADT/Twine.h"

#include <limits>

using namespace llvm;

namespace quant_mlir::quant {

// wq.dequantize: w = scale[g] * (q - zero[g]), the Q of Algorithm 1.
std::vector<float> QuantizedWeight::dequantize() const {
  std::vector<float> out(size_t(n * k));
  for (int64_t col = 0; col < k; ++col) {
    int64_t g = groupOf(col);
    const float *s = &scales[size_t(g * n)];
    const int32_t *z = &zeros[size_t(g * n)];
    const uint8_t *qk = &q[size_t(col * n)];
    for (int64_t row = 0; row < n; ++row)
      out[size_t(row * k + col)] = s[row] * float(int32_t(qk[row]) - z[row]);
  }
  return out;
}

Error verifyScheme(const Scheme &scheme, int64_t n, int64_t k,
                   StringRef what) {
  auto fail = [&](const Twine &msg) {
    return createStringError(inconvertibleErrorCode(),
                             "layer '" + what + "': " + msg);
  };
  if (scheme.bits != 2 && scheme.bits != 3 && scheme.bits != 4 &&
      scheme.bits != 8)
    return fail("bits must be 2, 3, 4 or 8, got " + Twine(scheme.bits));
  if (n <= 0 || k <= 0)
    return fail("weight shape must be positive, got [" + Twine(n) + ", " +
                Twine(k) + "]");
  if (scheme.groupSize != -1 && scheme.groupSize < 1)
    return fail("group size must be -1 (per channel) or positive, got " +
                Twine(scheme.groupSize));
  if (!scheme.isPerChannel() && k % scheme.groupSize != 0)
    return fail("K = " + Twine(k) + " is not divisible by group size " +
                Twine(scheme.groupSize));
  return Error::success();
}

// quant(.) of the paper's Eq. (2) and Algorithm 1: the "standard uniform
// per-row asymmetric quantization on the min-max grid" of its experimental
// setup (symmetric optional), as the reference's quant.py
// Quantizer.find_params (perchannel=True, weight=True) fixes it, for one row.
GridParams findParams(ArrayRef<double> x, unsigned bits, bool symmetric) {
  int32_t maxq = (int32_t(1) << bits) - 1;
  double xmin = 0.0, xmax = 0.0; // min(x.min, 0), max(x.max, 0)
  for (double v : x) {
    xmin = std::min(xmin, v);
    xmax = std::max(xmax, v);
  }
  if (symmetric) {
    xmax = std::max(std::fabs(xmin), xmax);
    if (xmin < 0)
      xmin = -xmax;
  }
  if (xmin == 0 && xmax == 0) {
    xmin = -1;
    xmax = +1;
  }
  double scale = (xmax - xmin) / maxq;
  GridParams p;
  p.zero = symmetric ? (maxq + 1) / 2 : int32_t(std::nearbyint(-xmin / scale));
  // The stored precision (see the header): round the grid to float32.
  float s32 = float(scale);
  if (s32 == 0.0f)
    s32 = std::numeric_limits<float>::denorm_min();
  p.scale = double(s32);
  return p;
}

// The paper's RTN baseline: quant(.) on every row of every group of the
// original weights, no error feedback (no Hessian: Eq. (1) is not consulted).
Expected<QuantizedWeight> quantizeRTN(ArrayRef<float> w, int64_t n, int64_t k,
                                      const Scheme &scheme) {
  if (Error err = verifyScheme(scheme, n, k, "<rtn>"))
    return std::move(err);
  if (int64_t(w.size()) != n * k)
    return createStringError(inconvertibleErrorCode(),
                             "weight has %zu elements, expected N*K = %lld",
                             w.size(), (long long)(n * k));
  for (float v : w)
    if (!std::isfinite(v))
      return createStringError(inconvertibleErrorCode(),
                               "weight has a non-finite value");

  QuantizedWeight qw;
  qw.n = n;
  qw.k = k;
  qw.scheme = scheme;
  int64_t groups = scheme.numGroups(k);
  int64_t gs = scheme.isPerChannel() ? k : scheme.groupSize;
  int32_t maxq = scheme.maxCode();
  qw.q.resize(size_t(k * n));
  qw.scales.resize(size_t(groups * n));
  qw.zeros.resize(size_t(groups * n));
  std::vector<double> seg(static_cast<size_t>(gs));
  for (int64_t row = 0; row < n; ++row) {
    for (int64_t g = 0; g < groups; ++g) {
      for (int64_t j = 0; j < gs; ++j)
        seg[size_t(j)] = double(w[size_t(row * k + g * gs + j)]);
      GridParams p = findParams(seg, scheme.bits, scheme.symmetric);
      qw.scales[size_t(g * n + row)] = float(p.scale);
      qw.zeros[size_t(g * n + row)] = p.zero;
      for (int64_t j = 0; j < gs; ++j)
        qw.q[size_t((g * gs + j) * n + row)] =
            uint8_t(quantizeValue(seg[size_t(j)], p, maxq));
    }
  }
  if (scheme.actOrder) {
    qw.gIdx.resize(size_t(k));
    for (int64_t col = 0; col < k; ++col)
      qw.gIdx[size_t(col)] = int32_t(scheme.groupOf(col));
  }
  return qw;
}

} // namespace quant_mlir::quant
