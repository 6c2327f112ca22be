//===- AWQ.cpp - activation-aware weight quantization -----------------------===//
// AutoAWQ's scale search, clip search and quantizer (awq/quantize/
// quantizer.py, v0.2.x), on float64 with OpenBLAS for the losses.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Quant/AWQ.h"

#include "llvm/ADT/STLExtras.h"

#include <cblas.h>

#include <cmath>
#include <limits>

using namespace llvm;
using namespace quant_mlir::quant;

namespace {
Error makeError(const Twine &msg) {
  return createStringError(inconvertibleErrorCode(), msg);
}

/// The grid pseudo_quantize_tensor puts on one row of one group.
struct AWQGrid {
  double scale; // float32-representable
  int32_t zero, lo, hi; // codes are clamp(round(w / scale) + zero, lo, hi)
};

AWQGrid awqGrid(const float *w, int64_t len, const Scheme &s) {
  double mx = -std::numeric_limits<double>::infinity(), mn = -mx, amax = 0;
  for (int64_t i = 0; i < len; ++i) {
    mx = std::max(mx, double(w[i]));
    mn = std::min(mn, double(w[i]));
    amax = std::max(amax, std::abs(double(w[i])));
  }
  AWQGrid g;
  if (!s.symmetric) {
    // zero_point=True: max_int = 2^b - 1, min_int = 0.
    int32_t maxInt = (int32_t(1) << s.bits) - 1;
    g.scale = double(float(std::max(mx - mn, 1e-5) / maxInt));
    g.zero = int32_t(std::min(std::max(-std::nearbyint(mn / g.scale), 0.0),
                              double(maxInt)));
    g.lo = 0;
    g.hi = maxInt;
  } else {
    // max_int = 2^(b-1) - 1, min_int = -2^(b-1); stored with offset 2^(b-1).
    int32_t maxInt = (int32_t(1) << (s.bits - 1)) - 1;
    g.scale = double(float(std::max(amax, 1e-5) / maxInt));
    g.zero = 0;
    g.lo = -(maxInt + 1);
    g.hi = maxInt;
  }
  return g;
}

inline int32_t awqCode(double w, const AWQGrid &g) {
  double v = std::nearbyint(w / g.scale) + double(g.zero);
  return int32_t(std::min(std::max(v, double(g.lo)), double(g.hi)));
}

/// Fake-quantizes one row group in place into `out` (float64).
void fakeQuantGroup(const float *w, int64_t len, const Scheme &s,
                    double *out) {
  AWQGrid g = awqGrid(w, len, s);
  for (int64_t i = 0; i < len; ++i)
    out[i] = double(awqCode(w[i], g) - g.zero) * g.scale;
}

int64_t groupLen(const Scheme &s, int64_t k) {
  return s.isPerChannel() ? k : s.groupSize;
}
} // namespace

Expected<QuantizedWeight>
quant_mlir::quant::quantizeAWQRTN(ArrayRef<float> w, int64_t n, int64_t k,
                                  const Scheme &scheme) {
  if (Error err = verifyScheme(scheme, n, k, "<awq>"))
    return std::move(err);
  if (int64_t(w.size()) != n * k)
    return makeError("weight has " + Twine(w.size()) +
                     " elements, expected N*K");
  for (float v : w)
    if (!std::isfinite(v))
      return makeError("weight has a non-finite value");
  QuantizedWeight qw;
  qw.n = n;
  qw.k = k;
  qw.scheme = scheme;
  int64_t groups = scheme.numGroups(k), gs = groupLen(scheme, k);
  int32_t offset = scheme.symmetric ? (int32_t(1) << (scheme.bits - 1)) : 0;
  qw.q.assign(size_t(k * n), 0);
  qw.scales.assign(size_t(groups * n), 0.f);
  qw.zeros.assign(size_t(groups * n), 0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t g = 0; g < groups; ++g) {
      const float *row = w.data() + r * k + g * gs;
      AWQGrid grid = awqGrid(row, gs, scheme);
      qw.scales[g * n + r] = float(grid.scale);
      qw.zeros[g * n + r] = grid.zero + offset;
      for (int64_t i = 0; i < gs; ++i)
        qw.q[(g * gs + i) * n + r] = uint8_t(awqCode(row[i], grid) + offset);
    }
  if (scheme.actOrder) {
    qw.gIdx.resize(k);
    for (int64_t c = 0; c < k; ++c)
      qw.gIdx[c] = int32_t(scheme.groupOf(c));
  }
  return qw;
}

