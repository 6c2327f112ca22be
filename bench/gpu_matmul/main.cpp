//===- main.cpp - quant-gpu-bench: fused dequant kernels vs cuBLAS fp16 ------===//
// Times the generated GEMV (M = 1) and tensor-core GEMM (M = 16, 64, 256) on
// gpu_v4 weights for (K, N) in {(4096, 4096), (4096, 11008), (11008, 4096)}
// and 3/4/8-bit g128 zero-point schemes, beside cublasGemmEx on f16 weights.
// Reports microseconds, GB/s of weight traffic (codes + scales + zeros; f16
// weights for cuBLAS) and the ratio to a measured device-to-device cudaMemcpy
// bandwidth, as a table and as CSV (--csv FILE).
//===----------------------------------------------------------------------===//

#include "quant-mlir/Quant/GPUPacking.h"
#include "quant-mlir/Runtime/CUDARunner.h"

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

using namespace quant_mlir;
using quant_mlir::wqgpu::KernelConfig;

namespace {
#define CHECK_CUDA(x)                                                          \
  do {                                                                         \
    cudaError_t e = (x);                                                       \
    if (e != cudaSuccess) {                                                    \
      std::fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e));             \
      std::exit(1);                                                            \
    }                                                                          \
  } while (0)

template <typename F> float timeUs(F &&run, int iters) {
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  run(); // warm-up
  CHECK_CUDA(cudaDeviceSynchronize());
  CHECK_CUDA(cudaEventRecord(start));
  for (int i = 0; i < iters; ++i)
    run();
  CHECK_CUDA(cudaEventRecord(stop));
  CHECK_CUDA(cudaEventSynchronize(stop));
  float ms = 0;
  CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms * 1000.0f / iters;
}

/// Device-to-device copy bandwidth (read + write bytes per second), GB/s.
double memcpyBandwidth() {
  size_t bytes = size_t(512) << 20;
  void *a = nullptr, *b = nullptr;
  CHECK_CUDA(cudaMalloc(&a, bytes));
  CHECK_CUDA(cudaMalloc(&b, bytes));
  float us = timeUs([&] { cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice); },
                    20);
  cudaFree(a);
  cudaFree(b);
  return 2.0 * bytes / (us * 1e-6) / 1e9;
}

struct Row {
  int64_t m, k, n;
  unsigned bits;
  std::string kernel;
  double us, weightGBs, ratio, cublasUs, cublasGBs;
};

template <typename T> uint64_t upload(std::vector<cuda::DeviceBuffer> &keep,
                                      const std::vector<T> &v) {
  auto buf = cuda::DeviceBuffer::alloc(v.size() * sizeof(T));
  if (!buf) {
    std::fprintf(stderr, "%s\n", llvm::toString(buf.takeError()).c_str());
    std::exit(1);
  }
  if (auto err = buf->upload(v.data(), v.size() * sizeof(T))) {
    std::fprintf(stderr, "%s\n", llvm::toString(std::move(err)).c_str());
    std::exit(1);
  }
  keep.push_back(std::move(*buf));
  return keep.back().pointer();
}
} // namespace

