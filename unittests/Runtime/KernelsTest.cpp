//===- KernelsTest.cpp - the CPU runtime kernels against float64 -----------===//
// The fused gptq dequantize + SGEMM kernel (quant_qlinear_f32) against
// dequantize-then-matmul in float64, directly and through the JIT
// (convert-wq-to-cpu-kernels), and the strided SGEMM contraction
// (quant_contract_f32) on transposed, batched and split-dim layouts.
//===----------------------------------------------------------------------===//

#include "quant-mlir/InitAllDialects.h"
#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"
#include "quant-mlir/Runtime/CPURunner.h"
#include "quant-mlir/Runtime/Kernels.h"
#include "quant-mlir/Runtime/MicroKernels.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Parser/Parser.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <thread>

extern "C" {
int openblas_get_num_threads(void);
void openblas_set_num_threads(int);
}

using namespace quant_mlir;
using safetensors::DType;

namespace {
/// A random gptq-packed layer and its float64 dequantized weight.
struct PackedLayer {
  int64_t n, k, bits, groupSize, groups;
  bool hasZeros, actOrder;
  std::vector<int32_t> codes, zeros, gIdx;
  std::vector<float> scales, bias;
  std::vector<double> w; // [n, k], dequantized in float64

  PackedLayer(std::mt19937 &rng, int64_t n, int64_t k, int64_t bits,
              int64_t groupSize, bool hasZeros, bool actOrder, bool withBias)
      : n(n), k(k), bits(bits), groupSize(groupSize),
        groups(groupSize > 0 ? (k + groupSize - 1) / groupSize : 1),
        hasZeros(hasZeros), actOrder(actOrder) {
    std::uniform_int_distribution<int> code(0, (1 << bits) - 1);
    std::uniform_real_distribution<float> scale(0.005f, 0.05f), unit(-1, 1);
    std::vector<int> q(k * n), z(groups * n);
    for (int &v : q)
      v = code(rng);
    for (int &v : z)
      v = hasZeros ? code(rng) : 1 << (bits - 1);
    scales.resize(groups * n);
    for (float &s : scales)
      s = scale(rng);
    gIdx.resize(k);
    for (int64_t i = 0; i < k; ++i)
      gIdx[i] = actOrder ? int32_t((i * 7 + 3) % groups)
                         : int32_t(groupSize > 0 ? i / groupSize : 0);
    if (withBias) {
      bias.resize(n);
      for (float &b : bias)
        b = unit(rng);
    }
    // Codes: for each column, a little-endian bit stream along K.
    codes.assign(k * bits / 32 * n, 0);
    for (int64_t c = 0; c < n; ++c)
      for (int64_t i = 0; i < k; ++i)
        for (int64_t bit = 0; bit < bits; ++bit)
          if (q[i * n + c] >> bit & 1) {
            int64_t pos = i * bits + bit;
            codes[(pos / 32) * n + c] |= int32_t(uint32_t(1) << (pos % 32));
          }
    // Zeros: for each group, a bit stream along N.
    int64_t zw = n * bits / 32;
    zeros.assign(groups * zw, 0);
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t c = 0; c < n; ++c)
        for (int64_t bit = 0; bit < bits; ++bit)
          if (z[g * n + c] >> bit & 1) {
            int64_t pos = c * bits + bit;
            zeros[g * zw + pos / 32] |= int32_t(uint32_t(1) << (pos % 32));
          }
    w.resize(n * k);
    for (int64_t c = 0; c < n; ++c)
      for (int64_t i = 0; i < k; ++i) {
        int g = gIdx[i];
        w[c * k + i] =
            double(scales[g * n + c]) * (q[i * n + c] - z[g * n + c]);
      }
  }

  /// y = x W^T + b in float64.
  std::vector<double> reference(const std::vector<float> &x, int64_t m) const {
    std::vector<double> y(m * n);
    for (int64_t r = 0; r < m; ++r)
      for (int64_t c = 0; c < n; ++c) {
        double acc = bias.empty() ? 0.0 : bias[c];
        for (int64_t i = 0; i < k; ++i)
          acc += double(x[r * k + i]) * w[c * k + i];
        y[r * n + c] = acc;
      }
    return y;
  }
};

