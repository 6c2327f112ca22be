//===- QuantTest.cpp - RTN, GPTQ and gptq packing -------------------------===//
// Packing against a brute-force bit loop, RTN on hand-computed cases, GPTQ
// invariants (diagonal H: no error feedback, so GPTQ = RTN), bad inputs, and
// independence from the OpenBLAS thread count.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Quant/GPTQ.h"
#include "quant-mlir/Quant/Packing.h"

#include "gtest/gtest.h"

#include <cblas.h>

#include <cmath>
#include <random>

using namespace quant_mlir::quant;

namespace {

constexpr unsigned kAllBits[] = {2, 3, 4, 8};

/// Bit `b` of the little-endian stream held in `words` (stream order).
bool streamBit(const std::vector<uint32_t> &words, int64_t b) {
  return (words[size_t(b / 32)] >> (b % 32)) & 1;
}

TEST(Packing, CodesMatchBruteForceBitLoop) {
  std::mt19937 rng(1);
  for (unsigned bits : kAllBits) {
    const int64_t k = 96, n = 5; // 96 * bits is a multiple of 32 for all bits
    QuantizedWeight qw;
    qw.n = n;
    qw.k = k;
    qw.scheme = Scheme{bits, -1, false, false};
    qw.q.resize(size_t(k * n));
    for (auto &c : qw.q)
      c = uint8_t(rng() & ((1u << bits) - 1));
    qw.zeros.assign(size_t(n), 1);
    std::vector<int32_t> words = packCodesGPTQ(qw);
    int64_t rows = k * bits / 32;
    ASSERT_EQ(int64_t(words.size()), rows * n) << bits;
    for (int64_t col = 0; col < n; ++col) {
      // Column `col`'s stream, one bit at a time.
      std::vector<uint32_t> stream(static_cast<size_t>(rows));
      for (int64_t r = 0; r < rows; ++r)
        stream[size_t(r)] = uint32_t(words[size_t(r * n + col)]);
      for (int64_t i = 0; i < k; ++i) {
        uint32_t v = 0;
        for (unsigned b = 0; b < bits; ++b)
          v |= uint32_t(streamBit(stream, i * bits + b)) << b;
        ASSERT_EQ(v, qw.q[size_t(i * n + col)])
            << "bits " << bits << " k " << i << " n " << col;
      }
    }
    EXPECT_EQ(unpackCodesGPTQ(words, k, n, bits), qw.q) << bits;
  }
}

TEST(Packing, ZerosMatchBruteForceBitLoop) {
  std::mt19937 rng(2);
  for (unsigned bits : kAllBits) {
    const int64_t groups = 3, n = 64, k = 96;
    QuantizedWeight qw;
    qw.n = n;
    qw.k = k;
    qw.scheme = Scheme{bits, 32, false, false};
    qw.zeros.resize(size_t(groups * n));
    for (auto &z : qw.zeros)
      z = int32_t(rng() & ((1u << bits) - 1));
    std::vector<int32_t> words = packZerosGPTQ(qw);
    int64_t perRow = n * bits / 32;
    ASSERT_EQ(int64_t(words.size()), groups * perRow);
    for (int64_t g = 0; g < groups; ++g) {
      std::vector<uint32_t> stream(words.begin() + g * perRow,
                                   words.begin() + (g + 1) * perRow);
      for (int64_t i = 0; i < n; ++i) {
        int32_t v = 0;
        for (unsigned b = 0; b < bits; ++b)
          v |= int32_t(streamBit(stream, i * bits + b)) << b;
        ASSERT_EQ(v, qw.zeros[size_t(g * n + i)]) << bits;
      }
    }
    EXPECT_EQ(unpackZerosGPTQ(words, groups, n, bits), qw.zeros) << bits;
  }
}

TEST(Packing, ThreeBitStraddlesWords) {
  // Field 10 of a 3-bit stream is bits 30..32: two in word 0, one in word 1.
  std::vector<uint32_t> values(32, 0);
  values[10] = 0b101;
  std::vector<int32_t> w = packBitStream(values, 32, 1, 3, /*axis=*/0);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(uint32_t(w[0]), 0b01u << 30);
  EXPECT_EQ(uint32_t(w[1]), 0b1u);
  EXPECT_EQ(w[2], 0);
  EXPECT_EQ(unpackBitStream(w, 32, 1, 3, 0), values);
}

TEST(Packing, AllOnesFillWords) {
  for (unsigned bits : kAllBits) {
    std::vector<uint32_t> values(32, (1u << bits) - 1);
    std::vector<int32_t> w = packBitStream(values, 1, 32, bits, /*axis=*/1);
    ASSERT_EQ(w.size(), size_t(bits));
    for (int32_t word : w)
      EXPECT_EQ(word, -1) << bits;
  }
}

TEST(FindParams, HandComputed) {
  // Asymmetric 2-bit on [-1, 0.5, 2]: xmin -1, xmax 2, scale 1, zero 1.
  std::vector<double> x = {-1, 0.5, 2};
  GridParams p = findParams(x, 2, /*symmetric=*/false);
  EXPECT_EQ(p.scale, 1.0);
  EXPECT_EQ(p.zero, 1);
  // Symmetric 2-bit: xmax = max(1, 2) = 2, xmin = -2: scale 4/3, zero 2.
  p = findParams(x, 2, /*symmetric=*/true);
  EXPECT_EQ(p.scale, double(float(4.0 / 3.0)));
  EXPECT_EQ(p.zero, 2);
  // All positive: xmin clamps to 0, zero 0.
  std::vector<double> pos = {1, 3};
  p = findParams(pos, 2, false);
  EXPECT_EQ(p.scale, 1.0);
  EXPECT_EQ(p.zero, 0);
  // All zero: [-1, 1].
  std::vector<double> zero = {0, 0};
  p = findParams(zero, 4, false);
  EXPECT_EQ(p.scale, double(float(2.0 / 15.0)));
  EXPECT_EQ(p.zero, 8); // round(1 / (2/15)) = round(7.5) = 8 (ties to even)
}

TEST(RTN, HandComputedAsymmetricGroups) {
  // N = 2, K = 4, 2-bit, groups of 2.
  std::vector<float> w = {-1, 2, 0.5f, 1.5f, // row 0
                          0,  0, -3,   3};   // row 1
  auto r = quantizeRTN(w, 2, 4, Scheme{2, 2, false, false});
  ASSERT_TRUE(bool(r)) << toString(r.takeError());
  // Row 0 group 0 [-1, 2]: scale 1, zero 1 -> codes 0, 3.
  // Row 0 group 1 [0.5, 1.5]: xmin 0, xmax 1.5, scale 0.5, zero 0 -> 1, 3.
  // Row 1 group 0 [0, 0]: [-1, 1], scale 2/3, zero round(1.5) = 2 -> 2, 2.
  // Row 1 group 1 [-3, 3]: scale 2, zero round(1.5) = 2 -> 2 + round(-1.5)
  //   = 2 - 2 = 0, 2 + round(1.5) = 4 -> clamp 3.
  EXPECT_EQ(r->scales, (std::vector<float>{1, float(2.0 / 3.0), 0.5f, 2}));
  EXPECT_EQ(r->zeros, (std::vector<int32_t>{1, 2, 0, 2}));
  // q is [K][N].
  EXPECT_EQ(r->q, (std::vector<uint8_t>{0, 2, 3, 2, 1, 0, 3, 3}));
  EXPECT_TRUE(r->gIdx.empty());
  std::vector<float> dq = r->dequantize();
  EXPECT_EQ(dq, (std::vector<float>{-1, 2, 0.5f, 1.5f, 0, 0, -4, 2}));
}

TEST(RTN, HandComputedSymmetricPerChannel) {
  // 4-bit symmetric, one row [-0.75, 0.1, 0.3]: xmax 0.75, scale 0.1,
  // zero 8. The float32 scale 0.1f is slightly above 0.1, so -0.75 / scale
  // = -7.49999989 (not the tie -7.5): codes 8 - 7 = 1, 8 + 1 = 9, 8 + 3 = 11.
  std::vector<float> w = {-0.75f, 0.1f, 0.3f};
  auto r = quantizeRTN(w, 1, 3, Scheme{4, -1, true, true});
  ASSERT_TRUE(bool(r)) << toString(r.takeError());
  EXPECT_EQ(r->scales, std::vector<float>{float(double(0.75f) * 2 / 15)});
  EXPECT_EQ(r->zeros, std::vector<int32_t>{8});
  EXPECT_EQ(r->q, (std::vector<uint8_t>{1, 9, 11}));
  EXPECT_EQ(r->gIdx, (std::vector<int32_t>{0, 0, 0})); // act-order w/o H
}

TEST(RTN, RejectsBadSchemes) {
  std::vector<float> w(64, 1.0f);
  auto r = quantizeRTN(w, 1, 64, Scheme{5, 32, true, false});
  ASSERT_FALSE(bool(r));
  EXPECT_NE(toString(r.takeError()).find("bits"), std::string::npos);
  r = quantizeRTN(w, 1, 64, Scheme{4, 48, true, false});
  ASSERT_FALSE(bool(r));
  EXPECT_NE(toString(r.takeError()).find("divisible"), std::string::npos);
  w[3] = NAN;
  r = quantizeRTN(w, 1, 64, Scheme{4, 32, true, false});
  ASSERT_FALSE(bool(r));
  consumeError(r.takeError());
}

struct Layer {
  int64_t n, k;
  std::vector<float> w;
  std::vector<double> h;
};

/// Random W and H = X^T X with some correlated columns.
Layer randomLayer(int64_t n, int64_t k, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal;
  Layer l{n, k, std::vector<float>(size_t(n * k)),
          std::vector<double>(size_t(k * k), 0.0)};
  for (auto &v : l.w)
    v = float(normal(rng));
  int64_t samples = 2 * k;
  std::vector<double> x(size_t(samples * k));
  for (auto &v : x)
    v = normal(rng);
  for (int64_t s = 0; s < samples; ++s)
    for (int64_t j = 1; j < k; j += 3) // correlate every third column
      x[size_t(s * k + j)] = 0.9 * x[size_t(s * k + j - 1)] +
                             0.1 * x[size_t(s * k + j)];
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, int(k), int(samples),
              1.0, x.data(), int(k), 0.0, l.h.data(), int(k));
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < i; ++j)
      l.h[size_t(i * k + j)] = l.h[size_t(j * k + i)];
  return l;
}

