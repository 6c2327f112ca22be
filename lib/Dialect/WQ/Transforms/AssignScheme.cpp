//===- AssignScheme.cpp - wq-assign-scheme ----------------------------------===//
// Picks each linear layer's scheme from defaults, skip globs and overrides.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h"

#include "llvm/Support/GlobPattern.h"

namespace quant_mlir::wq {
#define GEN_PASS_DEF_WQASSIGNSCHEME
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h.inc"
} // namespace quant_mlir::wq

using namespace mlir;
using namespace quant_mlir::wq;

namespace {
/// The scheme fields a layer ends up with; `skip` leaves it in float.
struct Choice {
  int64_t bits, groupSize;
  bool zeroPoint, actOrder, skip = false;
};

/// One `GLOB:key=value[:key=value]` entry of the overrides option.
struct Override {
  llvm::GlobPattern glob;
  SmallVector<std::pair<std::string, std::string>> settings;
};

LogicalResult parseOverride(StringRef text, Override &out,
                            function_ref<InFlightDiagnostic()> emitError) {
  SmallVector<StringRef> parts;
  text.split(parts, ':');
  auto glob = llvm::GlobPattern::create(parts.front());
  if (!glob) {
    std::string msg = llvm::toString(glob.takeError());
    return emitError() << "bad glob in override '" << text << "': " << msg;
  }
  if (parts.size() < 2)
    return emitError() << "override '" << text
                       << "' sets nothing; expected GLOB:key=value";
  out.glob = std::move(*glob);
  for (StringRef part : llvm::drop_begin(parts)) {
    auto [key, value] = part.split('=');
    if (key != "bits" && key != "group-size" && key != "zero-point" &&
        key != "act-order" && key != "skip")
      return emitError() << "unknown key '" << key << "' in override '"
                         << text
                         << "' (expected bits, group-size, zero-point, "
                            "act-order or skip)";
    if (key != "skip" && value.empty())
      return emitError() << "override '" << text << "' gives no value for '"
                         << key << "'";
    out.settings.emplace_back(key.str(), value.str());
  }
  return success();
}

LogicalResult apply(const Override &o, Choice &c,
                    function_ref<InFlightDiagnostic()> emitError) {
  for (const auto &[key, value] : o.settings) {
    int64_t v = 1;
    if (!value.empty() && StringRef(value).getAsInteger(10, v))
      return emitError() << "override value '" << value << "' for '" << key
                         << "' is not an integer";
    if (key == "bits")
      c.bits = v;
    else if (key == "group-size")
      c.groupSize = v;
    else if (key == "zero-point")
      c.zeroPoint = v != 0;
    else if (key == "act-order")
      c.actOrder = v != 0;
    else
      c.skip = v != 0;
  }
  return success();
}

struct AssignSchemePass
    : public quant_mlir::wq::impl::WQAssignSchemeBase<AssignSchemePass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto emitModuleError = [&] { return module.emitError(); };

    SmallVector<std::string> skipGlobs(skip.begin(), skip.end());
    if (!skip.hasValue())
      skipGlobs = {"lm_head", "*embed*"};
    SmallVector<llvm::GlobPattern> skips;
    for (const std::string &text : skipGlobs) {
      auto glob = llvm::GlobPattern::create(text);
      if (!glob) {
        module.emitError() << "bad skip glob '" << text
                           << "': " << llvm::toString(glob.takeError());
        return signalPassFailure();
      }
      skips.push_back(std::move(*glob));
    }
    SmallVector<Override> parsed(overrides.size());
    for (auto [text, o] : llvm::zip(overrides, parsed))
      if (failed(parseOverride(text, o, emitModuleError)))
        return signalPassFailure();

    WalkResult result = module.walk([&](LinearOp op) {
      StringRef name = op.getName().value_or("");
      Choice c{bits, groupSize, zeroPoint, actOrder};
      c.skip = llvm::any_of(skips, [&](auto &g) { return g.match(name); });
      auto emitLayerError = [&] {
        return op.emitError() << "layer '" << name << "': ";
      };
      for (const Override &o : parsed)
        if (o.glob.match(name) && failed(apply(o, c, emitLayerError)))
          return WalkResult::interrupt();
      if (c.skip) {
        op.removeSchemeAttr();
        return WalkResult::advance();
      }
      if (c.bits < 0 || c.bits > 32) {
        emitLayerError() << "bits must be 2, 3, 4 or 8, got " << c.bits;
        return WalkResult::interrupt();
      }
      auto scheme = SchemeAttr::getChecked(
          emitLayerError, op.getContext(), static_cast<unsigned>(c.bits),
          c.groupSize, !c.zeroPoint, c.actOrder);
      if (!scheme)
        return WalkResult::interrupt();
      op.setSchemeAttr(scheme);
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }
};
} // namespace