std::vector<float> randomFloats(std::mt19937 &rng, size_t count) {
  std::uniform_real_distribution<float> dist(-1, 1);
  std::vector<float> v(count);
  for (float &x : v)
    x = dist(rng);
  return v;
}

/// Max |got - want| relative to the scale of the reference.
double relErr(const float *got, const std::vector<double> &want) {
  double maxAbs = 1e-30, maxErr = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    maxAbs = std::max(maxAbs, std::abs(want[i]));
    maxErr = std::max(maxErr, std::abs(double(got[i]) - want[i]));
  }
  return maxErr / maxAbs;
}

struct QCase {
  int64_t bits, groupSize;
  bool zeros, actOrder, bias;
  int64_t m, n, k;
};

TEST(KernelsTest, FusedQuantizedLinearMatchesFloat64) {
  std::mt19937 rng(7);
  std::vector<QCase> cases;
  for (int64_t bits : {2, 3, 4, 8})
    for (int64_t group : {int64_t(32), int64_t(128), int64_t(-1)})
      for (int64_t m : {1, 5, 64})
        cases.push_back({bits, group, group != 32, bits == 4 && group == 32,
                         m != 5, m, 96, 512});
  // K larger than one dequantized block, odd group count boundaries.
  cases.push_back({4, 128, true, false, true, 33, 64, 3072});
  cases.push_back({3, 64, true, true, false, 17, 32, 2048});
  for (const QCase &c : cases) {
    SCOPED_TRACE(testing::Message()
                 << "bits=" << c.bits << " group=" << c.groupSize
                 << " zeros=" << c.zeros << " act=" << c.actOrder
                 << " m=" << c.m << " k=" << c.k);
    PackedLayer layer(rng, c.n, c.k, c.bits, c.groupSize, c.zeros, c.actOrder,
                      c.bias);
    auto x = randomFloats(rng, c.m * c.k);
    std::vector<float> y(c.m * c.n, -123.0f);
    kernels::qlinearF32(c.m, c.n, c.k, unsigned(c.bits),
                        c.groupSize > 0 ? c.groupSize : 0, layer.groups,
                        x.data(), layer.codes.data(), layer.scales.data(),
                        c.zeros ? layer.zeros.data() : nullptr,
                        c.actOrder ? layer.gIdx.data() : nullptr,
                        c.bias ? layer.bias.data() : nullptr, y.data());
    EXPECT_LT(relErr(y.data(), layer.reference(x, c.m)), 2e-5);
  }
}

namespace {
/// Calls quant_contract_f32 or quant_vcontract_f32 (same signature) with
/// the first numDims of the 8 (role, size, sa, sb, sc) slots.
void callContract(decltype(&quant_contract_f32) fn, int64_t numDims,
                  const float *a, const float *b, float *c,
                  const int64_t (&slots)[8][5]) {
  const int64_t *s = &slots[0][0];
  fn(numDims, int64_t(a), 0, int64_t(b), 0, int64_t(c), 0, s[0], s[1], s[2],
     s[3], s[4], s[5], s[6], s[7], s[8], s[9], s[10], s[11], s[12], s[13],
     s[14], s[15], s[16], s[17], s[18], s[19], s[20], s[21], s[22], s[23],
     s[24], s[25], s[26], s[27], s[28], s[29], s[30], s[31], s[32], s[33],
     s[34], s[35], s[36], s[37], s[38], s[39]);
}
} // namespace