Expected<std::vector<AWQCandidate>>
quant_mlir::quant::awqCandidates(ArrayRef<float> xMean, int64_t k,
                                 ArrayRef<AWQLinear> layers,
                                 const AWQOptions &options, StringRef group) {
  auto fail = [&](const Twine &msg) {
    return makeError("awq group '" + group + "': " + msg);
  };
  if (int64_t(xMean.size()) != k)
    return fail("statistics do not match K = " + Twine(k));
  if (layers.empty() || options.nGrid < 1)
    return fail("no layers or no candidates");
  int64_t totalN = 0;
  for (const AWQLinear &l : layers) {
    if (int64_t(l.w.size()) != l.n * k)
      return fail("a weight is not [N, " + Twine(k) + "]");
    if (Error err = verifyScheme(l.scheme, l.n, k, group))
      return std::move(err);
    totalN += l.n;
  }
  // w_mean (_search_best_scale): |w| / (absmax of its quantization group +
  // 1e-6), averaged over the output rows of all balanced layers.
  std::vector<double> wMean(k, 0.0);
  for (const AWQLinear &l : layers) {
    int64_t gs = groupLen(l.scheme, k);
    for (int64_t r = 0; r < l.n; ++r)
      for (int64_t g0 = 0; g0 < k; g0 += gs) {
        const float *row = l.w.data() + r * k + g0;
        double amax = 0;
        for (int64_t i = 0; i < gs; ++i)
          amax = std::max(amax, std::abs(double(row[i])));
        for (int64_t i = 0; i < gs; ++i)
          wMean[g0 + i] += std::abs(double(row[i])) / (amax + 1e-6);
      }
  }
  for (double &v : wMean)
    v /= double(totalN);

  std::vector<AWQCandidate> out;
  std::vector<bool> duos;
  if (options.duo != DuoScaling::Off)
    duos.push_back(true);
  if (options.duo != DuoScaling::On)
    duos.push_back(false);
  for (bool duo : duos)
    for (int64_t i = 0; i < options.nGrid; ++i) {
      // _compute_best_scale: ratio = i / n_grid.
      AWQCandidate c{double(i) / double(options.nGrid), duo,
                     std::vector<double>(k)};
      std::vector<double> &s = c.scales;
      double smax = 0, smin = std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < k; ++j) {
        double x = std::pow(double(xMean[j]), c.alpha);
        double v = duo ? x / (std::pow(wMean[j], 1 - c.alpha) + 1e-4) : x;
        s[j] = std::max(v, 1e-4); // .clamp(min=1e-4)
        smax = std::max(smax, s[j]);
        smin = std::min(smin, s[j]);
      }
      double norm = std::sqrt(smax * smin);
      for (int64_t j = 0; j < k; ++j) {
        s[j] /= norm;
        if (!std::isfinite(s[j])) // scales[isinf | isnan] = 1
          s[j] = 1;
      }
      out.push_back(std::move(c));
    }
  return out;
}

void quant_mlir::quant::awqScaledFakeQuant(ArrayRef<float> w, int64_t n,
                                           int64_t k, ArrayRef<double> s,
                                           const Scheme &scheme,
                                           MutableArrayRef<double> out) {
  // fc.weight.mul_(scales); pseudo_quantize_tensor(..) / scales, with W s
  // rounded to float32 (the dtype the weights are held in).
  int64_t gs = groupLen(scheme, k);
  std::vector<float> scaled(size_t(n * k));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c)
      scaled[r * k + c] = float(double(w[r * k + c]) * s[c]);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t g0 = 0; g0 < k; g0 += gs)
      fakeQuantGroup(scaled.data() + r * k + g0, gs, scheme,
                     out.data() + r * k + g0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c)
      out[r * k + c] /= s[c];
}

