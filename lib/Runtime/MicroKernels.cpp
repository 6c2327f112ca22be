//===- MicroKernels.cpp - generate and JIT the host's GEMM micro-kernel ----===//
// The vector family's register tile, written in MLIR's vector dialect and
// compiled for the CPU this runs on (AVX-512 where present, AVX2 otherwise)
// by ExecutionEngine with JITTargetMachineBuilder::detectHost. The packing
// and blocking around it are in KernelsVector.cpp.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Runtime/MicroKernels.h"
#include "quant-mlir/Runtime/Kernels.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/TargetParser/Host.h"

#include <mutex>

using namespace mlir;
using namespace quant_mlir;

namespace {
constexpr const char *kGemmKernel = "quant_ukernel_gemm_f32";
} // namespace

HostVectorTarget quant_mlir::detectHostVectorTarget() {
  HostVectorTarget t;
  t.cpu = llvm::sys::getHostCPUName().str();
  llvm::StringMap<bool> features = llvm::sys::getHostCPUFeatures();
  if (features.lookup("avx512f")) {
    // 32 zmm registers: 8 x 2 accumulators, 2 B vectors, broadcasts.
    t.isa = "avx512";
    t.vectorWidth = 16;
    t.mr = 8;
  } else if (features.lookup("avx2") && features.lookup("fma")) {
    // 16 ymm registers: 6 x 2 accumulators, 2 B vectors, 1 broadcast.
    t.isa = "avx2";
    t.vectorWidth = 8;
    t.mr = 6;
  } else {
    t.isa = "generic";
    t.vectorWidth = 4;
    t.mr = 4;
  }
  t.nr = 2 * t.vectorWidth;
  return t;
}

void quant_mlir::buildGemmMicroKernel(ModuleOp module,
                                      const HostVectorTarget &target) {
  OpBuilder b = OpBuilder::atBlockEnd(module.getBody());
  Location loc = module.getLoc();
  Type f32 = b.getF32Type(), index = b.getIndexType();
  auto buffer = MemRefType::get({ShapedType::kDynamic}, f32);
  auto fn = func::FuncOp::create(
      b, loc, kGemmKernel,
      b.getFunctionType({buffer, buffer, buffer, index, index, index}, {}));
  Block *entry = fn.addEntryBlock();
  b.setInsertionPointToStart(entry);
  Value a = entry->getArgument(0), bb = entry->getArgument(1),
        c = entry->getArgument(2), cOff = entry->getArgument(3),
        kc = entry->getArgument(4), ldc = entry->getArgument(5);
  const int64_t mr = target.mr, vl = target.vectorWidth,
                nv = target.nr / target.vectorWidth;
  auto vt = VectorType::get({vl}, f32);
  auto cst = [&](OpBuilder &ob, int64_t v) -> Value {
    return arith::ConstantIndexOp::create(ob, loc, v);
  };
  Value zero = arith::ConstantOp::create(b, loc, vt, b.getZeroAttr(vt));
  SmallVector<Value> init(mr * nv, zero);
  auto loop = scf::ForOp::create(
      b, loc, cst(b, 0), kc, cst(b, 1), init,
      [&](OpBuilder &lb, Location l, Value k, ValueRange acc) {
        Value bRow = arith::MulIOp::create(lb, l, k, cst(lb, target.nr));
        SmallVector<Value> bv;
        for (int64_t j = 0; j < nv; ++j) {
          Value off = arith::AddIOp::create(lb, l, bRow, cst(lb, j * vl));
          bv.push_back(vector::LoadOp::create(lb, l, vt, bb, off));
        }
        Value aRow = arith::MulIOp::create(lb, l, k, cst(lb, mr));
        SmallVector<Value> next;
        for (int64_t i = 0; i < mr; ++i) {
          Value off = arith::AddIOp::create(lb, l, aRow, cst(lb, i));
          Value ai = memref::LoadOp::create(lb, l, a, off);
          Value splat = vector::BroadcastOp::create(lb, l, vt, ai);
          for (int64_t j = 0; j < nv; ++j)
            next.push_back(
                vector::FMAOp::create(lb, l, splat, bv[j], acc[i * nv + j]));
        }
        scf::YieldOp::create(lb, l, next);
      });
  for (int64_t i = 0; i < mr; ++i) {
    Value row = arith::AddIOp::create(
        b, loc, cOff, arith::MulIOp::create(b, loc, ldc, cst(b, i)));
    for (int64_t j = 0; j < nv; ++j) {
      Value off = arith::AddIOp::create(b, loc, row, cst(b, j * vl));
      Value old = vector::LoadOp::create(b, loc, vt, c, off);
      Value sum = arith::AddFOp::create(b, loc, old,
                                        loop.getResult(i * nv + j));
      vector::StoreOp::create(b, loc, sum, c, off);
    }
  }
  func::ReturnOp::create(b, loc);
}

namespace {
struct VectorKernels {
  MLIRContext context;
  std::unique_ptr<ExecutionEngine> engine;
  HostVectorTarget target;
  std::string error;
};

VectorKernels *compileVectorKernels() {
  auto *vk = new VectorKernels();
  vk->target = detectHostVectorTarget();
  MLIRContext &ctx = vk->context;
  ctx.loadDialect<func::FuncDialect, arith::ArithDialect,
                  memref::MemRefDialect, scf::SCFDialect,
                  vector::VectorDialect>();
  DialectRegistry registry;
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  ctx.appendDialectRegistry(registry);
  OwningOpRef<ModuleOp> module = ModuleOp::create(UnknownLoc::get(&ctx));
  buildGemmMicroKernel(*module, vk->target);

  PassManager pm(&ctx);
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createConvertVectorToLLVMPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  if (failed(pm.run(*module))) {
    vk->error = "lowering the vector micro-kernel failed";
    return vk;
  }

  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  // The IR optimizer and the code generator both get the host's CPU name
  // and features: vector<16xf32> becomes zmm FMAs with AVX-512, ymm pairs
  // with AVX2.
  std::unique_ptr<llvm::TargetMachine> machine;
  if (auto builder = llvm::orc::JITTargetMachineBuilder::detectHost()) {
    builder->setCodeGenOptLevel(llvm::CodeGenOptLevel::Aggressive);
    if (auto tm = builder->createTargetMachine())
      machine = std::move(*tm);
    else
      llvm::consumeError(tm.takeError());
  } else {
    llvm::consumeError(builder.takeError());
  }
  ExecutionEngineOptions options;
  options.transformer = makeOptimizingTransformer(2, 0, machine.get());
  options.jitCodeGenOptLevel = llvm::CodeGenOptLevel::Aggressive;
  auto engine = ExecutionEngine::create(*module, options);
  if (!engine) {
    vk->error = llvm::toString(engine.takeError());
    return vk;
  }
  vk->engine = std::move(*engine);
  auto address = vk->engine->lookup(kGemmKernel);
  if (!address) {
    vk->error = llvm::toString(address.takeError());
    return vk;
  }
  kernels::GemmMicroKernel kernel;
  kernel.fn = reinterpret_cast<kernels::GemmMicroKernel::Fn>(*address);
  kernel.mr = vk->target.mr;
  kernel.nr = vk->target.nr;
  kernels::setGemmMicroKernel(kernel);
  return vk;
}
} // namespace

llvm::Expected<HostVectorTarget> quant_mlir::initVectorKernels() {
  // Built once and never freed: registered code must outlive every module
  // that calls it, up to process exit.
  static VectorKernels *vk = compileVectorKernels();
  if (!vk->error.empty())
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "vector micro-kernels: " + vk->error);
  return vk->target;
}
