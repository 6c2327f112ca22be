//===- LinalgToBLAS.cpp - contractions and packed layers to runtime calls --===//
// convert-linalg-to-blas: f32 linalg contractions on buffers become calls of
// the runtime's strided SGEMM (quant_contract_f32, or quant_vcontract_f32 for
// the vector kernel family).
// convert-wq-to-cpu-kernels: gptq wq.quantized_linear becomes a call of the
// fused dequantize + matmul kernel (quant_qlinear_f32; flags bit 0 selects
// the vector family).
// Both pass sizes, pointers and strides as `index`, so the C side needs no
// memref descriptors (lib/Runtime/Kernels.cpp, docs/performance-cpu.md).
//===----------------------------------------------------------------------===//

#include "quant-mlir/Conversion/Passes.h"
#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/IR/LinalgInterfaces.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

namespace quant_mlir {
#define GEN_PASS_DEF_CONVERTLINALGTOBLAS
#define GEN_PASS_DEF_CONVERTWQTOCPUKERNELS
#include "quant-mlir/Conversion/Passes.h.inc"
} // namespace quant_mlir

using namespace mlir;
using namespace quant_mlir::wq;

namespace {
constexpr const char *kContractFn = "quant_contract_f32";
constexpr const char *kVContractFn = "quant_vcontract_f32";
constexpr const char *kQLinearFn = "quant_qlinear_f32";
constexpr unsigned kMaxContractDims = 8;
constexpr unsigned kContractArgs = 7 + 5 * kMaxContractDims;
constexpr unsigned kQLinearArgs = 8 + 7;

/// Declares `func.func private @name(index x numArgs)` once per module.
func::FuncOp declareIndexFn(ModuleOp module, StringRef name,
                            unsigned numArgs) {
  if (auto fn = module.lookupSymbol<func::FuncOp>(name))
    return fn;
  OpBuilder b = OpBuilder::atBlockBegin(module.getBody());
  SmallVector<Type> args(numArgs, b.getIndexType());
  auto fn = func::FuncOp::create(b, module.getLoc(), name,
                                 b.getFunctionType(args, {}));
  fn.setPrivate();
  return fn;
}

Value cIndex(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIndexOp::create(b, loc, v);
}

/// Role of each loop dim of a contraction: 0 batch, 1 M, 2 N, 3 K.
using Roles = SmallVector<int64_t, 8>;

FailureOr<Roles> matchContraction(linalg::LinalgOp op, int64_t minFlops) {
  if (!op.hasPureBufferSemantics() || op.getNumDpsInputs() != 2 ||
      op.getNumDpsInits() != 1 || op.getNumLoops() > kMaxContractDims)
    return failure();
  for (OpOperand &operand : op->getOpOperands()) {
    auto type = dyn_cast<MemRefType>(operand.get().getType());
    if (!type || !type.getElementType().isF32())
      return failure();
  }
  if (!linalg::isaContractionOpInterface(op))
    return failure();
  FailureOr<linalg::ContractionDimensions> dims =
      linalg::inferContractionDims(op);
  if (failed(dims) || dims->k.empty())
    return failure();
  if (dims->batch.size() + dims->m.size() + dims->n.size() + dims->k.size() !=
      op.getNumLoops())
    return failure();
  for (AffineMap map : op.getIndexingMapsArray())
    if (!map.isProjectedPermutation(/*allowZeroInResults=*/false))
      return failure();
  if (minFlops > 0) {
    int64_t flops = 1;
    bool dynamic = false;
    for (int64_t r : op.getStaticLoopRanges()) {
      if (ShapedType::isDynamic(r))
        dynamic = true;
      else
        flops *= r;
    }
    if (!dynamic && flops < minFlops)
      return failure();
  }
  Roles roles(op.getNumLoops(), -1);
  for (unsigned d : dims->batch)
    roles[d] = 0;
  for (unsigned d : dims->m)
    roles[d] = 1;
  for (unsigned d : dims->n)
    roles[d] = 2;
  for (unsigned d : dims->k)
    roles[d] = 3;
  return roles;
}

/// Pointer, offset and per-loop-dim strides of one operand.
struct OperandInfo {
  Value pointer, offset;
  SmallVector<Value> loopStrides; // indexed by loop dim; 0 if absent
};

OperandInfo describe(OpBuilder &b, Location loc, Value memref, AffineMap map,
                     unsigned numLoops) {
  OperandInfo info;
  auto meta = memref::ExtractStridedMetadataOp::create(b, loc, memref);
  info.pointer =
      memref::ExtractAlignedPointerAsIndexOp::create(b, loc, memref);
  info.offset = meta.getOffset();
  Value zero = cIndex(b, loc, 0);
  info.loopStrides.assign(numLoops, zero);
  for (auto [pos, expr] : llvm::enumerate(map.getResults()))
    info.loopStrides[cast<AffineDimExpr>(expr).getPosition()] =
        meta.getStrides()[pos];
  return info;
}

struct ConvertLinalgToBLASPass
    : public quant_mlir::impl::ConvertLinalgToBLASBase<
          ConvertLinalgToBLASPass> {
  using ConvertLinalgToBLASBase::ConvertLinalgToBLASBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<std::pair<linalg::LinalgOp, Roles>> work;
    module.walk([&](linalg::LinalgOp op) {
      if (op->getParentOfType<func::FuncOp>() == nullptr)
        return;
      FailureOr<Roles> roles = matchContraction(op, minFlops);
      if (succeeded(roles))
        work.emplace_back(op, *roles);
    });
    if (work.empty())
      return;
    func::FuncOp callee = declareIndexFn(
        module, vector ? kVContractFn : kContractFn, kContractArgs);
    for (auto &[op, roles] : work)
      rewrite(op, roles, callee);
  }