// C += A * B with the 8-slot dim description the lowering passes.
TEST(KernelsTest, StridedContractionMatchesFloat64) {
  std::mt19937 rng(3);
  // Attention-like: [b, h, m, d] x [b, h, n, d]^T -> [b, h, m, n], with B
  // stored transposed and C with a padded row stride.
  const int64_t B = 2, H = 3, M = 37, N = 29, D = 16, ldc = N + 3;
  auto a = randomFloats(rng, B * H * M * D), b = randomFloats(rng, B * H * N * D);
  std::vector<float> c(B * H * M * ldc, 0.5f);
  std::vector<double> want(B * H * M * N);
  for (int64_t i = 0; i < B * H; ++i)
    for (int64_t r = 0; r < M; ++r)
      for (int64_t s = 0; s < N; ++s) {
        double acc = 0.5;
        for (int64_t d = 0; d < D; ++d)
          acc += double(a[(i * M + r) * D + d]) * b[(i * N + s) * D + d];
        want[(i * M + r) * N + s] = acc;
      }
  int64_t slots[8][5] = {
      {0, B, H * M * D, H * N * D, H * M * ldc}, // batch b
      {0, H, M * D, N * D, M * ldc},             // batch h
      {1, M, D, 0, ldc},                         // m
      {2, N, 0, D, 1},                           // n
      {3, D, 1, 1, 0},                           // k
  };
  callContract(quant_contract_f32, 5, a.data(), b.data(), c.data(), slots);
  std::vector<float> got(B * H * M * N);
  for (int64_t i = 0; i < B * H * M; ++i)
    for (int64_t j = 0; j < N; ++j)
      got[i * N + j] = c[i * ldc + j];
  EXPECT_LT(relErr(got.data(), want), 1e-5);

  // Fully strided operands (no BLAS layout fits): packed internally.
  const int64_t m = 9, n = 11, k = 70;
  auto a2 = randomFloats(rng, 2 * m * k), b2 = randomFloats(rng, 3 * k * n);
  std::vector<float> c2(2 * m * n * 2, 0.0f);
  kernels::contractF32(m, n, k, a2.data(), 2 * k, 2, b2.data(), 3 * n, 3,
                       c2.data(), 2 * n, 2);
  std::vector<double> want2(m * n);
  std::vector<float> got2(m * n);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t i = 0; i < k; ++i)
        acc += double(a2[r * 2 * k + 2 * i]) * b2[i * 3 * n + 3 * j];
      want2[r * n + j] = acc;
      got2[r * n + j] = c2[r * 2 * n + 2 * j];
    }
  EXPECT_LT(relErr(got2.data(), want2), 1e-5);
}

// The vector family: the generated micro-kernel (host ISA) under the
// packing driver, on every layout the contraction and the packed layers
// take, against float64; and bitwise equal for 1 and 2 threads.
class VectorKernelsTest : public ::testing::Test {
protected:
  void SetUp() override {
    auto target = initVectorKernels();
    ASSERT_TRUE(bool(target)) << llvm::toString(target.takeError());
    ASSERT_NE(kernels::gemmMicroKernel().fn, nullptr);
    EXPECT_EQ(kernels::gemmMicroKernel().nr, 2 * target->vectorWidth);
    threads = openblas_get_num_threads();
  }
  void TearDown() override { openblas_set_num_threads(threads); }
  int threads = 1;
};

TEST_F(VectorKernelsTest, ContractionMatchesFloat64) {
  std::mt19937 rng(5);
  struct Case {
    int64_t m, n, k;
    bool transA, transB, stridedC;
  };
  // Edge tiles in M and N, K over several kc blocks, W[N, K] (B
  // transposed, the linear layer), A transposed, a strided C.
  for (Case c : {Case{64, 128, 256, false, false, false},
                 Case{37, 29, 70, false, true, false},
                 Case{256, 200, 600, false, true, false},
                 Case{9, 300, 33, true, false, true},
                 Case{130, 257, 513, true, true, true}}) {
    SCOPED_TRACE(testing::Message() << c.m << "x" << c.n << "x" << c.k
                                    << " tA=" << c.transA << " tB=" << c.transB
                                    << " sC=" << c.stridedC);
    auto a = randomFloats(rng, c.m * c.k), b = randomFloats(rng, c.k * c.n);
    int64_t sam = c.transA ? 1 : c.k, sak = c.transA ? c.m : 1;
    int64_t sbk = c.transB ? 1 : c.n, sbn = c.transB ? c.k : 1;
    int64_t scm = c.stridedC ? 1 : c.n, scn = c.stridedC ? c.m : 1;
    std::vector<double> want(c.m * c.n);
    for (int64_t r = 0; r < c.m; ++r)
      for (int64_t j = 0; j < c.n; ++j) {
        double acc = 0.25;
        for (int64_t i = 0; i < c.k; ++i)
          acc += double(a[r * sam + i * sak]) * b[i * sbk + j * sbn];
        want[r * c.n + j] = acc;
      }
    std::vector<float> outs[2];
    for (int t : {1, 2}) {
      openblas_set_num_threads(t);
      std::vector<float> cbuf(c.m * c.n, 0.25f);
      kernels::vcontractF32(c.m, c.n, c.k, a.data(), sam, sak, b.data(), sbk,
                            sbn, cbuf.data(), scm, scn);
      std::vector<float> &got = outs[t - 1];
      got.resize(c.m * c.n);
      for (int64_t r = 0; r < c.m; ++r)
        for (int64_t j = 0; j < c.n; ++j)
          got[r * c.n + j] = cbuf[r * scm + j * scn];
      EXPECT_LT(relErr(got.data(), want), 1e-5);
    }
    EXPECT_EQ(std::memcmp(outs[0].data(), outs[1].data(),
                          outs[0].size() * sizeof(float)),
              0);
  }
}