void expectSame(const QuantizedWeight &a, const QuantizedWeight &b) {
  EXPECT_EQ(a.q, b.q);
  EXPECT_EQ(a.scales, b.scales);
  EXPECT_EQ(a.zeros, b.zeros);
  EXPECT_EQ(a.gIdx, b.gIdx);
}

// With H diagonal, H^-1 and its Cholesky factor are diagonal: every error
// (w - q) / [Hinv]_qq is propagated with weight Hinv[q, j] = 0 to the other
// columns, so W never changes and each grid is found on the original
// weights: GPTQ is exactly RTN. This holds without act-order, and with
// act-order plus static groups (the grids are then the original groups);
// with act-order alone the groups are formed in permuted order, so it does
// not.
TEST(GPTQ, DiagonalHessianEqualsRTN) {
  for (unsigned bits : kAllBits) {
    for (int64_t gs : {int64_t(-1), int64_t(32)}) {
      for (bool sym : {true, false}) {
        Layer l = randomLayer(8, 96, 7 + bits);
        std::vector<double> diag(size_t(96 * 96), 0.0);
        std::mt19937 rng(bits);
        for (int64_t i = 0; i < 96; ++i)
          diag[size_t(i * 96 + i)] = 0.5 + double(rng() % 1000) / 100;
        for (bool actOrder : {false, true}) {
          Scheme scheme{bits, gs, sym, actOrder};
          auto rtn = quantizeRTN(l.w, l.n, l.k, scheme);
          auto gptq = quantizeGPTQ(l.w, l.n, l.k, diag, scheme,
                                   GPTQOptions{0.01, 32, actOrder}, "diag");
          ASSERT_TRUE(bool(rtn) && bool(gptq));
          SCOPED_TRACE(testing::Message() << bits << " " << gs << " " << sym
                                          << " " << actOrder);
          expectSame(*rtn, *gptq);
        }
      }
    }
  }
}