  /// Arguments: numDims, then A, B, C as (pointer, offset), then per dim
  /// slot (role, size, strideA, strideB, strideC); unused slots are zero.
  void rewrite(linalg::LinalgOp op, const Roles &roles, func::FuncOp callee) {
    OpBuilder b(op);
    Location loc = op.getLoc();
    unsigned numLoops = op.getNumLoops();
    SmallVector<Range> ranges = op.createLoopRanges(b, loc);
    SmallVector<AffineMap> maps = op.getIndexingMapsArray();
    OperandInfo a = describe(b, loc, op.getDpsInputs()[0], maps[0], numLoops);
    OperandInfo bb = describe(b, loc, op.getDpsInputs()[1], maps[1], numLoops);
    OperandInfo c = describe(b, loc, op.getDpsInits()[0], maps[2], numLoops);
    Value zero = cIndex(b, loc, 0);
    SmallVector<Value> args = {cIndex(b, loc, numLoops), a.pointer, a.offset,
                               bb.pointer, bb.offset, c.pointer, c.offset};
    for (unsigned d = 0; d < kMaxContractDims; ++d) {
      if (d >= numLoops) {
        args.append(5, zero);
        continue;
      }
      args.push_back(cIndex(b, loc, roles[d]));
      args.push_back(getValueOrCreateConstantIndexOp(b, loc, ranges[d].size));
      args.push_back(a.loopStrides[d]);
      args.push_back(bb.loopStrides[d]);
      args.push_back(c.loopStrides[d]);
    }
    assert(args.size() == kContractArgs);
    func::CallOp::create(b, loc, callee, args);
    op->erase();
  }
};

//===----------------------------------------------------------------------===//
// convert-wq-to-cpu-kernels
//===----------------------------------------------------------------------===//

bool isF32Tensor(Value v) {
  auto t = dyn_cast<RankedTensorType>(v.getType());
  return t && t.getElementType().isF32();
}

LogicalResult supported(QuantizedLinearOp op) {
  if (op.getPacking() != Packing::gptq)
    return failure();
  if (!isF32Tensor(op.getInput()) || !isF32Tensor(op.getScales()) ||
      !isF32Tensor(op.getResult()) ||
      (op.getBias() && !isF32Tensor(op.getBias())))
    return failure();
  auto codes = op.getCodes().getType();
  auto scales = op.getScales().getType();
  if (!codes.hasStaticShape() || !scales.hasStaticShape())
    return failure();
  if (op.getInput().getType().getRank() < 1 ||
      ShapedType::isDynamic(op.getInput().getType().getShape().back()))
    return failure();
  unsigned bits = op.getScheme().getBits();
  return success(bits >= 1 && bits <= 8);
}

