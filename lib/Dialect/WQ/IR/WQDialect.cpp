//===- WQDialect.cpp - the wq dialect ---------------------------------------===//
// Dialect registration, attribute verifiers and module-attribute checks.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/Transforms/InliningUtils.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace quant_mlir::wq;

#include "quant-mlir/Dialect/WQ/IR/WQDialect.cpp.inc"
#include "quant-mlir/Dialect/WQ/IR/WQEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "quant-mlir/Dialect/WQ/IR/WQAttrs.cpp.inc"

namespace {
/// Every wq op is pure data flow over its operands: stage functions made by
/// wq-outline-blocks inline back into their caller.
struct WQInlinerInterface : public DialectInlinerInterface {
  using DialectInlinerInterface::DialectInlinerInterface;
  bool isLegalToInline(Operation *, Region *, bool, IRMapping &) const final {
    return true;
  }
};
} // namespace

void WQDialect::initialize() {
  addInterfaces<WQInlinerInterface>();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "quant-mlir/Dialect/WQ/IR/WQAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "quant-mlir/Dialect/WQ/IR/WQOps.cpp.inc"
      >();
}

LogicalResult WQDialect::verifyOperationAttribute(Operation *op,
                                                  NamedAttribute attr) {
  StringRef name = attr.getName().getValue();
  if (name == kCalibLayersAttrName) {
    auto names = dyn_cast<ArrayAttr>(attr.getValue());
    if (!isa<ModuleOp>(op) || !names ||
        !llvm::all_of(names, [](Attribute a) { return isa<StringAttr>(a); }))
      return op->emitError() << "'" << name
                             << "' must be an array of layer names on a "
                                "builtin.module";
    return success();
  }
  if (name == kBlocksAttrName) {
    auto refs = dyn_cast<ArrayAttr>(attr.getValue());
    if (!isa<ModuleOp>(op) || !refs || refs.size() < 3 ||
        !llvm::all_of(refs, [](Attribute a) { return isa<FlatSymbolRefAttr>(a); }))
      return op->emitError() << "'" << name
                             << "' must be an array of at least three function "
                                "symbols (prologue, blocks..., epilogue) on a "
                                "builtin.module";
    return success();
  }
  if (name != kArchiveAttrName && name != kStatsArchiveAttrName)
    return op->emitError() << "unknown wq dialect attribute '" << name << "'";
  if (!isa<ModuleOp>(op))
    return op->emitError() << "'" << name
                           << "' may only be attached to a builtin.module";
  auto path = dyn_cast<StringAttr>(attr.getValue());
  if (!path || path.getValue().empty())
    return op->emitError() << "'" << name
                           << "' must be a non-empty string naming a "
                              "safetensors file";
  return success();
}

LogicalResult WQDialect::verifyRegionArgAttribute(Operation *op,
                                                  unsigned regionIndex,
                                                  unsigned argIndex,
                                                  NamedAttribute attr) {
  if (attr.getName() != kWeightArgAttrName)
    return op->emitError() << "unknown wq dialect argument attribute '"
                           << attr.getName().getValue() << "'";
  auto name = dyn_cast<StringAttr>(attr.getValue());
  if (!name || name.getValue().empty())
    return op->emitError() << "argument #" << argIndex << " '"
                           << kWeightArgAttrName
                           << "' must be a non-empty archive tensor name";
  return success();
}

LogicalResult
SchemeAttr::verify(function_ref<InFlightDiagnostic()> emitError, unsigned bits,
                   int64_t groupSize, bool symmetric, bool actOrder) {
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
    return emitError() << "bits must be 2, 3, 4 or 8, got " << bits;
  if (groupSize != -1 && groupSize != 32 && groupSize != 64 &&
      groupSize != 128 && groupSize != 256)
    return emitError() << "group_size must be 32, 64, 128, 256 or -1 "
                          "(per-channel), got "
                       << groupSize;
  return success();
}

LogicalResult StatsAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                StringRef key, int64_t tokens, int64_t rows) {
  if (key.empty())
    return emitError() << "statistics key must not be empty";
  if (tokens <= 0)
    return emitError() << "statistics '" << key
                       << "' must count a positive number of tokens, got "
                       << tokens;
  if (rows < 0)
    return emitError() << "statistics '" << key
                       << "' has a negative number of sampled rows: " << rows;
  return success();
}

StringRef quant_mlir::wq::getArchivePath(Operation *op) {
  auto module = isa<ModuleOp>(op) ? cast<ModuleOp>(op)
                                  : op->getParentOfType<ModuleOp>();
  for (; module; module = module->getParentOfType<ModuleOp>())
    if (auto path =
            module->getAttrOfType<StringAttr>(WQDialect::kArchiveAttrName))
      return path.getValue();
  return {};
}