namespace {
/// Attention's per-head GEMMs through quant_vcontract_f32: [h, m, d] x
/// [h, n, d]^T -> [h, m, n], N below the 4-chunk limit, so the heads are
/// the parallel tasks (Kernels.cpp `contract`).
void headContraction(const std::vector<float> &a, const std::vector<float> &b,
                     std::vector<float> &c, int64_t H, int64_t M, int64_t N,
                     int64_t D) {
  int64_t slots[8][5] = {
      {0, H, M * D, N * D, M * N}, // batch h
      {1, M, D, 0, N},             // m
      {2, N, 0, D, 1},             // n
      {3, D, 1, 1, 0},             // k
  };
  callContract(quant_vcontract_f32, 4, a.data(), b.data(), c.data(), slots);
}
} // namespace

// Heads as tasks: the same bits for 1 and 2 threads, and for two callers
// at once (the second runs on its own thread while the first holds the
// pool: WorkerPool.cpp), against float64.
TEST_F(VectorKernelsTest, HeadParallelContractionIsBitwiseStable) {
  std::mt19937 rng(21);
  const int64_t H = 12, M = 96, N = 200, D = 64;
  auto a = randomFloats(rng, H * M * D), b = randomFloats(rng, H * N * D);
  std::vector<double> want(H * M * N);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t r = 0; r < M; ++r)
      for (int64_t j = 0; j < N; ++j) {
        double acc = 0;
        for (int64_t d = 0; d < D; ++d)
          acc += double(a[(h * M + r) * D + d]) * b[(h * N + j) * D + d];
        want[(h * M + r) * N + j] = acc;
      }
  std::vector<float> outs[2];
  for (int t : {1, 2}) {
    openblas_set_num_threads(t);
    outs[t - 1].assign(H * M * N, 0.0f);
    headContraction(a, b, outs[t - 1], H, M, N, D);
    EXPECT_LT(relErr(outs[t - 1].data(), want), 1e-5);
  }
  EXPECT_EQ(std::memcmp(outs[0].data(), outs[1].data(),
                        outs[0].size() * sizeof(float)),
            0);
  // Two callers at once, several rounds: each result bitwise the same.
  openblas_set_num_threads(2);
  for (int round = 0; round < 8; ++round) {
    std::vector<float> c1(H * M * N, 0.0f), c2(H * M * N, 0.0f);
    std::thread other([&] { headContraction(a, b, c2, H, M, N, D); });
    headContraction(a, b, c1, H, M, N, D);
    other.join();
    ASSERT_EQ(std::memcmp(c1.data(), outs[0].data(), c1.size() * 4), 0);
    ASSERT_EQ(std::memcmp(c2.data(), outs[0].data(), c2.size() * 4), 0);
  }
}

