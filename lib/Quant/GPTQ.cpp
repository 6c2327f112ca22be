//===- GPTQ.cpp - GPTQ weight quantization --------------------------------===//
// Frantar et al., arXiv 2210.17323. Equations, steps and Algorithm 1 below
// are the paper's: Eq. (1) the layer-wise objective argmin ||WX - W'X||^2,
// Eq. (2) OBQ's greedy quantize-and-update (w_q, delta_F), Eq. (3) the inverse
// Hessian update after removing a column, Eqs. (4)/(5) their multi-column
// (block) forms; "Step 1/2/3" are the GPTQ section's Arbitrary Order
// Insight, Lazy Batch-Updates and Cholesky Reformulation. "The reference" is
// IST-DASLab/gptq's gptq.py (fasterquant) and, for static groups and g_idx,
// AutoGPTQ/GPTQModel. Everything is float64.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Quant/GPTQ.h"

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <string>

using namespace llvm;

namespace quant_mlir::quant {

namespace {

Error layerError(StringRef layer, const Twine &msg) {
  return createStringError(inconvertibleErrorCode(),
                           "layer '" + layer + "': " + msg);
}

std::string formatDamp(double damp) {
  std::string s;
  raw_string_ostream os(s);
  os << format("%g", damp);
  return s;
}

/// Step 3, "Cholesky Reformulation": mild dampening H <- H + lambda I with
/// lambda = percdamp * mean(diag H) (the paper's "1% of the average diagonal
/// value"), then Algorithm 1's H^-1 <- Cholesky(H^-1)^T, the upper factor U
/// of H^-1 = U^T U. Row q of U, scaled by U_qq, is row q of the inverse
/// Hessian after the Eq. (3) eliminations of all earlier columns, so Eq. (3)
/// never has to be applied. As the reference: cholesky, cholesky_inverse,
/// cholesky(upper=True).
/// `h` is [k][k] row-major; on success it holds U (strict lower part zero).
/// `lambda` receives the damping; `onFactor`, when set, sees the damped H's
/// lower Cholesky factor L (H = L L^T, row-major lower triangle of its
/// argument; the strict upper triangle is not L's) before H^-1 replaces it.
Error dampedCholeskyInverse(
    std::vector<double> &h, int64_t k, double dampPercent, StringRef layer,
    double &lambda, function_ref<void(const double *)> onFactor = nullptr) {
  double mean = 0;
  for (int64_t i = 0; i < k; ++i)
    mean += h[size_t(i * k + i)];
  mean /= double(k);
  double damp = dampPercent * mean;
  lambda = damp;
  for (int64_t i = 0; i < k; ++i)
    h[size_t(i * k + i)] += damp;

  auto notPD = [&]() {
    return layerError(layer,
                      "Hessian is not positive definite after damping "
                      "(damp-percent " +
                          formatDamp(dampPercent) +
                          "); try a larger --damp-percent");
  };
  lapack_int nk = lapack_int(k);
  // A symmetric row-major matrix is the same memory as its column-major self;
  // column-major 'U' is row-major lower. H = L L^T, L in the row-major lower
  // triangle.
  if (LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'U', nk, h.data(), nk) != 0)
    return notPD();
  if (onFactor)
    onFactor(h.data());
  // H^-1 from the factor (torch.cholesky_inverse), row-major lower triangle.
  if (LAPACKE_dpotri(LAPACK_COL_MAJOR, 'U', nk, h.data(), nk) != 0)
    return notPD();
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = i + 1; j < k; ++j)
      h[size_t(i * k + j)] = h[size_t(j * k + i)];
  // Column-major lower factor = row-major upper U with H^-1 = U^T U
  // (torch.linalg.cholesky(upper=True)).
  if (LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', nk, h.data(), nk) != 0)
    return notPD();
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < i; ++j)
      h[size_t(i * k + j)] = 0;
  return Error::success();
}

} // namespace

