//===- Pack.cpp - wq-pack: repack gptq codes into a kernel layout -----------===//
// The repacking itself is the pure function quant_mlir::gpupack::gptqToGPUV4;
// this pass finds the codes (IR constants or archive tensors), applies it and
// rewrites the IR (and, for archive tensors, writes a new archive).
//===----------------------------------------------------------------------===//

#include "quant-mlir/Quant/GPUPacking.h"
#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h"
#include "quant-mlir/Support/SafeTensors.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/Path.h"

#include <cstring>

namespace quant_mlir::wq {
#define GEN_PASS_DEF_WQPACK
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h.inc"
} // namespace quant_mlir::wq

using namespace mlir;
using namespace quant_mlir;
using namespace quant_mlir::wq;

namespace {
/// Per-run state (the pass itself must stay copyable).
struct Packer {
  std::string output, baseDir;
  std::unique_ptr<safetensors::Reader> reader;
  safetensors::Writer writer;
  /// Repacked archive tensors by their new name (dedups shared codes).
  llvm::StringMap<RankedTensorType> repacked;
  bool archiveUsed = false;

  std::string resolve(StringRef path) const {
    if (baseDir.empty() || llvm::sys::path::is_absolute(path))
      return path.str();
    SmallString<256> full(baseDir);
    llvm::sys::path::append(full, path);
    return std::string(full);
  }

  /// The repacked codes value for `codes`, or null after a diagnostic.
  FailureOr<Value> repack(Operation *user, Value codes, unsigned bits,
                          int64_t k, int64_t n) {
    OpBuilder b(user);
    auto newType = RankedTensorType::get({k * bits / 128, 4 * n},
                                         b.getI32Type());
    if (auto cst = codes.getDefiningOp<arith::ConstantOp>()) {
      auto dense = dyn_cast<DenseIntElementsAttr>(cst.getValue());
      if (!dense)
        return user->emitError("wq-pack: constant codes must be dense");
      std::vector<int32_t> src;
      src.reserve(dense.getNumElements());
      for (const APInt &v : dense.getValues<APInt>())
        src.push_back(int32_t(v.getZExtValue()));
      std::vector<int32_t> dst = gpupack::gptqToGPUV4(src.data(), bits, k, n);
      auto attr = DenseIntElementsAttr::get(newType, ArrayRef<int32_t>(dst));
      return arith::ConstantOp::create(b, cst.getLoc(), newType, attr)
          .getResult();
    }
    auto weight = codes.getDefiningOp<WeightOp>();
    if (!weight)
      return user->emitError(
          "wq-pack: codes must be a wq.weight reference or a constant");
    if (output.empty())
      return user->emitError(
          "wq-pack: codes come from the weight archive; give output= for "
          "the repacked archive");
    if (!reader) {
      std::string path = resolve(getArchivePath(weight));
      auto opened = safetensors::Reader::open(path);
      if (!opened)
        return user->emitError() << "wq-pack: cannot open archive '" << path
                                 << "': " << llvm::toString(opened.takeError());
      reader = std::move(*opened);
      for (const safetensors::TensorInfo &info : reader->tensors())
        if (auto err = writer.add(info.name, info.dtype, info.shape,
                                  reader->bytes(info)))
          return user->emitError()
                 << "wq-pack: " << llvm::toString(std::move(err));
      for (const auto &[key, value] : reader->metadata())
        writer.setMetadata(key, value);
    }
    archiveUsed = true;
    std::string newName = (weight.getName() + ".gpu_v4").str();
    if (!repacked.count(newName)) {
      const safetensors::TensorInfo *info = reader->lookup(weight.getName());
      if (!info || info->dtype != safetensors::DType::I32 ||
          ArrayRef<int64_t>(info->shape) != weight.getType().getShape())
        return user->emitError()
               << "wq-pack: archive tensor '" << weight.getName()
               << "' is missing or not an I32 tensor of the IR's shape";
      if (reader->lookup(newName))
        return user->emitError() << "wq-pack: archive already holds '"
                                 << newName << "'";
      ArrayRef<int32_t> src = reader->as<int32_t>(*info);
      std::vector<int32_t> dst = gpupack::gptqToGPUV4(src.data(), bits, k, n);
      std::vector<uint8_t> bytes(dst.size() * 4);
      std::memcpy(bytes.data(), dst.data(), bytes.size());
      if (auto err = writer.addOwned(newName, safetensors::DType::I32,
                                     newType.getShape(), std::move(bytes)))
        return user->emitError()
               << "wq-pack: " << llvm::toString(std::move(err));
      repacked[newName] = newType;
    }
    return WeightOp::create(b, weight.getLoc(), newType,
                            b.getStringAttr(newName))
        .getResult();
  }

  template <typename OpTy>
  LogicalResult packOp(OpTy op, int64_t k, int64_t n) {
    if (op.getPacking() != Packing::gptq)
      return success();
    unsigned bits = op.getScheme().getBits();
    if (std::string why = gpupack::checkGPUV4(bits, k, n); !why.empty()) {
      op.emitWarning() << "wq-pack: left in gptq: " << why;
      return success();
    }
    FailureOr<Value> codes = repack(op, op.getCodes(), bits, k, n);
    if (failed(codes))
      return failure();
    Value old = op.getCodes();
    op.getCodesMutable().set(*codes);
    op.setPacking(Packing::gpu_v4);
    if (old.use_empty())
      if (Operation *def = old.getDefiningOp())
        def->erase();
    return success();
  }

};

struct PackPass : public quant_mlir::wq::impl::WQPackBase<PackPass> {
  using WQPackBase::WQPackBase;

  void runOnOperation() override {
    Packer packer;
    packer.output = output;
    packer.baseDir = baseDir;
    if (layout != "gpu_v4") {
      getOperation().emitError() << "wq-pack: unknown layout '" << layout
                                 << "' (supported: gpu_v4)";
      return signalPassFailure();
    }
    SmallVector<Operation *> ops;
    getOperation().walk([&](Operation *op) {
      if (isa<QuantizedLinearOp, DequantizeOp>(op))
        ops.push_back(op);
    });
    for (Operation *op : ops) {
      LogicalResult result = success();
      if (auto ql = dyn_cast<QuantizedLinearOp>(op))
        result = packer.packOp(ql, ql.getInput().getType().getShape().back(),
                        ql.getScales().getType().getDimSize(1));
      else if (auto dq = dyn_cast<DequantizeOp>(op))
        result = packer.packOp(dq, dq.getType().getDimSize(1),
                        dq.getType().getDimSize(0));
      if (failed(result))
        return signalPassFailure();
    }
    if (!packer.archiveUsed)
      return;
    if (auto err = packer.writer.write(packer.resolve(output))) {
      getOperation().emitError()
          << "wq-pack: cannot write '" << packer.resolve(output)
          << "': " << llvm::toString(std::move(err));
      return signalPassFailure();
    }
    getOperation()->setAttr(WQDialect::kArchiveAttrName,
                            StringAttr::get(&getContext(), output));
  }
};
} // namespace
