//===- CUDARunner.h - run generated kernels through the CUDA driver -*- C++ -*-===//
// The CUDA driver API is loaded with dlopen("libcuda.so.1") at run time, so
// everything builds and links on machines without a GPU driver; available()
// says whether a driver and a device are present.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_RUNTIME_CUDARUNNER_H
#define QUANT_MLIR_RUNTIME_CUDARUNNER_H

#include "quant-mlir/Conversion/WQToGPU/WQToGPU.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <string>

namespace quant_mlir::cuda {

/// Empty if libcuda.so.1 loads, cuInit succeeds and device 0 exists, else
/// the reason (for GTEST_SKIP / the benchmark's message).
std::string unavailableReason();
inline bool available() { return unavailableReason().empty(); }
/// Compute capability of device 0 as 10 * major + minor (0 if unavailable).
int computeCapability();

/// A device allocation (cuMemAlloc), freed on destruction.
class DeviceBuffer {
public:
  static llvm::Expected<DeviceBuffer> alloc(size_t bytes);
  DeviceBuffer(DeviceBuffer &&other) noexcept;
  DeviceBuffer &operator=(DeviceBuffer &&other) noexcept;
  ~DeviceBuffer();
  llvm::Error upload(const void *host, size_t bytes);
  llvm::Error download(void *host, size_t bytes) const;
  uint64_t pointer() const { return ptr; }
  size_t size() const { return bytes; }

private:
  DeviceBuffer() = default;
  uint64_t ptr = 0;
  size_t bytes = 0;
};

/// A loaded PTX or cubin image (cuModuleLoadData).
class Module {
public:
  static llvm::Expected<std::unique_ptr<Module>> load(llvm::StringRef image);
  ~Module();
  /// Launches `kernel` with bare device pointers as arguments (the
  /// quant-gpu-codegen calling convention) and waits for it.
  llvm::Error launch(llvm::StringRef kernel, unsigned gridX, unsigned gridY,
                     unsigned blockX, llvm::ArrayRef<uint64_t> pointers,
                     bool synchronize = true);

private:
  Module() = default;
  void *handle = nullptr;
};

/// Blocks until the device is idle.
llvm::Error synchronize();

/// Builds `config`'s kernel in a fresh gpu.module, runs quant-gpu-codegen
/// for `chip` (format=isa) in process and returns the PTX text.
llvm::Expected<std::string> compileKernelToPTX(const wqgpu::KernelConfig &config,
                                               llvm::StringRef chip);

} // namespace quant_mlir::cuda

#endif // QUANT_MLIR_RUNTIME_CUDARUNNER_H