std::vector<int64_t> actOrderPermutation(ArrayRef<double> diag) {
  std::vector<int64_t> perm(diag.size());
  std::iota(perm.begin(), perm.end(), int64_t(0));
  // Stable: equal diagonals keep ascending index order (the reference's
  // torch.argsort(descending=True) leaves their order unspecified).
  std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) {
    return diag[size_t(a)] > diag[size_t(b)];
  });
  return perm;
}

Expected<QuantizedWeight>
quantizeGPTQ(ArrayRef<float> w, int64_t n, int64_t k, ArrayRef<double> hessian,
             const Scheme &scheme, const GPTQOptions &options,
             StringRef layerName, GPTQOutputError *outputError) {
  if (Error err = verifyScheme(scheme, n, k, layerName))
    return std::move(err);
  if (int64_t(w.size()) != n * k)
    return layerError(layerName, "weight has " + Twine(w.size()) +
                                     " elements, expected N*K = " +
                                     Twine(n * k));
  if (int64_t(hessian.size()) != k * k)
    return layerError(layerName, "Hessian has " + Twine(hessian.size()) +
                                     " elements, expected K*K = " +
                                     Twine(k * k));
  if (options.blockSize < 1)
    return layerError(layerName, "block size must be positive, got " +
                                     Twine(options.blockSize));
  if (!std::isfinite(options.dampPercent) || options.dampPercent < 0)
    return layerError(layerName, "damp-percent must be finite and >= 0");
  for (float v : w)
    if (!std::isfinite(v))
      return layerError(layerName, "weight has a non-finite value");
  for (double v : hessian)
    if (!std::isfinite(v))
      return layerError(layerName, "Hessian has a non-finite value");

  const unsigned bits = scheme.bits;
  const int32_t maxq = scheme.maxCode();
  const bool perChannel = scheme.isPerChannel();
  const bool staticGroups = options.staticGroups && !perChannel;
  const int64_t groups = scheme.numGroups(k);
  const int64_t gs = perChannel ? k : scheme.groupSize;
  const size_t uk = size_t(k);

  std::vector<double> W(w.begin(), w.end()); // [n][k]
  std::vector<double> H(uk * uk);            // [k][k], symmetrized
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j)
      H[size_t(i * k + j)] =
          0.5 * (hessian[size_t(i * k + j)] + hessian[size_t(j * k + i)]);

  // The grids, [group slot][row]; the slot is what g_idx names.
  std::vector<GridParams> params(size_t(groups * n));
  auto rowGrid = [&](const std::vector<double> &mat, int64_t row,
                     int64_t begin, int64_t count) {
    return findParams(ArrayRef<double>(&mat[size_t(row * k + begin)],
                                       size_t(count)),
                      bits, scheme.symmetric);
  };

  // Stage 1 (reference: quantizer.find_params(W) before anything else): a
  // per-channel grid comes from the original weights.
  if (perChannel)
    for (int64_t row = 0; row < n; ++row)
      params[size_t(row)] = rowGrid(W, row, 0, k);

  // Stage 2: dead inputs (a zero diagonal: the channel never fires) cannot
  // affect the output; H_ii = 1 keeps H invertible, W[:, i] = 0. The output
  // error identity needs the dead rows of H to be zero (true of any Gram
  // matrix: H_ii = 0 forces row i to 0), so that W's dead columns are free.
  std::vector<uint8_t> dead(uk, 0);
  bool identityHolds = true;
  for (int64_t i = 0; i < k; ++i) {
    if (H[size_t(i * k + i)] != 0)
      continue;
    dead[size_t(i)] = 1;
    for (int64_t j = 0; j < k; ++j)
      if (H[size_t(i * k + j)] != 0)
        identityHolds = false;
    H[size_t(i * k + i)] = 1;
    for (int64_t row = 0; row < n; ++row)
      W[size_t(row * k + i)] = 0;
  }

  // Stage 3: static groups, every grid up front from the unpermuted weights.
  if (staticGroups)
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t row = 0; row < n; ++row)
        params[size_t(g * n + row)] = rowGrid(W, row, g * gs, gs);

  // Stage 4: act-order (desc_act: the reference's heuristic of quantizing
  // columns by decreasing diag H; Step 1 of the paper shows any fixed order
  // works): permute W's columns and H.
  std::vector<int64_t> perm(uk);
  std::iota(perm.begin(), perm.end(), int64_t(0));
  if (scheme.actOrder) {
    std::vector<double> diag(uk);
    for (int64_t i = 0; i < k; ++i)
      diag[size_t(i)] = H[size_t(i * k + i)];
    perm = actOrderPermutation(diag);
    std::vector<double> Wp(W.size()), Hp(H.size());
    for (int64_t row = 0; row < n; ++row)
      for (int64_t i = 0; i < k; ++i)
        Wp[size_t(row * k + i)] = W[size_t(row * k + perm[size_t(i)])];
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j)
        Hp[size_t(i * k + j)] =
            H[size_t(perm[size_t(i)] * k + perm[size_t(j)])];
    W.swap(Wp);
    H.swap(Hp);
  }

  // Stage 5: dampening and Hinv (Cholesky reformulation). H becomes Hinv.
  // For the output error, tr(W0 H' W0^T) = ||W0 L||_F^2 comes from the
  // factor on the way: a dtrmm over chunks of rows of the (permuted,
  // dead-zeroed) W0, which Algorithm 1 has not updated yet.
  double lambda = 0, refDamped = 0, w0Squares = 0, refSeconds = 0;
  auto referenceFromFactor = [&](const double *L) {
    auto start = std::chrono::steady_clock::now();
    // Each chunk streams all of L (K^2 doubles, 970 MB at K = 11008):
    // 64 MiB chunks keep that to a few passes (64-row chunks made the dtrmm
    // memory-bound, 20% of GPTQ at 4096 x 11008).
    const int64_t chunk = std::max<int64_t>(
        1, options.errorChunkBytes / int64_t(sizeof(double) * uk));
    std::vector<double> rows(size_t(std::min(chunk, n)) * uk);
    for (int64_t r0 = 0; r0 < n; r0 += chunk) {
      const int64_t m = std::min(chunk, n - r0);
      std::copy(&W[size_t(r0 * k)], &W[size_t((r0 + m) * k)], rows.begin());
      for (size_t i = 0; i < size_t(m) * uk; ++i)
        w0Squares += rows[i] * rows[i];
      cblas_dtrmm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans,
                  CblasNonUnit, blasint(m), blasint(k), 1.0, L, blasint(k),
                  rows.data(), blasint(k));
      for (size_t i = 0; i < size_t(m) * uk; ++i)
        refDamped += rows[i] * rows[i];
    }
    refSeconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
  };
  const bool measure = outputError && identityHolds;
  if (Error err = dampedCholeskyInverse(
          H, k, options.dampPercent, layerName, lambda,
          measure ? function_ref<void(const double *)>(referenceFromFactor)
                  : nullptr))
    return std::move(err);
  const std::vector<double> &Hinv = H;

  // The grid slot of (permuted) column i.
  auto slotOf = [&](int64_t i) -> int64_t {
    if (perChannel)
      return 0;
    if (staticGroups)
      return perm[size_t(i)] / gs;
    return i / gs;
  };

  QuantizedWeight qw;
  qw.n = n;
  qw.k = k;
  qw.scheme = scheme;
  qw.q.resize(uk * size_t(n));

  // Stage 6: Algorithm 1 (all rows in the same column order, Step 1), with
  // lazy batch updates of B columns (Step 2, Eq. (4)). For the output error:
  // errSquares = sum E_ij^2 = tr(D0 H' D0^T) (D0 = W0 - Q) and the diagonal
  // part of H' - H, sum_j (lambda + dead_j) ||D0_j||^2.
  double errSquares = 0, errDiagonal = 0;
  const int64_t B = std::min(options.blockSize, k);
  std::vector<double> Err(size_t(n * B)); // [n][count], (w - q) / [Hinv]_qq
  for (int64_t i1 = 0; i1 < k; i1 += B) {
    const int64_t i2 = std::min(i1 + B, k);
    const int64_t count = i2 - i1;

    // A group's grid is fixed when its first column is reached, from W[:,
    // g0:g0+gs] as the reference reads it: with every earlier block's update
    // applied, but not the current block's in-block updates. Computing all
    // grids that start in this block now, before the block changes W,
    // reproduces that.
    if (!perChannel && !staticGroups)
      for (int64_t g0 = (i1 + gs - 1) / gs * gs; g0 < i2; g0 += gs)
        for (int64_t row = 0; row < n; ++row)
          params[size_t((g0 / gs) * n + row)] = rowGrid(W, row, g0, gs);

    // Algorithm 1's inner loop; within a block the rows are independent:
    //   Q_j = quant(W_j);  E_j = (W_j - Q_j) / [H^-1]_jj;
    //   W_{j:i+B} -= E_j * H^-1_{j, j:i+B}
    // i.e. Eq. (2)'s delta_F = -(w_q - quant(w_q)) / [H_F^-1]_qq *
    // (H_F^-1)_{:,q}, with the Cholesky rows standing in for the eliminated
    // inverse (Step 3), restricted to the block (Step 2).
    for (int64_t row = 0; row < n; ++row) {
      double *wr = &W[size_t(row * k + i1)];
      double *er = &Err[size_t(row * count)];
      for (int64_t i = 0; i < count; ++i) {
        const int64_t col = i1 + i;
        const GridParams &p = params[size_t(slotOf(col) * n + row)];
        const double x = wr[i];
        const int32_t code = quantizeValue(x, p, maxq);
        const double deq = p.scale * double(code - p.zero);
        const double *hrow = &Hinv[size_t(col * k + i1)];
        const double e = (x - deq) / hrow[i];
        for (int64_t j = i + 1; j < count; ++j)
          wr[j] -= e * hrow[j];
        er[i] = e;
        if (measure) {
          const int64_t orig = perm[size_t(col)];
          const double w0 =
              dead[size_t(orig)] ? 0.0 : double(w[size_t(row * k + orig)]);
          const double d0 = w0 - deq;
          errSquares += e * e;
          errDiagonal += (lambda + double(dead[size_t(orig)])) * d0 * d0;
        }
        qw.q[size_t(perm[size_t(col)] * n + row)] = uint8_t(code);
      }
    }

    // Step 2, Eq. (4): the lazy batch update of all later columns at once,
    // W[:, i2:] -= E * H^-1[i1:i2, i2:] (Algorithm 1's last line), one GEMM.
    if (i2 < k)
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blasint(n),
                  blasint(k - i2), blasint(count), -1.0, Err.data(),
                  blasint(count), &Hinv[size_t(i1 * k + i2)], blasint(k), 1.0,
                  &W[size_t(i2)], blasint(k));
  }

  qw.scales.resize(size_t(groups * n));
  qw.zeros.resize(size_t(groups * n));
  for (size_t i = 0; i < params.size(); ++i) {
    qw.scales[i] = float(params[i].scale);
    qw.zeros[i] = params[i].zero;
  }
  if (outputError) {
    *outputError = GPTQOutputError();
    if (measure) {
      outputError->valid = true;
      // Both differences are >= 0 in exact arithmetic (H is PSD); rounding
      // may not keep a zero error at zero.
      outputError->error = std::max(0.0, errSquares - errDiagonal);
      outputError->reference = std::max(0.0, refDamped - lambda * w0Squares);
    }
    outputError->referenceSeconds = refSeconds;
    outputError->gridScales.resize(params.size());
    for (size_t i = 0; i < params.size(); ++i)
      outputError->gridScales[i] = params[i].scale;
  }
  // g_idx as AutoGPTQ/GPTQModel record it: g_idx[perm[i]] = i / group_size,
  // or the original k / group_size with static groups; 0 per channel.
  if (scheme.actOrder) {
    qw.gIdx.resize(uk);
    for (int64_t i = 0; i < k; ++i)
      qw.gIdx[size_t(perm[size_t(i)])] = int32_t(slotOf(i));
  }
  return qw;
}

} // namespace quant_mlir::quant
