//===- GenerateTest.cpp - sampler, repetition rate and quantiles ----------===//
// The sampler's distribution against softmax probabilities computed here in
// float64, its top-k / top-p cuts and seeding; the 4-gram repetition rate
// and the quantiles against hand-computed values; the entry inputs a decode
// step after a KV-cache past gets (one role table with scoring).
//===----------------------------------------------------------------------===//

#include "quant-mlir/Runtime/Generate.h"
#include "quant-mlir/Runtime/LanguageModel.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

using namespace quant_mlir;

namespace {

const std::vector<float> kLogits = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f, 0.5f};

TEST(Sampler, GreedyIsArgmaxLowestIdOnTies) {
  Sampler s({0.0, 1.0, 0, 7});
  EXPECT_EQ(s.next(kLogits), 1);
}

TEST(Sampler, FrequenciesFollowTemperatureSoftmax) {
  const double t = 0.7;
  const int n = 40000;
  std::vector<double> p(kLogits.size());
  double z = 0;
  for (size_t i = 0; i < p.size(); ++i)
    z += p[i] = std::exp(kLogits[i] / t);
  Sampler s({t, 1.0, 0, 3});
  std::vector<int> counts(p.size());
  for (int i = 0; i < n; ++i)
    ++counts[s.next(kLogits)];
  for (size_t i = 0; i < p.size(); ++i) {
    double expected = p[i] / z;
    double sigma = std::sqrt(expected * (1 - expected) / n);
    EXPECT_NEAR(double(counts[i]) / n, expected, 5 * sigma + 1e-9) << i;
  }
}

TEST(Sampler, TopKAndTopPCut) {
  Sampler k2({1.0, 1.0, 2, 1});
  for (int i = 0; i < 2000; ++i) {
    int64_t v = k2.next(kLogits);
    EXPECT_TRUE(v == 1 || v == 3) << v;
  }
  // Mass of ids 1 and 3 together: 2e^3 / sum; top-p just below keeps both,
  // a tiny top-p keeps id 1 alone.
  Sampler tiny({1.0, 1e-6, 0, 1});
  for (int i = 0; i < 200; ++i)
    EXPECT_EQ(tiny.next(kLogits), 1);
  double z = 0;
  for (float l : kLogits)
    z += std::exp(double(l));
  Sampler two({1.0, 2 * std::exp(3.0) / z - 1e-6, 0, 1});
  std::vector<int> seen(kLogits.size());
  for (int i = 0; i < 2000; ++i)
    ++seen[two.next(kLogits)];
  EXPECT_GT(seen[1], 0);
  EXPECT_GT(seen[3], 0);
  EXPECT_EQ(seen[1] + seen[3], 2000);
}

TEST(Sampler, SeedReproducible) {
  Sampler a({1.0, 0.9, 0, 42}), b({1.0, 0.9, 0, 42}), c({1.0, 0.9, 0, 43});
  std::vector<int64_t> x, y, w;
  for (int i = 0; i < 64; ++i) {
    x.push_back(a.next(kLogits));
    y.push_back(b.next(kLogits));
    w.push_back(c.next(kLogits));
  }
  EXPECT_EQ(x, y);
  EXPECT_NE(x, w);
}

TEST(Generate, RepetitionRate) {
  // 4-grams of 1 2 3 4 1 2 3 4 1: 1234 2341 3412 4123 1234 2341 -> 2 repeats of 6.
  EXPECT_DOUBLE_EQ(repetitionRate({1, 2, 3, 4, 1, 2, 3, 4, 1}), 2.0 / 6);
  EXPECT_DOUBLE_EQ(repetitionRate({1, 2, 3, 4, 5, 6}), 0.0);
  EXPECT_DOUBLE_EQ(repetitionRate({7, 7, 7, 7, 7, 7}), 2.0 / 3);
  EXPECT_DOUBLE_EQ(repetitionRate({1, 2, 3}), 0.0);
}

TEST(Generate, QuantileInterpolatesLikeNumpy) {
  // numpy.quantile([4, 1, 3, 2, 10], [0.5, 0.9]) = [3.0, 7.6]
  EXPECT_DOUBLE_EQ(quantile({4, 1, 3, 2, 10}, 0.5), 3.0);
  EXPECT_NEAR(quantile({4, 1, 3, 2, 10}, 0.9), 7.6, 1e-12);
  EXPECT_DOUBLE_EQ(quantile({}, 0.5), 0.0);
}

// Two new tokens after a past of 3: the mask covers all 5 positions,
// positions count on from 3, token types are zeros, the past is left for the
// caller; without a past it is the scoring form (positions from 0).
TEST(LanguageModelEntry, InputsAfterAPast) {
  LanguageModelEntry entry;
  entry.roles = {InputRole::InputIds, InputRole::AttentionMask,
                 InputRole::PositionIds, InputRole::PastKeyValue,
                 InputRole::TokenTypeIds};
  std::vector<HostTensor> in = entry.inputs({7, 8}, 1, 2, {}, 3);
  ASSERT_EQ(in.size(), 5u);
  EXPECT_EQ(in[0].shape, (llvm::SmallVector<int64_t>{1, 2}));
  EXPECT_EQ(std::vector<int64_t>(in[0].as<int64_t>().vec()),
            (std::vector<int64_t>{7, 8}));
  EXPECT_EQ(in[1].shape, (llvm::SmallVector<int64_t>{1, 5}));
  EXPECT_EQ(in[1].as<int64_t>().vec(), (std::vector<int64_t>(5, 1)));
  EXPECT_EQ(in[2].as<int64_t>().vec(), (std::vector<int64_t>{3, 4}));
  EXPECT_TRUE(in[3].shape.empty() && in[3].data.empty());
  EXPECT_EQ(in[4].as<int64_t>().vec(), (std::vector<int64_t>{0, 0}));
  std::vector<HostTensor> fresh = entry.inputs({7, 8, 9, 1}, 2, 2, {1, 0});
  EXPECT_EQ(fresh[1].as<int64_t>().vec(), (std::vector<int64_t>{0, 1, 1, 1}));
  EXPECT_EQ(fresh[2].as<int64_t>().vec(), (std::vector<int64_t>{1, 0, 0, 1}));
}

} // namespace