// One vqlinearF32 case against the float64 reference (relative error
// below 2e-5), at 1 and 2 threads, the two bitwise equal.
static void checkVQLinearCase(std::mt19937 &rng, const QCase &c) {
  SCOPED_TRACE(testing::Message()
               << "bits=" << c.bits << " group=" << c.groupSize
               << " zeros=" << c.zeros << " act=" << c.actOrder
               << " m=" << c.m << " n=" << c.n << " k=" << c.k);
  PackedLayer layer(rng, c.n, c.k, c.bits, c.groupSize, c.zeros, c.actOrder,
                    c.bias);
  auto x = randomFloats(rng, c.m * c.k);
  std::vector<float> outs[2];
  for (int t : {1, 2}) {
    openblas_set_num_threads(t);
    std::vector<float> &y = outs[t - 1];
    y.assign(c.m * c.n, -123.0f);
    kernels::vqlinearF32(c.m, c.n, c.k, unsigned(c.bits),
                         c.groupSize > 0 ? c.groupSize : 0, layer.groups,
                         x.data(), layer.codes.data(), layer.scales.data(),
                         c.zeros ? layer.zeros.data() : nullptr,
                         c.actOrder ? layer.gIdx.data() : nullptr,
                         c.bias ? layer.bias.data() : nullptr, y.data());
    EXPECT_LT(relErr(y.data(), layer.reference(x, c.m)), 2e-5);
  }
  EXPECT_EQ(std::memcmp(outs[0].data(), outs[1].data(),
                        outs[0].size() * sizeof(float)),
            0);
}

TEST_F(VectorKernelsTest, QuantizedLinearMatchesFloat64) {
  std::mt19937 rng(9);
  std::vector<QCase> cases;
  for (int64_t bits : {2, 3, 4, 8})
    for (int64_t group : {int64_t(32), int64_t(64), int64_t(128), int64_t(-1)})
      for (bool zeros : {false, true})
        cases.push_back({bits, group, zeros, bits == 4 && group == 32 && zeros,
                         group != 64, bits == 3 ? 13 : 24, 160, 512});
  cases.push_back({4, 128, true, true, true, 70, 96, 1536});
  cases.push_back({3, 64, false, true, false, 1, 64, 1024}); // falls back
  for (const QCase &c : cases)
    checkVQLinearCase(rng, c);
}

// Decode (M = 1..8): the dequantizing GEMV micro-kernels (bits 2 / 4 / 8)
// for every group size and zero layout; 3-bit and act-order layers take
// the block-dequantizing fallback and are checked the same way.
TEST_F(VectorKernelsTest, DecodeGemvMatchesFloat64) {
  std::mt19937 rng(13);
  std::vector<QCase> cases;
  for (int64_t bits : {2, 4, 8})
    for (int64_t group : {int64_t(32), int64_t(64), int64_t(128), int64_t(-1)})
      for (int64_t m : {1, 2, 3, 8})
        cases.push_back({bits, group, m % 2 == 1, false, m != 2, m,
                         kernels::gemmMicroKernel().nr * 17, 768});
  cases.push_back({3, 128, true, false, true, 1, 256, 1024});
  cases.push_back({4, 128, true, true, true, 2, 256, 1024});
  // Twice: as registered (M = 1, 2 at 2 and 4 bits on the integer-dot
  // kernels where the host has them), then with those taken out, so that
  // the float kernels' M = 1, 2 are checked on every host too.
  const kernels::QGemvMicroKernel registered = kernels::qgemvMicroKernels();
  auto restore =
      llvm::scope_exit([&] { kernels::setQGemvMicroKernels(registered); });
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1) {
      kernels::QGemvMicroKernel floatOnly = registered;
      std::fill(&floatOnly.dot[0][0], &floatOnly.dot[0][0] + 9 * 3, nullptr);
      kernels::setQGemvMicroKernels(floatOnly);
    }
    for (const QCase &c : cases) {
      if (pass == 1 && c.m > 2)
        continue;
      SCOPED_TRACE(testing::Message() << "pass=" << pass);
      checkVQLinearCase(rng, c);
    }
  }
}