Value toBuffer(OpBuilder &b, Location loc, Value tensor) {
  auto type = cast<RankedTensorType>(tensor.getType());
  return bufferization::ToBufferOp::create(
      b, loc, MemRefType::get(type.getShape(), type.getElementType()), tensor,
      /*read_only=*/true);
}

struct ConvertWQToCPUKernelsPass
    : public quant_mlir::impl::ConvertWQToCPUKernelsBase<
          ConvertWQToCPUKernelsPass> {
  using ConvertWQToCPUKernelsBase::ConvertWQToCPUKernelsBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<QuantizedLinearOp> ops;
    module.walk([&](QuantizedLinearOp op) {
      if (succeeded(supported(op)))
        ops.push_back(op);
    });
    if (ops.empty())
      return;
    func::FuncOp callee = declareIndexFn(module, kQLinearFn, kQLinearArgs);
    for (QuantizedLinearOp op : ops)
      rewrite(op, callee);
  }

  /// No reshapes: the input's buffer is dense row-major (to_buffer with an
  /// identity layout), so M is the product of its leading dims and the
  /// output is allocated in the result's shape. (expand-strided-metadata
  /// crashes on a memref.expand_shape into two dynamic dims.)
  void rewrite(QuantizedLinearOp op, func::FuncOp callee) {
    OpBuilder b(op);
    Location loc = op.getLoc();
    Value x = op.getInput();
    RankedTensorType inputType = op.getInput().getType();
    RankedTensorType resultType = op.getType();
    int64_t rank = inputType.getRank();
    int64_t k = inputType.getShape().back();
    int64_t n = resultType.getShape().back();
    Value m = cIndex(b, loc, 1);
    SmallVector<Value> dynSizes;
    for (int64_t i = 0; i < rank - 1; ++i) {
      Value d = inputType.isDynamicDim(i)
                    ? tensor::DimOp::create(b, loc, x, i).getResult()
                    : cIndex(b, loc, inputType.getDimSize(i));
      if (resultType.isDynamicDim(i))
        dynSizes.push_back(d);
      m = arith::MulIOp::create(b, loc, m, d);
    }
    auto pointer = [&](Value tensor) -> Value {
      if (!tensor)
        return cIndex(b, loc, 0);
      return memref::ExtractAlignedPointerAsIndexOp::create(
          b, loc, toBuffer(b, loc, tensor));
    };
    SchemeAttr scheme = op.getScheme();
    int64_t groups = op.getScales().getType().getDimSize(0);
    auto outType =
        MemRefType::get(resultType.getShape(), resultType.getElementType());
    Value out = memref::AllocOp::create(b, loc, outType, dynSizes);
    SmallVector<Value> args = {
        m,
        cIndex(b, loc, n),
        cIndex(b, loc, k),
        cIndex(b, loc, scheme.getBits()),
        cIndex(b, loc, scheme.isPerChannel() ? 0 : scheme.getGroupSize()),
        cIndex(b, loc, groups),
        cIndex(b, loc, scheme.getActOrder() && op.getGIdx() ? 1 : 0),
        cIndex(b, loc, vector ? 1 : 0), // flags: bit 0 = vector kernels
        pointer(x),
        pointer(op.getCodes()),
        pointer(op.getScales()),
        pointer(op.getZeros()),
        pointer(scheme.getActOrder() ? op.getGIdx() : Value()),
        pointer(op.getBias()),
        memref::ExtractAlignedPointerAsIndexOp::create(b, loc, out)};
    assert(args.size() == kQLinearArgs);
    func::CallOp::create(b, loc, callee, args);
    Value result = bufferization::ToTensorOp::create(
        b, loc, resultType, out, /*restrict=*/true, /*writable=*/true);
    op.replaceAllUsesWith(result);
    op.erase();
  }
};
} // namespace
