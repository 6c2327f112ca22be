//===- WQToGPU.cpp - convert-wq-to-gpu and quant-gpu-codegen ---------------===//
// Replaces gpu_v4 wq.quantized_linear ops by launches of generated kernels
// (Kernels.cpp) and registers the device-side PTX pipeline.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Conversion/WQToGPU/WQToGPU.h"
#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/LLVMIR/Transforms/OptimizeForNVVM.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVM/NVVM/Target.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/GPU/GPUToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/NVVM/NVVMToLLVMIRTranslation.h"
#include "mlir/Transforms/Passes.h"

#include "quant-mlir/Conversion/Passes.h"

namespace quant_mlir {
#define GEN_PASS_DEF_CONVERTWQTOGPU
#include "quant-mlir/Conversion/Passes.h.inc"
} // namespace quant_mlir

using namespace mlir;
using namespace quant_mlir::wq;
using namespace quant_mlir::wqgpu;

namespace {
constexpr StringLiteral kKernelModule = "wq_kernels";

/// The kernel configuration for `op`, or a reason why it is not converted.
FailureOr<KernelConfig> configFor(QuantizedLinearOp op, int64_t gemvMaxM,
                                  int sm, bool f16Partials,
                                  std::string &why) {
  SchemeAttr scheme = op.getScheme();
  if (op.getPacking() != Packing::gpu_v4) {
    why = "codes are not in the gpu_v4 layout (run wq-pack first)";
    return failure();
  }
  if (scheme.getActOrder()) {
    why = "act_order (g_idx) is not supported by the GPU kernels yet";
    return failure();
  }
  RankedTensorType input = op.getInput().getType();
  Type f16 = Float16Type::get(op.getContext());
  if (!input.hasStaticShape() || input.getElementType() != f16 ||
      op.getScales().getType().getElementType() != f16 ||
      (op.getBias() &&
       cast<RankedTensorType>(op.getBias().getType()).getElementType() != f16)) {
    why = "the GPU kernels take static-shape f16 activations, scales and bias";
    return failure();
  }
  KernelConfig c;
  c.k = input.getShape().back();
  c.m = input.getNumElements() / c.k;
  c.n = op.getScales().getType().getDimSize(1);
  c.bits = scheme.getBits();
  c.groupSize = scheme.isPerChannel() ? c.k : scheme.getGroupSize();
  c.zeros = bool(op.getZeros());
  c.bias = bool(op.getBias());
  c.f16Partials = f16Partials;
  c.sm = sm;
  if (c.m <= gemvMaxM) {
    c.kind = KernelConfig::Kind::GEMV;
  } else {
    c.kind = KernelConfig::Kind::GEMM;
    // The largest row tile that divides M and fits in shared memory.
    for (int64_t bm : {64, 32, 16}) {
      c.blockM = bm;
      if (c.check().empty())
        break;
    }
  }
  why = c.check();
  if (!why.empty())
    return failure();
  return c;
}

Value toBuffer(OpBuilder &b, Location loc, Value tensor) {
  auto type = cast<RankedTensorType>(tensor.getType());
  return bufferization::ToBufferOp::create(
      b, loc, MemRefType::get(type.getShape(), type.getElementType()), tensor,
      /*read_only=*/true);
}

struct ConvertWQToGPUPass
    : public quant_mlir::impl::ConvertWQToGPUBase<ConvertWQToGPUPass> {
  using ConvertWQToGPUBase::ConvertWQToGPUBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    int sm = parseChip(chip);
    if (sm == 0) {
      module.emitError() << "convert-wq-to-gpu: bad chip '" << chip
                         << "' (expected sm_XY)";
      return signalPassFailure();
    }
    SmallVector<QuantizedLinearOp> ops;
    module.walk([&](QuantizedLinearOp op) { ops.push_back(op); });
    gpu::GPUModuleOp kernels;
    for (QuantizedLinearOp op : ops) {
      std::string why;
      FailureOr<KernelConfig> config =
          configFor(op, gemvMaxM, sm, f16Partials, why);
      if (failed(config)) {
        op.emitWarning() << "not converted to a GPU kernel: " << why;
        continue;
      }
      if (!kernels) {
        kernels = module.lookupSymbol<gpu::GPUModuleOp>(kKernelModule);
        if (!kernels) {
          OpBuilder b = OpBuilder::atBlockEnd(module.getBody());
          kernels = gpu::GPUModuleOp::create(b, module.getLoc(), kKernelModule);
        }
        module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                        UnitAttr::get(&getContext()));
      }
      auto func = kernels.lookupSymbol<gpu::GPUFuncOp>(config->name());
      if (!func) {
        OpBuilder kb = OpBuilder::atBlockEnd(kernels.getBody());
        func = cast<gpu::GPUFuncOp>(buildKernel(kb, op.getLoc(), *config));
      }
      rewriteHost(op, *config, func);
    }
  }

  /// bufferization.to_buffer on the operands, an output buffer, the launch
  /// and bufferization.to_tensor of the result (reshaped to [.., N]).
  void rewriteHost(QuantizedLinearOp op, const KernelConfig &c,
                   gpu::GPUFuncOp func) {
    OpBuilder b(op);
    Location loc = op.getLoc();
    Value x = op.getInput();
    RankedTensorType inputType = op.getInput().getType();
    int64_t rank = inputType.getRank();
    SmallVector<ReassociationIndices> reassoc;
    if (rank != 2) {
      ReassociationIndices lead;
      for (int64_t i = 0; i < rank - 1; ++i)
        lead.push_back(i);
      reassoc = {lead, {rank - 1}};
      if (rank == 1)
        x = tensor::ExpandShapeOp::create(
            b, loc, RankedTensorType::get({1, c.k}, inputType.getElementType()),
            x, SmallVector<ReassociationIndices>{{0, 1}});
      else
        x = tensor::CollapseShapeOp::create(b, loc, x, reassoc);
    }
    SmallVector<Value> args = {toBuffer(b, loc, x),
                               toBuffer(b, loc, op.getCodes()),
                               toBuffer(b, loc, op.getScales())};
    if (op.getZeros())
      args.push_back(toBuffer(b, loc, op.getZeros()));
    if (op.getBias())
      args.push_back(toBuffer(b, loc, op.getBias()));
    Type f16 = b.getF16Type();
    Value out =
        memref::AllocOp::create(b, loc, MemRefType::get({c.m, c.n}, f16));
    args.push_back(out);
    auto cst = [&](int64_t v) {
      return arith::ConstantIndexOp::create(b, loc, v).getResult();
    };
    Value one = cst(1);
    gpu::LaunchFuncOp::create(
        b, loc, func, gpu::KernelDim3{cst(c.gridX()), cst(c.gridY()), one},
        gpu::KernelDim3{cst(c.blockX()), one, one}, Value(), args);
    Value result = bufferization::ToTensorOp::create(
        b, loc, RankedTensorType::get({c.m, c.n}, f16), out,
        /*restrict=*/true, /*writable=*/true);
    if (rank == 1)
      result = tensor::CollapseShapeOp::create(
          b, loc, result, SmallVector<ReassociationIndices>{{0, 1}});
    else if (rank != 2)
      result = tensor::ExpandShapeOp::create(b, loc, op.getType(), result,
                                             reassoc);
    op.replaceAllUsesWith(result);
    op.erase();
  }
};
} // namespace

