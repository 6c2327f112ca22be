//===- LayerErrorTest.cpp - the report's error measures and awq packing ----===//
// measureLayerError (one dsymm) against the direct scalar sums it replaced,
// and packAWQ against the nibble order AutoAWQ documents.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Quant/LayerError.h"
#include "quant-mlir/Quant/Packing.h"

#include "gtest/gtest.h"

#include <cmath>
#include <random>

using namespace quant_mlir::quant;

TEST(LayerError, MatchesScalarSums) {
  std::mt19937 rng(7);
  std::normal_distribution<double> nd;
  int64_t n = 24, k = 40;
  std::vector<float> w(n * k), wq(n * k);
  for (size_t i = 0; i < w.size(); ++i) {
    w[i] = float(nd(rng));
    wq[i] = w[i] + float(0.05 * nd(rng));
  }
  std::vector<double> x(3 * k * k), h(k * k, 0.0);
  for (double &v : x)
    v = nd(rng);
  for (int64_t t = 0; t < 3 * k; ++t)
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j)
        h[i * k + j] += x[t * k + i] * x[t * k + j];
  double num = 0, den = 0, wn = 0, wd = 0;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j) {
        double di = double(w[r * k + i]) - wq[r * k + i];
        double dj = double(w[r * k + j]) - wq[r * k + j];
        num += di * h[i * k + j] * dj;
        den += double(w[r * k + i]) * h[i * k + j] * w[r * k + j];
      }
  for (size_t i = 0; i < w.size(); ++i) {
    wn += (double(w[i]) - wq[i]) * (double(w[i]) - wq[i]);
    wd += double(w[i]) * w[i];
  }
  LayerError e = measureLayerError(w, wq, n, k, h);
  EXPECT_NEAR(e.output, num / den, 1e-12 * (num / den));
  EXPECT_NEAR(e.weight, std::sqrt(wn / wd), 1e-12);
  EXPECT_EQ(measureLayerError(w, wq, n, k, {}).output, -1);
}

TEST(Packing, AWQNibbleOrder) {
  // Word j of a row holds columns 8j + {0, 2, 4, 6, 1, 3, 5, 7} in nibbles 0..7.
  std::vector<uint32_t> v(16);
  for (uint32_t c = 0; c < 16; ++c)
    v[c] = c % 8 + 8 * (c / 8) % 16;
  std::vector<int32_t> words = packAWQ(v, 1, 16);
  ASSERT_EQ(words.size(), 2u);
  const unsigned order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
  for (unsigned j = 0; j < 2; ++j)
    for (unsigned nib = 0; nib < 8; ++nib)
      EXPECT_EQ((uint32_t(words[j]) >> (4 * nib)) & 15u, v[8 * j + order[nib]]);
}
