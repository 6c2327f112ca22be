//===- GPUKernelTest.cpp - generated kernels vs a float64 reference ---------===//
// PTX generation runs everywhere; execution needs a CUDA driver and device
// and is skipped (GTEST_SKIP) without one.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Quant/GPUPacking.h"
#include "quant-mlir/Runtime/CUDARunner.h"
#include "quant-mlir/Support/SafeTensors.h"

#include "gtest/gtest.h"

#include <cmath>
#include <random>

using namespace quant_mlir;
using quant_mlir::wqgpu::KernelConfig;

namespace {
using safetensors::floatToHalf;
using safetensors::halfToFloat;

std::vector<int32_t> packStream(const std::vector<uint32_t> &q, int64_t len,
                                int64_t other, unsigned bits, bool alongRows) {
  // alongRows: q is [len, other], stream along dim 0 (codes);
  // else q is [other, len], stream along dim 1 (zeros).
  int64_t words = len * bits / 32;
  std::vector<uint32_t> out(words * other, 0);
  for (int64_t i = 0; i < len; ++i)
    for (int64_t o = 0; o < other; ++o) {
      uint32_t v = alongRows ? q[i * other + o] : q[o * len + i];
      for (unsigned bit = 0; bit < bits; ++bit)
        if ((v >> bit) & 1) {
          int64_t pos = i * bits + bit;
          int64_t idx = alongRows ? (pos / 32) * other + o : o * words + pos / 32;
          out[idx] |= 1u << (pos % 32);
        }
    }
  return std::vector<int32_t>(out.begin(), out.end());
}

struct Problem {
  KernelConfig config;
  std::vector<uint16_t> x, scales, bias;
  std::vector<int32_t> codes, zeros;
  std::vector<double> expected; // [M, N]
};

Problem makeProblem(const KernelConfig &c, unsigned seed) {
  Problem p{c, {}, {}, {}, {}, {}, {}};
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> scaleDist(0.002f, 0.02f);
  std::normal_distribution<float> xDist(0.0f, 1.0f);
  int64_t groups = c.k / c.groupSize;
  uint32_t mask = (1u << c.bits) - 1;
  std::vector<uint32_t> q(c.k * c.n), z(groups * c.n);
  for (uint32_t &v : q)
    v = rng() & mask;
  for (uint32_t &v : z)
    v = c.zeros ? rng() & mask : 1u << (c.bits - 1);
  for (int64_t i = 0; i < groups * c.n; ++i)
    p.scales.push_back(floatToHalf(scaleDist(rng)));
  for (int64_t i = 0; i < c.m * c.k; ++i)
    p.x.push_back(floatToHalf(xDist(rng)));
  if (c.bias)
    for (int64_t i = 0; i < c.n; ++i)
      p.bias.push_back(floatToHalf(xDist(rng)));
  std::vector<int32_t> gptq = packStream(q, c.k, c.n, c.bits, true);
  p.codes = gpupack::gptqToGPUV4(gptq.data(), c.bits, c.k, c.n);
  if (c.zeros)
    p.zeros = packStream(z, c.n, groups, c.bits, false);
  // w = f16(f16(q - z) * scale), as wq.dequantize computes it in f16.
  p.expected.assign(c.m * c.n, 0.0);
  for (int64_t n = 0; n < c.n; ++n)
    for (int64_t k = 0; k < c.k; ++k) {
      int64_t g = k / c.groupSize;
      float diff = float(int32_t(q[k * c.n + n]) - int32_t(z[g * c.n + n]));
      float w = halfToFloat(
          floatToHalf(diff * halfToFloat(p.scales[g * c.n + n])));
      for (int64_t m = 0; m < c.m; ++m)
        p.expected[m * c.n + n] += double(halfToFloat(p.x[m * c.k + k])) * w;
    }
  if (c.bias)
    for (int64_t m = 0; m < c.m; ++m)
      for (int64_t n = 0; n < c.n; ++n)
        p.expected[m * c.n + n] += halfToFloat(p.bias[n]);
  return p;
}

KernelConfig config(KernelConfig::Kind kind, int64_t m, int64_t k, int64_t n,
                    unsigned bits, int64_t group, bool zeros, bool bias,
                    int64_t blockM = 64) {
  KernelConfig c;
  c.kind = kind;
  c.m = m, c.k = k, c.n = n, c.bits = bits, c.groupSize = group;
  c.zeros = zeros, c.bias = bias, c.blockM = blockM;
  return c;
}

std::vector<KernelConfig> configs() {
  using K = KernelConfig::Kind;
  return {config(K::GEMV, 1, 1024, 256, 4, 128, true, true),
          config(K::GEMV, 4, 512, 128, 4, 32, false, false),
          config(K::GEMV, 8, 512, 128, 8, 64, true, false),
          config(K::GEMV, 1, 512, 128, 3, 128, true, true),
          config(K::GEMV, 2, 512, 64, 2, 32, true, false),
          config(K::GEMM, 16, 512, 256, 4, 128, true, true, 16),
          config(K::GEMM, 64, 1024, 256, 4, 128, false, false, 64),
          config(K::GEMM, 32, 512, 128, 8, 128, true, false, 32),
          config(K::GEMM, 32, 512, 128, 3, 64, true, true, 32)};
}

TEST(GPUKernels, ConfigChecks) {
  using K = KernelConfig::Kind;
  EXPECT_EQ(config(K::GEMV, 1, 4096, 4096, 4, 128, true, true).check(), "");
  EXPECT_NE(config(K::GEMV, 9, 4096, 4096, 4, 128, true, true).check(), "");
  EXPECT_NE(config(K::GEMM, 24, 4096, 4096, 4, 128, true, true, 16).check(), "");
  EXPECT_NE(config(K::GEMM, 64, 4096, 4000, 4, 128, true, true).check(), "");
  // 3-bit 64-row tiles need 52 KiB of shared memory.
  EXPECT_NE(config(K::GEMM, 64, 4096, 4096, 3, 128, true, true, 64).check(), "");
  EXPECT_EQ(config(K::GEMM, 64, 4096, 4096, 3, 128, true, true, 32).check(), "");
}

/// PTX generation in process (no GPU needed): every config, two archs.
TEST(GPUKernels, GeneratesPTX) {
  for (const KernelConfig &base : configs())
    for (int sm : {75, 80}) {
      KernelConfig c = base;
      c.sm = sm;
      std::string chip = "sm_" + std::to_string(sm);
      llvm::Expected<std::string> ptx = cuda::compileKernelToPTX(c, chip);
      ASSERT_TRUE(bool(ptx)) << c.name() << ": "
                             << llvm::toString(ptx.takeError());
      EXPECT_NE(ptx->find(".target " + chip), std::string::npos);
      EXPECT_NE(ptx->find(".entry " + c.name()), std::string::npos);
      EXPECT_NE(ptx->find("ld.global.v4"), std::string::npos) << c.name();
      if (c.kind == KernelConfig::Kind::GEMM) {
        EXPECT_NE(ptx->find(sm >= 80 ? "mma.sync.aligned.m16n8k16"
                                     : "mma.sync.aligned.m16n8k8"),
                  std::string::npos);
      }
    }
}

/// The kernels on the GPU against the float64 reference.
TEST(GPUKernels, MatchReferenceOnDevice) {
  if (std::string why = cuda::unavailableReason(); !why.empty())
    GTEST_SKIP() << "no GPU to run the kernels on: " << why;
  int sm = cuda::computeCapability();
  if (sm < 75)
    GTEST_SKIP() << "device is sm_" << sm << ", the kernels need sm_75+";
  std::string chip = "sm_" + std::to_string(sm >= 90 ? 90 : sm);
  unsigned seed = 0;
  for (KernelConfig c : configs()) {
    c.sm = sm;
    SCOPED_TRACE(c.name());
    Problem p = makeProblem(c, ++seed);
    llvm::Expected<std::string> ptx = cuda::compileKernelToPTX(c, chip);
    ASSERT_TRUE(bool(ptx)) << llvm::toString(ptx.takeError());
    auto module = cuda::Module::load(*ptx);
    ASSERT_TRUE(bool(module)) << llvm::toString(module.takeError());

    std::vector<cuda::DeviceBuffer> buffers;
    auto upload = [&](const void *data, size_t bytes) {
      auto buf = cuda::DeviceBuffer::alloc(bytes);
      EXPECT_TRUE(bool(buf)) << llvm::toString(buf.takeError());
      EXPECT_FALSE(bool(buf->upload(data, bytes)));
      buffers.push_back(std::move(*buf));
      return buffers.back().pointer();
    };
    std::vector<uint64_t> args = {
        upload(p.x.data(), p.x.size() * 2),
        upload(p.codes.data(), p.codes.size() * 4),
        upload(p.scales.data(), p.scales.size() * 2)};
    if (c.zeros)
      args.push_back(upload(p.zeros.data(), p.zeros.size() * 4));
    if (c.bias)
      args.push_back(upload(p.bias.data(), p.bias.size() * 2));
    std::vector<uint16_t> y(c.m * c.n, 0);
    args.push_back(upload(y.data(), y.size() * 2));
    ASSERT_FALSE(bool((*module)->launch(c.name(), c.gridX(), c.gridY(),
                                        c.blockX(), args)));
    ASSERT_FALSE(bool(buffers.back().download(y.data(), y.size() * 2)));

    double maxRef = 0, maxErr = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      maxRef = std::max(maxRef, std::fabs(p.expected[i]));
      maxErr = std::max(maxErr, std::fabs(halfToFloat(y[i]) - p.expected[i]));
    }
    // f16 output rounding (2^-11) plus f16 partial sums in the GEMV.
    double tol = c.kind == KernelConfig::Kind::GEMV ? 1e-2 : 4e-3;
    EXPECT_LE(maxErr, tol * maxRef) << "max error " << maxErr << " of "
                                    << maxRef;
  }
}
} // namespace