// Decode on the integer-dot kernels (AVX2 and AVX-512 VNNI hosts; elsewhere
// the float ones
// run and the same bounds hold): x as 24-bit fixed point per group must
// keep f32-level error when a group holds outliers 10^4 above its other
// values, tiny values, or only zeros; per-channel scales over K = 4096 and
// 8192 (fixed point per 128 values); a non-finite x takes the float kernel
// and gives what it gives (NaN out).
TEST_F(VectorKernelsTest, DecodeGemvIntegerDotMatchesFloat64) {
  auto target = initVectorKernels();
  ASSERT_TRUE(bool(target));
  const kernels::QGemvMicroKernel &g = kernels::qgemvMicroKernels();
  if (hasQDotGemv(*target)) {
    for (unsigned bits : {2u, 4u})
      for (int rows : {1, 2})
        EXPECT_NE(g.dot[bits][rows], nullptr);
  }
  std::mt19937 rng(29);
  struct Case {
    int64_t bits, group, m, n, k;
  };
  const int64_t nr = kernels::gemmMicroKernel().nr;
  for (Case c : std::vector<Case>{{4, 128, 1, nr * 9, 1024},
                                  {4, 32, 2, nr * 3, 512},
                                  {2, 64, 1, nr * 5, 768},
                                  {2, 128, 2, nr * 2, 256},
                                  {4, -1, 1, nr * 2, 4096},
                                  {4, -1, 2, nr, 8192}}) {
    SCOPED_TRACE(testing::Message() << "bits=" << c.bits << " group="
                                    << c.group << " m=" << c.m);
    PackedLayer layer(rng, c.n, c.k, c.bits, c.group, true, false, false);
    auto x = randomFloats(rng, c.m * c.k);
    const int64_t gs = c.group > 0 ? c.group : c.k;
    for (int64_t i = 0; i < c.m * c.k; ++i) {
      const int64_t gi = i % c.k / gs;
      if (gi % 3 == 1 && i % 37 == 0)
        x[i] *= 1e4f; // outliers
      if (gi % 3 == 2)
        x[i] *= 1e-30f; // a tiny group
      if (gi == 3)
        x[i] = 0.0f; // an all-zero group
    }
    std::vector<float> outs[2];
    for (int t : {1, 2}) {
      openblas_set_num_threads(t);
      std::vector<float> &y = outs[t - 1];
      y.assign(c.m * c.n, -123.0f);
      kernels::vqlinearF32(c.m, c.n, c.k, unsigned(c.bits),
                           c.group > 0 ? c.group : 0, layer.groups, x.data(),
                           layer.codes.data(), layer.scales.data(),
                           layer.zeros.data(), nullptr, nullptr, y.data());
      // The float kernel's f32 sums over K = 8192 get the looser bound.
      const double tol = hasQDotGemv(*target) ? 2e-6 : 2e-5;
      const double err = relErr(y.data(), layer.reference(x, c.m));
      EXPECT_LT(err, tol);
      if (t == 1)
        std::printf("bits %lld group %lld m %lld: relative error %.3g\n",
                    (long long)c.bits, (long long)c.group, (long long)c.m,
                    err);
    }
    EXPECT_EQ(std::memcmp(outs[0].data(), outs[1].data(),
                          outs[0].size() * sizeof(float)),
              0);
    // The tiny groups alone: their own error bound, not hidden by the
    // outliers' scale.
    if (c.group > 0 && c.k / c.group > 2) {
      std::vector<float> tiny(x.size(), 0.0f);
      for (int64_t i = 0; i < c.m * c.k; ++i)
        if (i % c.k / gs % 3 == 2)
          tiny[i] = x[i];
      std::vector<float> y(c.m * c.n, 0.0f);
      kernels::vqlinearF32(c.m, c.n, c.k, unsigned(c.bits), c.group,
                           layer.groups, tiny.data(), layer.codes.data(),
                           layer.scales.data(), layer.zeros.data(), nullptr,
                           nullptr, y.data());
      EXPECT_LT(relErr(y.data(), layer.reference(tiny, c.m)), 2e-6);
    }
  }
  PackedLayer layer(rng, nr, 256, 4, 128, true, false, false);
  auto x = randomFloats(rng, 256);
  x[5] = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> y(nr, 0.0f);
  kernels::vqlinearF32(1, nr, 256, 4, 128, layer.groups, x.data(),
                       layer.codes.data(), layer.scales.data(),
                       layer.zeros.data(), nullptr, nullptr, y.data());
  for (float v : y)
    EXPECT_TRUE(std::isnan(v));
}