Expected<AWQScaleResult> quant_mlir::quant::searchAWQScales(
    ArrayRef<float> xMean, ArrayRef<double> hessian, int64_t k,
    ArrayRef<AWQLinear> layers, const AWQOptions &options, StringRef group,
    ArrayRef<double> moduleLoss) {
  auto candidates = awqCandidates(xMean, k, layers, options, group);
  if (!candidates)
    return candidates.takeError();
  auto fail = [&](const Twine &msg) {
    return makeError("awq group '" + group + "': " + msg);
  };
  if (!moduleLoss.empty() && moduleLoss.size() != candidates->size())
    return fail("the statistics hold " + Twine(moduleLoss.size()) +
                " module losses for " + Twine(candidates->size()) +
                " scale candidates");
  if (moduleLoss.empty() && int64_t(hessian.size()) != k * k)
    return fail("statistics do not match K = " + Twine(k));
  int64_t totalN = 0;
  for (const AWQLinear &l : layers)
    totalN += l.n;

  AWQScaleResult best;
  best.loss = std::numeric_limits<double>::infinity();
  std::vector<double> d, hd;
  for (auto [ci, c] : llvm::enumerate(*candidates)) {
    double loss = 0;
    if (!moduleLoss.empty()) {
      loss = moduleLoss[ci];
    } else {
      // loss = mean over tokens and outputs of (X W^T - X (Q(W s) / s)^T)^2
      // = sum_l tr(D_l H D_l^T) / 2 / sum_l N_l, H = 2/n X^T X.
      for (const AWQLinear &l : layers) {
        d.resize(size_t(l.n * k));
        hd.resize(size_t(l.n * k));
        awqScaledFakeQuant(l.w, l.n, k, c.scales, l.scheme, d);
        for (int64_t j = 0; j < l.n * k; ++j)
          d[j] = double(l.w[j]) - d[j];
        cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, l.n, k, 1.0,
                    hessian.data(), k, d.data(), k, 0.0, hd.data(), k);
        double tr = 0;
        for (size_t j = 0; j < d.size(); ++j)
          tr += d[j] * hd[j];
        loss += tr / 2;
      }
      loss /= double(totalN);
    }
    best.history.push_back(loss);
    if (loss < best.loss) { // strict: the first best wins, as AutoAWQ
      best.loss = loss;
      best.alpha = c.alpha;
      best.duo = c.duo;
      best.scales = c.scales;
    }
  }
  if (best.scales.empty())
    return fail("every candidate's loss is NaN");
  return best;
}

std::vector<double> quant_mlir::quant::searchAWQClip(
    ArrayRef<float> w, int64_t n, int64_t k, ArrayRef<double> x, int64_t m,
    const Scheme &scheme, const AWQOptions &options) {
  int64_t gs = groupLen(scheme, k), groups = k / gs;
  // step_size = max(1, n_token // n_sample_token); input_feat[:, ::step].
  int64_t step = std::max<int64_t>(1, m / options.clipTokens);
  std::vector<int64_t> tokens;
  for (int64_t t = 0; t < m; t += step)
    tokens.push_back(t);
  int64_t nt = tokens.size();
  int64_t shrinks = int64_t(options.maxShrink * double(options.clipGrid));
  std::vector<double> best(size_t(n * groups));
  // Per group, all rows at once: the error of every row's candidate is
  // a column of X_g (Q_g - W_g)^T [T, N], one dgemm per shrink factor.
  std::vector<double> xg(size_t(nt * gs)), diff(size_t(n * gs)),
      out(size_t(nt * n)), orgMax(n), minErr(n), q(gs);
  std::vector<float> cur(gs);
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t t = 0; t < nt; ++t)
      std::copy_n(x.data() + tokens[t] * k + g * gs, gs, xg.data() + t * gs);
    for (int64_t r = 0; r < n; ++r) {
      const float *row = w.data() + r * k + g * gs;
      orgMax[r] = 0;
      for (int64_t i = 0; i < gs; ++i)
        orgMax[r] = std::max(orgMax[r], std::abs(double(row[i])));
      minErr[r] = 1e9; // min_errs = ones * 1e9
      best[r * groups + g] = orgMax[r];
    }
    for (int64_t is = 0; is < shrinks; ++is) {
      double shrink = 1.0 - double(is) / double(options.clipGrid);
      for (int64_t r = 0; r < n; ++r) {
        const float *row = w.data() + r * k + g * gs;
        double maxVal = orgMax[r] * shrink;
        for (int64_t i = 0; i < gs; ++i)
          cur[i] = float(std::min(std::max(double(row[i]), -maxVal), maxVal));
        fakeQuantGroup(cur.data(), gs, scheme, q.data());
        for (int64_t i = 0; i < gs; ++i)
          diff[r * gs + i] = q[i] - double(row[i]);
      }
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nt, n, gs, 1.0,
                  xg.data(), gs, diff.data(), gs, 0.0, out.data(), n);
      for (int64_t r = 0; r < n; ++r) {
        double err = 0;
        for (int64_t t = 0; t < nt; ++t)
          err += out[t * n + r] * out[t * n + r];
        err /= double(nt);
        if (err < minErr[r]) {
          minErr[r] = err;
          best[r * groups + g] = orgMax[r] * shrink;
        }
      }
    }
  }
  return best;
}

void quant_mlir::quant::applyAWQClip(MutableArrayRef<float> w, int64_t n,
                                     int64_t k, ArrayRef<double> thresholds,
                                     const Scheme &scheme) {
  int64_t gs = groupLen(scheme, k), groups = k / gs;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) {
      double t = thresholds[r * groups + c / gs];
      w[r * k + c] = float(std::min(std::max(double(w[r * k + c]), -t), t));
    }
}
