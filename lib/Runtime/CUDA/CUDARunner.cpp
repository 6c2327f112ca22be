//===- CUDARunner.cpp - CUDA driver API through dlopen ----------------------===//
// No cuda.h: the few driver entry points and types are declared here and
// resolved from libcuda.so.1 on first use.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Runtime/CUDARunner.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/FormatVariadic.h"

#include <dlfcn.h>
#include <mutex>

using namespace quant_mlir;
using namespace quant_mlir::cuda;

namespace {
using CUresult = int;
using CUdevice = int;
using CUdeviceptr = uint64_t;
using Handle = void *;

struct Driver {
  void *lib = nullptr;
  std::string error;
  CUresult (*cuInit)(unsigned) = nullptr;
  CUresult (*cuDeviceGetCount)(int *) = nullptr;
  CUresult (*cuDeviceGet)(CUdevice *, int) = nullptr;
  CUresult (*cuDeviceGetAttribute)(int *, int, CUdevice) = nullptr;
  CUresult (*cuDevicePrimaryCtxRetain)(Handle *, CUdevice) = nullptr;
  CUresult (*cuCtxSetCurrent)(Handle) = nullptr;
  CUresult (*cuCtxSynchronize)() = nullptr;
  CUresult (*cuGetErrorString)(CUresult, const char **) = nullptr;
  CUresult (*cuMemAlloc)(CUdeviceptr *, size_t) = nullptr;
  CUresult (*cuMemFree)(CUdeviceptr) = nullptr;
  CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void *, size_t) = nullptr;
  CUresult (*cuMemcpyDtoH)(void *, CUdeviceptr, size_t) = nullptr;
  CUresult (*cuModuleLoadData)(Handle *, const void *) = nullptr;
  CUresult (*cuModuleUnload)(Handle) = nullptr;
  CUresult (*cuModuleGetFunction)(Handle *, Handle, const char *) = nullptr;
  CUresult (*cuLaunchKernel)(Handle, unsigned, unsigned, unsigned, unsigned,
                             unsigned, unsigned, unsigned, Handle, void **,
                             void **) = nullptr;
  Handle context = nullptr;
  CUdevice device = 0;

  template <typename F> bool sym(F &f, const char *name) {
    f = reinterpret_cast<F>(dlsym(lib, name));
    if (!f)
      error = std::string("libcuda.so.1 lacks ") + name;
    return f != nullptr;
  }

  std::string message(CUresult r) {
    const char *s = nullptr;
    if (cuGetErrorString && cuGetErrorString(r, &s) == 0 && s)
      return s;
    return "CUDA error " + std::to_string(r);
  }

  void init() {
    lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      error = "no CUDA driver (dlopen libcuda.so.1 failed: " +
              std::string(dlerror()) + ")";
      return;
    }
    if (!sym(cuInit, "cuInit") || !sym(cuDeviceGetCount, "cuDeviceGetCount") ||
        !sym(cuDeviceGet, "cuDeviceGet") ||
        !sym(cuDeviceGetAttribute, "cuDeviceGetAttribute") ||
        !sym(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain") ||
        !sym(cuCtxSetCurrent, "cuCtxSetCurrent") ||
        !sym(cuCtxSynchronize, "cuCtxSynchronize") ||
        !sym(cuGetErrorString, "cuGetErrorString") ||
        !sym(cuMemAlloc, "cuMemAlloc_v2") || !sym(cuMemFree, "cuMemFree_v2") ||
        !sym(cuMemcpyHtoD, "cuMemcpyHtoD_v2") ||
        !sym(cuMemcpyDtoH, "cuMemcpyDtoH_v2") ||
        !sym(cuModuleLoadData, "cuModuleLoadData") ||
        !sym(cuModuleUnload, "cuModuleUnload") ||
        !sym(cuModuleGetFunction, "cuModuleGetFunction") ||
        !sym(cuLaunchKernel, "cuLaunchKernel"))
      return;
    if (CUresult r = cuInit(0)) {
      error = "cuInit failed: " + message(r);
      return;
    }
    int count = 0;
    if (cuDeviceGetCount(&count) != 0 || count == 0) {
      error = "no CUDA device present";
      return;
    }
    if (CUresult r = cuDeviceGet(&device, 0)) {
      error = "cuDeviceGet failed: " + message(r);
      return;
    }
    if (CUresult r = cuDevicePrimaryCtxRetain(&context, device)) {
      error = "cuDevicePrimaryCtxRetain failed: " + message(r);
      return;
    }
  }

  llvm::Error check(CUresult r, const char *what) {
    if (r == 0)
      return llvm::Error::success();
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   std::string(what) + ": " + message(r));
  }
  llvm::Error current() {
    if (!error.empty())
      return llvm::createStringError(llvm::inconvertibleErrorCode(), error);
    return check(cuCtxSetCurrent(context), "cuCtxSetCurrent");
  }
};

Driver &driver() {
  static Driver d;
  static std::once_flag once;
  std::call_once(once, [] { d.init(); });
  return d;
}
} // namespace

std::string quant_mlir::cuda::unavailableReason() { return driver().error; }

int quant_mlir::cuda::computeCapability() {
  Driver &d = driver();
  if (!d.error.empty())
    return 0;
  int major = 0, minor = 0;
  // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR.
  if (d.cuDeviceGetAttribute(&major, 75, d.device) ||
      d.cuDeviceGetAttribute(&minor, 76, d.device))
    return 0;
  return major * 10 + minor;
}