// Decode, f32 (M below the GEMM tile): the GEMV micro-kernels on W[N, K]
// (the linear layer, dot form) and on row-major B (axpy form), with K and
// N tails, transposed A and strided C, against a float64 double loop; and
// bitwise equal for 1 and 2 threads (the large cases split over threads).
TEST_F(VectorKernelsTest, DecodeF32GemvMatchesFloat64) {
  const kernels::F32GemvMicroKernel &g = kernels::f32GemvMicroKernel();
  ASSERT_GE(g.maxRows, 1);
  for (int64_t r = 1; r <= g.maxRows; ++r) {
    EXPECT_NE(g.dot[r], nullptr);
    EXPECT_NE(g.axpy[r], nullptr);
  }
  std::mt19937 rng(17);
  struct Case {
    int64_t m, n, k;
    bool transA, transB, stridedC;
  };
  std::vector<Case> cases = {
      {1, 1100, 2048, false, true, false}, {1, 37, 777, false, true, false},
      {2, 300, 770, false, true, false},   {3, 257, 1000, false, true, true},
      {1, 2100, 1024, false, false, false}, {2, 131, 333, true, false, false},
      {3, 77, 500, false, false, true},    {2, 200, 96, true, true, false}};
  for (Case c : cases) {
    if (c.m > g.maxRows)
      continue;
    SCOPED_TRACE(testing::Message() << c.m << "x" << c.n << "x" << c.k
                                    << " tA=" << c.transA << " tB=" << c.transB
                                    << " sC=" << c.stridedC);
    auto a = randomFloats(rng, c.m * c.k), b = randomFloats(rng, c.k * c.n);
    int64_t sam = c.transA ? 1 : c.k, sak = c.transA ? c.m : 1;
    int64_t sbk = c.transB ? 1 : c.n, sbn = c.transB ? c.k : 1;
    int64_t scm = c.stridedC ? 1 : c.n, scn = c.stridedC ? c.m : 1;
    std::vector<double> want(c.m * c.n);
    for (int64_t r = 0; r < c.m; ++r)
      for (int64_t j = 0; j < c.n; ++j) {
        double acc = -0.5;
        for (int64_t i = 0; i < c.k; ++i)
          acc += double(a[r * sam + i * sak]) * b[i * sbk + j * sbn];
        want[r * c.n + j] = acc;
      }
    std::vector<float> outs[2];
    for (int t : {1, 2}) {
      openblas_set_num_threads(t);
      std::vector<float> cbuf(c.m * c.n, -0.5f);
      kernels::vcontractF32(c.m, c.n, c.k, a.data(), sam, sak, b.data(), sbk,
                            sbn, cbuf.data(), scm, scn);
      std::vector<float> &got = outs[t - 1];
      got.resize(c.m * c.n);
      for (int64_t r = 0; r < c.m; ++r)
        for (int64_t j = 0; j < c.n; ++j)
          got[r * c.n + j] = cbuf[r * scm + j * scn];
      EXPECT_LT(relErr(got.data(), want), 1e-5);
    }
    EXPECT_EQ(std::memcmp(outs[0].data(), outs[1].data(),
                          outs[0].size() * sizeof(float)),
              0);
  }
}

class KernelsJITTest : public ::testing::Test {
protected:
  void SetUp() override {
    mlir::DialectRegistry registry;
    quant_mlir::registerAllDialects(registry);
    context.appendDialectRegistry(registry);
    context.loadAllAvailableDialects();
    ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("cpu-kernels", dir));
  }
  void TearDown() override { llvm::sys::fs::remove_directories(dir); }
  template <typename T>
  static std::vector<uint8_t> bytes(const std::vector<T> &v) {
    return {reinterpret_cast<const uint8_t *>(v.data()),
            reinterpret_cast<const uint8_t *>(v.data() + v.size())};
  }
  mlir::MLIRContext context;
  llvm::SmallString<128> dir;
};