TEST(GPTQ, BeatsRTNOnCorrelatedHessian) {
  // tr((W - Q) H (W - Q)^T), the layer's output error on the calibration set.
  Layer l = randomLayer(16, 192, 3);
  for (unsigned bits : kAllBits) {
    Scheme scheme{bits, 64, false, true};
    auto rtn = quantizeRTN(l.w, l.n, l.k, scheme);
    auto gptq =
        quantizeGPTQ(l.w, l.n, l.k, l.h, scheme, GPTQOptions{}, "corr");
    ASSERT_TRUE(bool(rtn) && bool(gptq));
    auto outErr = [&](const QuantizedWeight &qw) {
      std::vector<float> dq = qw.dequantize();
      double total = 0;
      for (int64_t r = 0; r < l.n; ++r) {
        std::vector<double> d(static_cast<size_t>(l.k));
        for (int64_t j = 0; j < l.k; ++j)
          d[size_t(j)] = double(l.w[size_t(r * l.k + j)]) -
                         double(dq[size_t(r * l.k + j)]);
        for (int64_t i = 0; i < l.k; ++i)
          for (int64_t j = 0; j < l.k; ++j)
            total += d[size_t(i)] * l.h[size_t(i * l.k + j)] * d[size_t(j)];
      }
      return total;
    };
    EXPECT_LT(outErr(*gptq), outErr(*rtn)) << bits;
    // g_idx is a grouping with group_size members per group.
    std::vector<int> count(3, 0);
    for (int32_t g : gptq->gIdx)
      ++count[size_t(g)];
    EXPECT_EQ(count, (std::vector<int>{64, 64, 64}));
  }
}

