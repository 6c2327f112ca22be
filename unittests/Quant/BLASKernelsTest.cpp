//===- BLASKernelsTest.cpp - OpenBLAS runs this CPU's kernels -------------===//
// configureBLASKernels replaces OpenBLAS's SSE3 fallback on CPUs it does not
// know; on a CPU with AVX2 + FMA the library must not stay on Prescott, and
// a GEMM must still be right after the switch.

#include "quant-mlir/Quant/BLASKernels.h"

#include <cblas.h>
#include <gtest/gtest.h>

#include <vector>

using namespace quant_mlir::quant;

TEST(BLASKernels, NotThePrescottFallbackOnAVX2) {
  std::string core = configureBLASKernels();
  EXPECT_EQ(configureBLASKernels(), core) << "a second call changes nothing";
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    EXPECT_NE(core, "Prescott");
  }
  // A product whose every sum is exact in float: any kernel gets it bitwise.
  const int m = 37, n = 29, k = 53;
  std::vector<float> a(m * k), b(k * n), c(m * n);
  for (int i = 0; i < m * k; ++i)
    a[i] = float(i % 7 - 3);
  for (int i = 0; i < k * n; ++i)
    b[i] = float(i % 5 - 2);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f,
              a.data(), k, b.data(), n, 0.0f, c.data(), n);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double want = 0;
      for (int p = 0; p < k; ++p)
        want += double(a[i * k + p]) * double(b[p * n + j]);
      ASSERT_EQ(double(c[i * n + j]), want) << i << "," << j;
    }
}