int main(int argc, char **argv) {
  std::string csvPath;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--csv") == 0)
      csvPath = argv[i + 1];
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0 ||
      !cuda::available()) {
    std::printf("quant-gpu-bench: no CUDA GPU present (%s); nothing to time.\n",
                cuda::available() ? "cudaGetDeviceCount found no device"
                                  : cuda::unavailableReason().c_str());
    return 0;
  }
  int sm = cuda::computeCapability();
  if (sm < 75) {
    std::printf("quant-gpu-bench: sm_%d is older than sm_75; nothing to time.\n",
                sm);
    return 0;
  }
  std::string chip = "sm_" + std::to_string(sm >= 90 ? 90 : sm);
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  double copyGBs = memcpyBandwidth();
  std::printf("device: %s (%s), device-to-device memcpy: %.1f GB/s\n",
              prop.name, chip.c_str(), copyGBs);

  cublasHandle_t handle;
  if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "cublasCreate failed\n");
    return 1;
  }
  std::mt19937 rng(0);
  std::vector<Row> rows;
  const int64_t shapes[][2] = {{4096, 4096}, {4096, 11008}, {11008, 4096}};
  for (auto [k, n] : shapes)
    for (unsigned bits : {4u, 3u, 8u})
      for (int64_t m : {1, 16, 64, 256}) {
        KernelConfig c;
        c.kind = m <= 8 ? KernelConfig::Kind::GEMV : KernelConfig::Kind::GEMM;
        c.m = m, c.k = k, c.n = n, c.bits = bits, c.groupSize = 128;
        c.zeros = true, c.bias = false, c.sm = sm;
        for (int64_t bm : {64, 32, 16}) {
          c.blockM = bm;
          if (c.check().empty())
            break;
        }
        if (std::string why = c.check(); !why.empty()) {
          std::printf("skip M=%lld K=%lld N=%lld %u-bit: %s\n", (long long)m,
                      (long long)k, (long long)n, bits, why.c_str());
          continue;
        }
        auto ptx = cuda::compileKernelToPTX(c, chip);
        if (!ptx) {
          std::fprintf(stderr, "%s\n", llvm::toString(ptx.takeError()).c_str());
          return 1;
        }
        auto module = cuda::Module::load(*ptx);
        if (!module) {
          std::fprintf(stderr, "%s\n",
                       llvm::toString(module.takeError()).c_str());
          return 1;
        }
        int64_t groups = k / 128;
        std::vector<int32_t> codes(k * bits / 32 * n), zeros(groups * n * bits / 32);
        for (int32_t &v : codes)
          v = int32_t(rng());
        for (int32_t &v : zeros)
          v = int32_t(rng());
        std::vector<int32_t> v4 = gpupack::gptqToGPUV4(codes.data(), bits, k, n);
        std::vector<uint16_t> scales(groups * n, 0x2000), x(m * k, 0x3c00),
            y(m * n, 0);
        std::vector<cuda::DeviceBuffer> keep;
        std::vector<uint64_t> args = {upload(keep, x), upload(keep, v4),
                                      upload(keep, scales), upload(keep, zeros),
                                      upload(keep, y)};
        float us = timeUs(
            [&] {
              if (auto err = (*module)->launch(c.name(), c.gridX(), c.gridY(),
                                               c.blockX(), args,
                                               /*synchronize=*/false)) {
                std::fprintf(stderr, "%s\n",
                             llvm::toString(std::move(err)).c_str());
                std::exit(1);
              }
            },
            50);
        double weightBytes =
            double(v4.size()) * 4 + scales.size() * 2 + zeros.size() * 4;

        // cuBLAS: y[M, N] = x[M, K] W^T with W [N, K] f16 (column-major
        // C^T[N, M] = W^T(op T of the K x N view) * X^T).
        __half *dW, *dX, *dY;
        CHECK_CUDA(cudaMalloc(&dW, size_t(n) * k * 2));
        CHECK_CUDA(cudaMalloc(&dX, size_t(m) * k * 2));
        CHECK_CUDA(cudaMalloc(&dY, size_t(m) * n * 2));
        CHECK_CUDA(cudaMemset(dW, 0, size_t(n) * k * 2));
        CHECK_CUDA(cudaMemset(dX, 0, size_t(m) * k * 2));
        float alpha = 1.0f, beta = 0.0f;
        float cublasUs = timeUs(
            [&] {
              cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, int(n), int(m),
                           int(k), &alpha, dW, CUDA_R_16F, int(k), dX,
                           CUDA_R_16F, int(k), &beta, dY, CUDA_R_16F, int(n),
                           CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
            },
            50);
        cudaFree(dW);
        cudaFree(dX);
        cudaFree(dY);
        double gbs = weightBytes / (us * 1e-6) / 1e9;
        rows.push_back({m, k, n, bits, c.name(), us, gbs, gbs / copyGBs,
                        cublasUs, double(n) * k * 2 / (cublasUs * 1e-6) / 1e9});
      }
  cublasDestroy(handle);

  std::printf("\n%5s %6s %6s %4s %10s %10s %8s %12s %12s %8s\n", "M", "K", "N",
              "bits", "us", "wGB/s", "/memcpy", "cublas_us", "cublas_GB/s",
              "speedup");
  for (const Row &r : rows)
    std::printf("%5lld %6lld %6lld %4u %10.1f %10.1f %8.2f %12.1f %12.1f %8.2f\n",
                (long long)r.m, (long long)r.k, (long long)r.n, r.bits, r.us,
                r.weightGBs, r.ratio, r.cublasUs, r.cublasGBs,
                r.cublasUs / r.us);
  std::string csv = "m,k,n,bits,kernel,us,weight_gbs,ratio_to_memcpy,"
                    "cublas_us,cublas_weight_gbs,memcpy_gbs\n";
  for (const Row &r : rows)
    csv += std::to_string(r.m) + "," + std::to_string(r.k) + "," +
           std::to_string(r.n) + "," + std::to_string(r.bits) + "," + r.kernel +
           "," + std::to_string(r.us) + "," + std::to_string(r.weightGBs) +
           "," + std::to_string(r.ratio) + "," + std::to_string(r.cublasUs) +
           "," + std::to_string(r.cublasGBs) + "," + std::to_string(copyGBs) +
           "\n";
  std::printf("\n%s", csv.c_str());
  if (!csvPath.empty())
    std::ofstream(csvPath) << csv;
  return 0;
}
