//===- StridedCopyToLinalg.cpp - vectorizable strided copies ---------------===//
// quant-strided-copy-to-linalg: memref.copy between memrefs that are not
// both contiguous becomes linalg.copy (then loops that LLVM vectorizes)
// instead of the runtime's element-at-a-time `memrefCopy`.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Conversion/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/MemRef/Utils/MemRefUtils.h"
#include "mlir/IR/Builders.h"

namespace quant_mlir {
#define GEN_PASS_DEF_QUANTSTRIDEDCOPYTOLINALG
#include "quant-mlir/Conversion/Passes.h.inc"
} // namespace quant_mlir

using namespace mlir;

namespace {
/// What finalize-memref-to-llvm copies with one memcpy: an identity layout
/// (dynamic shapes included) or a static shape that is contiguous.
bool memcpyable(Value v) {
  auto type = dyn_cast<MemRefType>(v.getType());
  return type && (type.getLayout().isIdentity() ||
                  memref::isStaticShapeAndContiguousRowMajor(type));
}

struct QuantStridedCopyToLinalgPass
    : public quant_mlir::impl::QuantStridedCopyToLinalgBase<
          QuantStridedCopyToLinalgPass> {
  void runOnOperation() override {
    SmallVector<memref::CopyOp> copies;
    getOperation().walk([&](memref::CopyOp copy) {
      Value src = copy.getSource(), dst = copy.getTarget();
      auto srcType = dyn_cast<MemRefType>(src.getType());
      if (!(memcpyable(src) && memcpyable(dst)) && srcType &&
          srcType.getRank() > 0 && isa<MemRefType>(dst.getType()))
        copies.push_back(copy);
    });
    for (memref::CopyOp copy : copies) {
      OpBuilder b(copy);
      linalg::CopyOp::create(b, copy.getLoc(), copy.getSource(),
                             copy.getTarget());
      copy.erase();
    }
  }
};
} // namespace
