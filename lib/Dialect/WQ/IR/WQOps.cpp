//===- WQOps.cpp - wq operations --------------------------------------------===//
// Verifiers: every shape and dtype rule of a packed weight lives here once.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace quant_mlir::wq;

#define GET_OP_CLASSES
#include "quant-mlir/Dialect/WQ/IR/WQOps.cpp.inc"

namespace {
/// Renders a shape as `[a, b, ?]` for diagnostics.
std::string shapeStr(ArrayRef<int64_t> shape) {
  std::string s = "[";
  llvm::raw_string_ostream os(s);
  llvm::interleave(
      shape, os,
      [&](int64_t d) {
        if (ShapedType::isDynamic(d))
          os << "?";
        else
          os << d;
      },
      ", ");
  return s + "]";
}

bool dimsMatch(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

/// Emits through `emitError` with the layer's name in front when it has one.
InFlightDiagnostic layerError(Operation *op, StringAttr name) {
  InFlightDiagnostic diag = op->emitOpError();
  if (name)
    diag << "(layer '" << name.getValue() << "') ";
  return diag;
}

LogicalResult checkShape(function_ref<InFlightDiagnostic()> emitError,
                         StringRef what, RankedTensorType type,
                         ArrayRef<int64_t> expected) {
  if (type.getShape() == expected)
    return success();
  return emitError() << what << " must have shape " << shapeStr(expected)
                     << ", got " << shapeStr(type.getShape());
}

LogicalResult checkStatsArchive(Operation *op, StringAttr name,
                                std::optional<StatsAttr> stats) {
  if (!stats)
    return success();
  for (auto module = op->getParentOfType<ModuleOp>(); module;
       module = module->getParentOfType<ModuleOp>())
    if (module->hasAttr(WQDialect::kStatsArchiveAttrName))
      return success();
  return layerError(op, name)
         << "has statistics but no enclosing module names a '"
         << WQDialect::kStatsArchiveAttrName << "'";
}
} // namespace

//===----------------------------------------------------------------------===//
// WeightOp
//===----------------------------------------------------------------------===//

LogicalResult WeightOp::verify() {
  if (getName().empty())
    return emitOpError("weight name must not be empty");
  if (!getType().hasStaticShape())
    return emitOpError() << "weight '" << getName()
                         << "' must have a static shape";
  if (getArchivePath(*this).empty())
    return emitOpError() << "weight '" << getName()
                         << "' needs a '" << WQDialect::kArchiveAttrName
                         << "' attribute on an enclosing module";
  return success();
}

//===----------------------------------------------------------------------===//
// LinearOp
//===----------------------------------------------------------------------===//

/// Checks result = input[..., :-1] + [N] and bias = [N]; shared by the float
/// and quantized linear ops.
static LogicalResult verifyLinearShapes(Operation *op, StringAttr name,
                                        RankedTensorType input, int64_t k,
                                        int64_t n, Value bias,
                                        RankedTensorType result) {
  if (input.getRank() < 1)
    return layerError(op, name) << "input must have rank >= 1";
  if (!dimsMatch(input.getShape().back(), k))
    return layerError(op, name)
           << "input has " << input.getShape().back()
           << " features but the weight expects K = " << k;
  if (input.getElementType() != result.getElementType())
    return layerError(op, name)
           << "input and result element types differ: "
           << input.getElementType() << " vs " << result.getElementType();
  SmallVector<int64_t> expected(input.getShape().drop_back());
  expected.push_back(n);
  if (result.getRank() != input.getRank() ||
      !llvm::all_of(llvm::zip(expected, result.getShape()), [](auto p) {
        return dimsMatch(std::get<0>(p), std::get<1>(p));
      }))
    return layerError(op, name)
           << "result must have shape " << shapeStr(expected) << ", got "
           << shapeStr(result.getShape());
  if (bias) {
    auto biasType = cast<RankedTensorType>(bias.getType());
    if (biasType.getRank() != 1 || !dimsMatch(biasType.getDimSize(0), n))
      return layerError(op, name)
             << "bias must have shape [" << n << "], got "
             << shapeStr(biasType.getShape());
  }
  return success();
}

LogicalResult LinearOp::verify() {
  RankedTensorType weight = getWeight().getType();
  if (weight.getRank() != 2)
    return layerError(*this, getNameAttr())
           << "weight must be [N, K] (rank 2), got rank " << weight.getRank();
  if (failed(verifyLinearShapes(*this, getNameAttr(), getInput().getType(),
                                weight.getDimSize(1), weight.getDimSize(0),
                                getBias(), getType())))
    return failure();
  return checkStatsArchive(*this, getNameAttr(), getStats());
}

//===----------------------------------------------------------------------===//
// Packed weights
//===----------------------------------------------------------------------===//

LogicalResult quant_mlir::wq::verifyPackedWeight(
    function_ref<InFlightDiagnostic()> emitError, SchemeAttr scheme,
    Packing packing, int64_t k, int64_t n, RankedTensorType codes,
    RankedTensorType scales, RankedTensorType zeros, RankedTensorType gIdx) {
  if (ShapedType::isDynamic(k) || ShapedType::isDynamic(n))
    return emitError() << "K and N of a packed weight must be static";
  unsigned bits = scheme.getBits();
  if (!scheme.isPerChannel() && k % scheme.getGroupSize() != 0)
    return emitError() << "K = " << k << " is not divisible by group_size = "
                       << scheme.getGroupSize();
  int64_t groups = scheme.getNumGroups(k);

  if (packing == Packing::awq) {
    if (bits != 4)
      return emitError() << "awq packing holds 4-bit codes only, got "
                         << bits << " bits";
    if (scheme.getActOrder())
      return emitError() << "awq packing does not support act_order";
  }
  // gpu_v4 regroups gptq's K stream into 128-bit chunks.
  if (packing == Packing::gpu_v4 && (k * bits) % 128 != 0)
    return emitError() << "K = " << k << " times bits = " << bits
                       << " must be a multiple of 128 for gpu_v4 packing";
  // gptq packs codes along K, awq along N; zeros are packed along N in both.
  if (packing == Packing::gptq && (k * bits) % 32 != 0)
    return emitError() << "K = " << k << " times bits = " << bits
                       << " must be a multiple of 32 for gptq packing";
  if ((packing == Packing::awq || zeros) && (n * bits) % 32 != 0)
    return emitError() << "N = " << n << " times bits = " << bits
                       << " must be a multiple of 32 to pack along N";
  SmallVector<int64_t> codesShape =
      packing == Packing::gptq ? SmallVector<int64_t>{k * bits / 32, n}
                               : SmallVector<int64_t>{k, n * bits / 32};
  if (packing == Packing::gpu_v4)
    codesShape = {k * bits / 128, 4 * n};
  if (failed(checkShape(emitError, "codes", codes, codesShape)) ||
      failed(checkShape(emitError, "scales", scales, {groups, n})))
    return failure();

  if (scheme.getSymmetric() && zeros)
    return emitError() << "a symmetric scheme has no zeros (zero = "
                       << (1 << (bits - 1)) << ")";
  if (!scheme.getSymmetric() && !zeros)
    return emitError() << "a zero-point scheme needs zeros";
  if (zeros && failed(checkShape(emitError, "zeros", zeros,
                                 {groups, n * bits / 32})))
    return failure();

  if (scheme.getActOrder() && !gIdx)
    return emitError() << "an act_order scheme needs g_idx";
  if (!scheme.getActOrder() && gIdx)
    return emitError() << "g_idx is only allowed with act_order";
  if (gIdx && failed(checkShape(emitError, "g_idx", gIdx, {k})))
    return failure();
  return success();
}

static RankedTensorType optionalType(Value v) {
  return v ? cast<RankedTensorType>(v.getType()) : RankedTensorType();
}

LogicalResult DequantizeOp::verify() {
  RankedTensorType result = getType();
  if (result.getRank() != 2)
    return emitOpError() << "result must be [N, K] (rank 2), got rank "
                         << result.getRank();
  if (result.getElementType() != getScales().getType().getElementType())
    return emitOpError() << "result element type " << result.getElementType()
                         << " must match the scales' "
                         << getScales().getType().getElementType();
  return verifyPackedWeight([&] { return emitOpError(); }, getScheme(),
                            getPacking(), result.getDimSize(1),
                            result.getDimSize(0), getCodes().getType(),
                            getScales().getType(), optionalType(getZeros()),
                            optionalType(getGIdx()));
}

LogicalResult QuantizedLinearOp::verify() {
  RankedTensorType input = getInput().getType();
  if (input.getRank() < 1)
    return layerError(*this, getNameAttr()) << "input must have rank >= 1";
  int64_t k = input.getShape().back();
  RankedTensorType scales = getScales().getType();
  if (scales.getRank() != 2)
    return layerError(*this, getNameAttr())
           << "scales must be [groups, N] (rank 2), got rank "
           << scales.getRank();
  int64_t n = scales.getDimSize(1);
  if (failed(verifyPackedWeight(
          [&] { return layerError(*this, getNameAttr()); }, getScheme(),
          getPacking(), k, n, getCodes().getType(), scales,
          optionalType(getZeros()), optionalType(getGIdx()))))
    return failure();
  return verifyLinearShapes(*this, getNameAttr(), input, k, n, getBias(),
                            getType());
}