void quant_mlir::wqgpu::buildGPUCodegenPipeline(
    OpPassManager &pm, const GPUCodegenOptions &options) {
  GpuNVVMAttachTargetOptions target;
  target.chip = options.chip;
  target.features = options.features;
  target.optLevel = options.optLevel;
  pm.addPass(createGpuNVVMAttachTarget(target));

  OpPassManager &gm = pm.nest<gpu::GPUModuleOp>();
  gm.addPass(createConvertNVGPUToNVVMPass());
  gm.addPass(createConvertVectorToSCFPass());
  gm.addPass(createSCFToControlFlowPass());
  gm.addPass(createConvertNVVMToLLVMPass());
  gm.addPass(memref::createExpandStridedMetadataPass());
  gm.addPass(createLowerAffinePass());
  gm.addPass(createArithToLLVMConversionPass());
  gm.addPass(createConvertIndexToLLVMPass());
  gm.addPass(createStripDebugInfoPass());
  ConvertGpuOpsToNVVMOpsOptions nvvm;
  nvvm.useBarePtrCallConv = true; // the runner passes device pointers
  nvvm.indexBitwidth = 64;
  gm.addPass(createConvertGpuOpsToNVVMOps(nvvm));
  gm.addPass(LLVM::createNVVMOptimizeForTargetPass());
  gm.addPass(createCanonicalizerPass());
  gm.addPass(createCSEPass());
  gm.addPass(createReconcileUnrealizedCastsPass());

  GpuModuleToBinaryPassOptions binary;
  binary.compilationTarget = options.format;
  pm.addPass(createGpuModuleToBinaryPass(binary));
}

void quant_mlir::wqgpu::registerGPUCodegenPipeline() {
  PassPipelineRegistration<GPUCodegenOptions>(
      "quant-gpu-codegen",
      "Lower the gpu.modules made by convert-wq-to-gpu to PTX (format=isa) "
      "or a cubin for one chip (sm_75 .. sm_90); host code is untouched",
      buildGPUCodegenPipeline);
}

void quant_mlir::wqgpu::registerGPUCodegenDialects(DialectRegistry &registry) {
  NVVM::registerNVVMTargetInterfaceExternalModels(registry);
  registerBuiltinDialectTranslation(registry);
  registerGPUDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  registerNVVMDialectTranslation(registry);
}
