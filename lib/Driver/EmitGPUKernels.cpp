//===- EmitGPUKernels.cpp - GEMV/GEMM cubins for a quantized module ---------===//
// For every quantized layer the GPU kernels support: a GEMV (decode, M = 1)
// and a GEMM (prefill, M = 16) per target, as PTX from gpu-module-to-binary
// assembled by ptxas into a cubin, listed in kernels/manifest.json. Layers
// the kernels cannot take (act-order, shapes) are listed with the reason.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Driver/Compile.h"

#include "quant-mlir/Conversion/WQToGPU/WQToGPU.h"
#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"
#include "quant-mlir/Runtime/CUDARunner.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"

#include <set>

using namespace quant_mlir;
namespace fs = llvm::sys::fs;

static llvm::Error error(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

/// Writes `base`.ptx for `cfg` into `kdir` and assembles it for `target`.
static llvm::Error assemble(const wqgpu::KernelConfig &cfg,
                            llvm::StringRef target, llvm::StringRef kdir,
                            llvm::StringRef base, llvm::StringRef ptxas) {
  auto ptx = cuda::compileKernelToPTX(cfg, target.str());
  if (!ptx)
    return ptx.takeError();
  llvm::SmallString<256> ptxFile(kdir), cubin(kdir);
  llvm::sys::path::append(ptxFile, base + ".ptx");
  llvm::sys::path::append(cubin, base + ".cubin");
  if (llvm::Error err = llvm::writeToOutput(ptxFile, [&](llvm::raw_ostream &os) {
        os << *ptx;
        return llvm::Error::success();
      }))
    return err;
  std::string arch = ("-arch=" + target).str();
  llvm::StringRef args[] = {ptxas, arch, "-O3", ptxFile, "-o", cubin};
  std::string msg;
  if (llvm::sys::ExecuteAndWait(ptxas, args, std::nullopt, {}, 0, 0, &msg) != 0)
    return error("ptxas rejected " + base + ".ptx for " + target +
                 (msg.empty() ? "" : ": " + msg));
  return llvm::Error::success();
}

llvm::Error driver::emitGPUKernels(mlir::ModuleOp module, llvm::StringRef dir,
                                   llvm::ArrayRef<std::string> targets,
                                   llvm::StringRef ptxas) {
  llvm::SmallString<256> kdir(dir);
  llvm::sys::path::append(kdir, "kernels");
  if (std::error_code ec = fs::create_directories(kdir))
    return llvm::createStringError(ec, "cannot create '" + kdir + "'");
  if (!fs::can_execute(ptxas))
    return error("ptxas not found at '" + ptxas +
                 "' (install the CUDA toolkit or pass --ptxas)");
  for (const std::string &target : targets)
    if (wqgpu::parseChip(target) == 0)
      return error("bad --target '" + target + "' (expected e.g. sm_87)");
  llvm::json::Array entries;
  std::set<std::string> done;
  llvm::Error err = llvm::Error::success();
  module.walk([&](wq::QuantizedLinearOp op) {
    if (err)
      return mlir::WalkResult::interrupt();
    wq::SchemeAttr scheme = op.getScheme();
    int64_t k = op.getInput().getType().getShape().back();
    std::string layer = op.getName().value_or("").str();
    for (auto kind : {wqgpu::KernelConfig::Kind::GEMV,
                      wqgpu::KernelConfig::Kind::GEMM}) {
      bool gemv = kind == wqgpu::KernelConfig::Kind::GEMV;
      wqgpu::KernelConfig cfg;
      cfg.kind = kind;
      cfg.m = gemv ? 1 : 16;
      cfg.blockM = 16;
      cfg.k = k;
      cfg.n = op.getScales().getType().getDimSize(1);
      cfg.bits = scheme.getBits();
      cfg.groupSize = scheme.isPerChannel() ? k : scheme.getGroupSize();
      cfg.zeros = static_cast<bool>(op.getZeros());
      cfg.bias = static_cast<bool>(op.getBias());
      std::string why = scheme.getActOrder()
                            ? "act-order is not supported on the GPU path"
                            : cfg.check();
      for (const std::string &target : targets) {
        cfg.sm = wqgpu::parseChip(target);
        llvm::json::Object entry{{"layer", layer},
                                 {"target", target},
                                 {"kind", gemv ? "gemv" : "gemm"}};
        if (!why.empty()) {
          entry["skipped"] = why;
          entries.push_back(std::move(entry));
          continue;
        }
        std::string base = cfg.name() + "." + target;
        entry["kernel"] = cfg.name();
        entry["ptx"] = "kernels/" + base + ".ptx";
        entry["cubin"] = "kernels/" + base + ".cubin";
        entries.push_back(std::move(entry));
        if (done.insert(base).second &&
            (err = assemble(cfg, target, kdir, base, ptxas)))
          return mlir::WalkResult::interrupt();
      }
    }
    return mlir::WalkResult::advance();
  });
  if (err)
    return err;
  llvm::SmallString<256> manifest(kdir);
  llvm::sys::path::append(manifest, "manifest.json");
  return llvm::writeToOutput(manifest, [&](llvm::raw_ostream &os) {
    os << llvm::formatv("{0:2}", llvm::json::Value(std::move(entries))) << "\n";
    return llvm::Error::success();
  });
}