llvm::Expected<DeviceBuffer> DeviceBuffer::alloc(size_t bytes) {
  Driver &d = driver();
  if (auto err = d.current())
    return std::move(err);
  DeviceBuffer buf;
  if (auto err = d.check(d.cuMemAlloc(&buf.ptr, bytes ? bytes : 1),
                         "cuMemAlloc"))
    return std::move(err);
  buf.bytes = bytes;
  return buf;
}

DeviceBuffer::DeviceBuffer(DeviceBuffer &&o) noexcept
    : ptr(o.ptr), bytes(o.bytes) {
  o.ptr = 0;
}
DeviceBuffer &DeviceBuffer::operator=(DeviceBuffer &&o) noexcept {
  std::swap(ptr, o.ptr);
  std::swap(bytes, o.bytes);
  return *this;
}
DeviceBuffer::~DeviceBuffer() {
  if (ptr)
    (void)driver().cuMemFree(ptr);
}
llvm::Error DeviceBuffer::upload(const void *host, size_t n) {
  Driver &d = driver();
  if (auto err = d.current())
    return err;
  return d.check(d.cuMemcpyHtoD(ptr, host, n), "cuMemcpyHtoD");
}
llvm::Error DeviceBuffer::download(void *host, size_t n) const {
  Driver &d = driver();
  if (auto err = d.current())
    return err;
  return d.check(d.cuMemcpyDtoH(host, ptr, n), "cuMemcpyDtoH");
}

llvm::Expected<std::unique_ptr<Module>> Module::load(llvm::StringRef image) {
  Driver &d = driver();
  if (auto err = d.current())
    return std::move(err);
  std::string copy = image.str(); // PTX must be NUL-terminated
  std::unique_ptr<Module> m(new Module);
  if (auto err =
          d.check(d.cuModuleLoadData(&m->handle, copy.c_str()), "cuModuleLoadData"))
    return std::move(err);
  return m;
}

Module::~Module() {
  if (handle)
    (void)driver().cuModuleUnload(handle);
}

llvm::Error Module::launch(llvm::StringRef kernel, unsigned gridX,
                           unsigned gridY, unsigned blockX,
                           llvm::ArrayRef<uint64_t> pointers, bool sync) {
  Driver &d = driver();
  if (auto err = d.current())
    return err;
  Handle fn = nullptr;
  std::string name = kernel.str();
  if (auto err = d.check(d.cuModuleGetFunction(&fn, handle, name.c_str()),
                         "cuModuleGetFunction"))
    return err;
  std::vector<uint64_t> values(pointers.begin(), pointers.end());
  std::vector<void *> params;
  for (uint64_t &v : values)
    params.push_back(&v);
  if (auto err = d.check(d.cuLaunchKernel(fn, gridX, gridY, 1, blockX, 1, 1, 0,
                                          nullptr, params.data(), nullptr),
                         "cuLaunchKernel"))
    return err;
  if (!sync)
    return llvm::Error::success();
  return d.check(d.cuCtxSynchronize(), "kernel execution");
}

llvm::Error quant_mlir::cuda::synchronize() {
  Driver &d = driver();
  if (auto err = d.current())
    return err;
  return d.check(d.cuCtxSynchronize(), "cuCtxSynchronize");
}

llvm::Expected<std::string>
quant_mlir::cuda::compileKernelToPTX(const wqgpu::KernelConfig &config,
                                     llvm::StringRef chip) {
  if (std::string why = config.check(); !why.empty())
    return llvm::createStringError(llvm::inconvertibleErrorCode(), why);
  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  wqgpu::registerGPUCodegenDialects(registry);
  mlir::MLIRContext context(registry);
  context.loadAllAvailableDialects();
  mlir::OpBuilder b(&context);
  mlir::Location loc = b.getUnknownLoc();
  mlir::OwningOpRef<mlir::ModuleOp> module = mlir::ModuleOp::create(loc);
  (*module)->setAttr(mlir::gpu::GPUDialect::getContainerModuleAttrName(),
                     b.getUnitAttr());
  b.setInsertionPointToEnd(module->getBody());
  auto kernels = mlir::gpu::GPUModuleOp::create(b, loc, "wq_kernels");
  b.setInsertionPointToEnd(kernels.getBody());
  wqgpu::buildKernel(b, loc, config);

  std::string diagnostics;
  mlir::ScopedDiagnosticHandler handler(&context, [&](mlir::Diagnostic &d) {
    llvm::raw_string_ostream(diagnostics) << d << "\n";
    return mlir::success();
  });
  mlir::PassManager pm(&context);
  wqgpu::GPUCodegenOptions options;
  options.chip = chip.str();
  wqgpu::buildGPUCodegenPipeline(pm, options);
  if (mlir::failed(pm.run(*module)))
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "quant-gpu-codegen failed: " + diagnostics);
  for (auto binary : module->getOps<mlir::gpu::BinaryOp>())
    for (mlir::Attribute attr : binary.getObjects())
      if (auto object = llvm::dyn_cast<mlir::gpu::ObjectAttr>(attr))
        return object.getObject().getValue().str();
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 "no gpu.binary object produced");
}