TEST(GPTQ, SameResultAcrossOpenBLASThreadCounts) {
  Layer l = randomLayer(384, 768, 11); // big enough for threaded BLAS
  for (bool actOrder : {false, true}) {
    Scheme scheme{3, 64, false, actOrder};
    GPTQOptions opts;
    opts.blockSize = 128;
    int saved = openblas_get_num_threads();
    openblas_set_num_threads(1);
    auto one = quantizeGPTQ(l.w, l.n, l.k, l.h, scheme, opts, "t1");
    openblas_set_num_threads(2);
    auto two = quantizeGPTQ(l.w, l.n, l.k, l.h, scheme, opts, "t2");
    openblas_set_num_threads(saved);
    ASSERT_TRUE(bool(one) && bool(two));
    expectSame(*one, *two);
  }
}

TEST(GPTQ, NotPositiveDefiniteNamesLayerAndDamp) {
  const int64_t k = 32;
  std::vector<float> w(size_t(k), 1.0f);
  std::vector<double> h(size_t(k * k), 0.0);
  for (int64_t i = 0; i < k; ++i)
    h[size_t(i * k + i)] = -1.0;
  auto r = quantizeGPTQ(w, 1, k, h, Scheme{4, 32, true, false},
                        GPTQOptions{}, "model.layers.0.mlp.up_proj");
  ASSERT_FALSE(bool(r));
  EXPECT_EQ(toString(r.takeError()),
            "layer 'model.layers.0.mlp.up_proj': Hessian is not positive "
            "definite after damping (damp-percent 0.01); try a larger "
            "--damp-percent");
}

TEST(GPTQ, DeadColumnsQuantizeToZero) {
  Layer l = randomLayer(4, 64, 5);
  for (int64_t j : {3, 40}) {
    for (int64_t i = 0; i < l.k; ++i)
      l.h[size_t(i * l.k + j)] = l.h[size_t(j * l.k + i)] = 0;
  }
  auto r = quantizeGPTQ(l.w, l.n, l.k, l.h, Scheme{4, 32, false, true},
                        GPTQOptions{}, "dead");
  ASSERT_TRUE(bool(r));
  std::vector<float> dq = r->dequantize();
  for (int64_t row = 0; row < l.n; ++row) {
    EXPECT_EQ(dq[size_t(row * l.k + 3)], 0.0f);
    EXPECT_EQ(dq[size_t(row * l.k + 40)], 0.0f);
  }
}

