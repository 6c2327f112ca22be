//===- GPUPackingTest.cpp - gptq <-> gpu_v4 against a brute-force reference -===//

#include "quant-mlir/Quant/GPUPacking.h"

#include "gtest/gtest.h"

#include <random>

using namespace quant_mlir::gpupack;

namespace {
/// gptq: one little-endian bit stream per column along K, int32 words.
std::vector<int32_t> packStream(const std::vector<uint32_t> &q, int64_t k,
                                int64_t n, unsigned bits) {
  std::vector<uint32_t> words(k * bits / 32 * n, 0);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t c = 0; c < n; ++c)
      for (unsigned bit = 0; bit < bits; ++bit)
        if ((q[i * n + c] >> bit) & 1) {
          int64_t pos = i * bits + bit;
          words[(pos / 32) * n + c] |= 1u << (pos % 32);
        }
  return std::vector<int32_t>(words.begin(), words.end());
}

struct Case {
  unsigned bits;
  int64_t k, n;
};

class GPUV4Packing : public ::testing::TestWithParam<Case> {};

TEST_P(GPUV4Packing, MatchesBruteForce) {
  auto [bits, k, n] = GetParam();
  ASSERT_EQ(checkGPUV4(bits, k, n), "");
  std::mt19937 rng(bits * 1000 + k + n);
  std::vector<uint32_t> q(k * n);
  for (uint32_t &v : q)
    v = rng() & ((1u << bits) - 1);
  std::vector<int32_t> gptq = packStream(q, k, n, bits);
  std::vector<int32_t> v4 = gptqToGPUV4(gptq.data(), bits, k, n);
  ASSERT_EQ(int64_t(v4.size()), k * bits / 128 * 4 * n);

  // Every code through the layout's reader.
  for (int64_t i = 0; i < k; ++i)
    for (int64_t c = 0; c < n; ++c)
      ASSERT_EQ(gpuV4Code(v4.data(), bits, k, n, i, c), q[i * n + c])
          << "k=" << i << " n=" << c;

  // Brute force over bit positions, straight from the documented layout:
  // element [r, 4c + j] is stream word w = 4r + j of column c; for 2/4/8 bits
  // code t of that word sits in field (t % 2) * (16 / bits) + t / 2.
  for (int64_t i = 0; i < k; ++i)
    for (int64_t c = 0; c < n; ++c)
      for (unsigned bit = 0; bit < bits; ++bit) {
        int64_t word, pos;
        if (32 % bits == 0) {
          int64_t per = 32 / bits, t = i % per;
          word = i / per;
          pos = ((t % 2) * (16 / bits) + t / 2) * bits + bit;
        } else {
          word = (i * bits + bit) / 32;
          pos = (i * bits + bit) % 32;
        }
        uint32_t w = uint32_t(v4[(word / 4) * 4 * n + 4 * c + word % 4]);
        ASSERT_EQ((w >> pos) & 1, (q[i * n + c] >> bit) & 1);
      }

  // And back.
  EXPECT_EQ(gpuV4ToGPTQ(v4.data(), bits, k, n), gptq);
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, GPUV4Packing,
    ::testing::Values(Case{4, 32, 8}, Case{4, 256, 24}, Case{2, 64, 16},
                      Case{2, 128, 5}, Case{8, 16, 12}, Case{8, 64, 7},
                      Case{3, 128, 8}, Case{3, 384, 3}, Case{4, 4096, 2}),
    [](const ::testing::TestParamInfo<Case> &info) {
      return "b" + std::to_string(info.param.bits) + "_k" +
             std::to_string(info.param.k) + "_n" +
             std::to_string(info.param.n);
    });

TEST(GPUV4Packing, RejectsUnsupportedShapes) {
  EXPECT_NE(checkGPUV4(4, 16, 8), "");  // 64 bits per column
  EXPECT_NE(checkGPUV4(3, 64, 8), "");  // 192 bits per column
  EXPECT_NE(checkGPUV4(5, 128, 8), ""); // no 5-bit codes
  EXPECT_EQ(checkGPUV4(3, 128, 8), "");
}

TEST(GPUV4Packing, KnownWord) {
  // Codes 0..7 of one column: stream word 0x76543210 interleaves to
  // 0x75316420 (codes 0,2,4,6 in the low half-word, 1,3,5,7 in the high).
  std::vector<uint32_t> q(32, 0);
  for (int i = 0; i < 8; ++i)
    q[i] = i;
  std::vector<int32_t> gptq = packStream(q, 32, 1, 4);
  EXPECT_EQ(uint32_t(gptq[0]), 0x76543210u);
  std::vector<int32_t> v4 = gptqToGPUV4(gptq.data(), 4, 32, 1);
  EXPECT_EQ(uint32_t(v4[0]), 0x75316420u);
}
} // namespace