// A 3-D dynamic-batch quantized layer with bias through the JIT (the fused
// kernel) followed by an attention-style batched matmul (the strided SGEMM),
// against float64.
TEST_F(KernelsJITTest, QuantizedLayerAndMatmulThroughJIT) {
  std::mt19937 rng(11);
  const int64_t K = 256, N = 64, S = 6, bits = 4, G = 128;
  PackedLayer layer(rng, N, K, bits, G, true, false, true);
  safetensors::Writer writer;
  ASSERT_FALSE(bool(writer.addOwned("l.qweight", DType::I32,
                                    {K * bits / 32, N}, bytes(layer.codes))));
  ASSERT_FALSE(bool(writer.addOwned("l.scales", DType::F32, {K / G, N},
                                    bytes(layer.scales))));
  ASSERT_FALSE(bool(writer.addOwned("l.qzeros", DType::I32,
                                    {K / G, N * bits / 32},
                                    bytes(layer.zeros))));
  ASSERT_FALSE(bool(writer.addOwned("l.bias", DType::F32, {N},
                                    bytes(layer.bias))));
  llvm::SmallString<128> path(dir);
  llvm::sys::path::append(path, "model.safetensors");
  ASSERT_FALSE(bool(writer.write(path)));

  // y = qlinear(x) : [1, S, N]; s = y y^T : [1, S, S] (batch_matmul with a
  // transposed operand).
  auto module = mlir::parseSourceString<mlir::ModuleOp>(R"mlir(
module attributes {wq.archive = "model.safetensors"} {
  func.func @forward(%x: tensor<1x?x256xf32>) -> (tensor<1x?x64xf32>, tensor<1x?x?xf32>) {
    %c = wq.weight "l.qweight" : tensor<32x64xi32>
    %s = wq.weight "l.scales" : tensor<2x64xf32>
    %z = wq.weight "l.qzeros" : tensor<2x8xi32>
    %b = wq.weight "l.bias" : tensor<64xf32>
    %y = wq.quantized_linear %x, %c, %s zeros %z bias %b {packing = #wq.packing<gptq>,
        scheme = #wq.scheme<bits = 4, group_size = 128, symmetric = false, act_order = false>}
        : (tensor<1x?x256xf32>, tensor<32x64xi32>, tensor<2x64xf32>, tensor<2x8xi32>, tensor<64xf32>) -> tensor<1x?x64xf32>
    %c0 = arith.constant 1 : index
    %d = tensor.dim %x, %c0 : tensor<1x?x256xf32>
    %e = tensor.empty(%d) : tensor<1x64x?xf32>
    %t = linalg.transpose ins(%y : tensor<1x?x64xf32>) outs(%e : tensor<1x64x?xf32>) permutation = [0, 2, 1]
    %zero = arith.constant 0.0 : f32
    %o = tensor.empty(%d, %d) : tensor<1x?x?xf32>
    %f = linalg.fill ins(%zero : f32) outs(%o : tensor<1x?x?xf32>) -> tensor<1x?x?xf32>
    %m = linalg.batch_matmul ins(%y, %t : tensor<1x?x64xf32>, tensor<1x64x?xf32>) outs(%f : tensor<1x?x?xf32>) -> tensor<1x?x?xf32>
    return %y, %m : tensor<1x?x64xf32>, tensor<1x?x?xf32>
  }
})mlir",
                                                        &context);
  ASSERT_TRUE(module);
  auto compiled = CPUModule::compile(std::move(module), dir);
  ASSERT_TRUE(bool(compiled)) << llvm::toString(compiled.takeError());
  auto x = randomFloats(rng, S * K);
  auto out = (*compiled)->run(
      "forward", {HostTensor::from<float>(DType::F32, {1, S, K}, x)});
  ASSERT_TRUE(bool(out)) << llvm::toString(out.takeError());
  ASSERT_EQ(out->size(), 2u);
  std::vector<double> y = layer.reference(x, S);
  EXPECT_LT(relErr((*out)[0].as<float>().data(), y), 2e-5);
  std::vector<double> ss(S * S);
  for (int64_t i = 0; i < S; ++i)
    for (int64_t j = 0; j < S; ++j) {
      double acc = 0;
      for (int64_t c = 0; c < N; ++c)
        acc += y[i * N + c] * y[j * N + c];
      ss[i * S + j] = acc;
    }
  EXPECT_LT(relErr((*out)[1].as<float>().data(), ss), 1e-4);
}
} // namespace