/// tr(A H A^T) by one dsymm, H [k][k] symmetric, A [n][k].
double traceAHAt(const std::vector<double> &a, const std::vector<double> &h,
                 int64_t n, int64_t k) {
  std::vector<double> prod(a.size());
  cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, int(n), int(k), 1.0,
              h.data(), int(k), a.data(), int(k), 0.0, prod.data(), int(k));
  double t = 0;
  for (size_t i = 0; i < a.size(); ++i)
    t += prod[i] * a[i];
  return t;
}

// GPTQ's own output error (W0 - Q = E U, so the damped trace is sum E^2,
// and ||W0 L||^2 for the reference) against tr(D H D^T) and tr(W H W^T)
// evaluated directly, D = W - Q with Q rebuilt from the float64 grid.
TEST(GPTQ, OwnOutputErrorMatchesDirectTraces) {
  Layer l = randomLayer(48, 256, 13);
  // Two dead inputs (H rows and columns zero), as a channel that never fires.
  for (int64_t j : {5, 130})
    for (int64_t i = 0; i < l.k; ++i)
      l.h[size_t(i * l.k + j)] = l.h[size_t(j * l.k + i)] = 0;
  std::vector<double> w(l.w.begin(), l.w.end());
  const double reference = traceAHAt(w, l.h, l.n, l.k);
  int cases = 0;
  for (bool actOrder : {false, true})
    for (int64_t gs : {int64_t(32), int64_t(128), int64_t(-1)})
      for (double damp : {0.01, 0.1})
        for (bool staticGroups : {false, true}) {
          if (staticGroups && gs < 0)
            continue;
          SCOPED_TRACE(testing::Message()
                       << "act-order " << actOrder << " group " << gs
                       << " damp " << damp << " static " << staticGroups);
          Scheme scheme{4, gs, false, actOrder};
          GPTQOutputError own;
          // Chunks of 20 rows: two full ones and a partial one.
          GPTQOptions options{damp, 64, staticGroups};
          options.errorChunkBytes = 20 * 8 * l.k;
          auto qw =
              quantizeGPTQ(l.w, l.n, l.k, l.h, scheme, options, "own", &own);
          ASSERT_TRUE(bool(qw));
          ASSERT_TRUE(own.valid);
          ASSERT_EQ(own.gridScales.size(), qw->scales.size());
          std::vector<double> d(w.size());
          for (int64_t row = 0; row < l.n; ++row)
            for (int64_t col = 0; col < l.k; ++col) {
              size_t g = size_t(qw->groupOf(col) * l.n + row);
              double q = own.gridScales[g] *
                         double(int32_t(qw->q[size_t(col * l.n + row)]) -
                                qw->zeros[g]);
              d[size_t(row * l.k + col)] = w[size_t(row * l.k + col)] - q;
            }
          double error = traceAHAt(d, l.h, l.n, l.k);
          ASSERT_GT(error, 0);
          EXPECT_NEAR(own.error, error, 1e-9 * error);
          EXPECT_NEAR(own.reference, reference, 1e-9 * reference);
          ++cases;
        }
  EXPECT_EQ(cases, 20);
}

// A zero diagonal with a non-zero row is no Gram matrix: the identity needs
// the dead rows to vanish, so GPTQ reports no error of its own.
TEST(GPTQ, OwnOutputErrorInvalidForNonGramHessian) {
  Layer l = randomLayer(8, 64, 17);
  for (int64_t i = 0; i < l.k; ++i)
    l.h[size_t(i * l.k + 3)] = l.h[size_t(3 * l.k + i)] = 0;
  l.h[size_t(3 * l.k + 4)] = l.h[size_t(4 * l.k + 3)] = 0.01;
  GPTQOutputError own;
  auto qw = quantizeGPTQ(l.w, l.n, l.k, l.h, Scheme{4, 32, false, false},
                         GPTQOptions{}, "nongram", &own);
  ASSERT_TRUE(bool(qw));
  EXPECT_FALSE(own.valid);
}

TEST(GPTQ, ActOrderPermutationIsStable) {
  std::vector<double> d = {1, 3, 2, 3, 1};
  EXPECT_EQ(actOrderPermutation(d), (std::vector<int64_t>{1, 3, 2, 0, 4}));
}

} // namespace
