//===- SchemeSelection.cpp - per-layer scheme from options ------------------===//

#include "quant-mlir/Dialect/WQ/Transforms/SchemeSelection.h"

using namespace mlir;
using namespace quant_mlir::wq;

FailureOr<std::unique_ptr<SchemeSelector>>
SchemeSelector::create(const Options &options,
                       function_ref<InFlightDiagnostic()> emitError) {
  std::unique_ptr<SchemeSelector> owner(new SchemeSelector());
  SchemeSelector &s = *owner;
  s.options = options;
  SmallVector<std::string> skipGlobs = options.skip.value_or(defaultSkip());
  s.patterns.assign(skipGlobs.begin(), skipGlobs.end());
  for (const auto &o : options.overrides)
    s.patterns.push_back(StringRef(o).split(':').first.str());
  for (size_t i = 0; i < skipGlobs.size(); ++i) {
    const std::string &text = s.patterns[i];
    auto glob = llvm::GlobPattern::create(text);
    if (!glob) {
      emitError() << "bad skip glob '" << text
                  << "': " << llvm::toString(glob.takeError());
      return failure();
    }
    s.skips.push_back(std::move(*glob));
  }
  for (auto [i, text] : llvm::enumerate(options.overrides)) {
    SmallVector<StringRef> parts;
    StringRef(text).split(parts, ':');
    auto glob =
        llvm::GlobPattern::create(s.patterns[skipGlobs.size() + i]);
    if (!glob) {
      emitError() << "bad glob in override '" << text
                  << "': " << llvm::toString(glob.takeError());
      return failure();
    }
    if (parts.size() < 2) {
      emitError() << "override '" << text
                  << "' sets nothing; expected GLOB:key=value";
      return failure();
    }
    Override o{std::move(*glob), {}};
    for (StringRef part : llvm::drop_begin(parts)) {
      auto [key, value] = part.split('=');
      if (key != "bits" && key != "group-size" && key != "zero-point" &&
          key != "act-order" && key != "skip") {
        emitError() << "unknown key '" << key << "' in override '" << text
                    << "' (expected bits, group-size, zero-point, act-order "
                       "or skip)";
        return failure();
      }
      if (key != "skip" && value.empty()) {
        emitError() << "override '" << text << "' gives no value for '"
                    << key << "'";
        return failure();
      }
      o.settings.emplace_back(key.str(), value.str());
    }
    s.parsed.push_back(std::move(o));
  }
  return owner;
}

FailureOr<SchemeAttr> SchemeSelector::select(LinearOp op) const {
  StringRef name = op.getName().value_or("");
  auto emitLayerError = [&] {
    return op.emitError() << "layer '" << name << "': ";
  };
  int64_t bits = options.bits, groupSize = options.groupSize;
  bool zeroPoint = options.zeroPoint, actOrder = options.actOrder;
  bool skip = llvm::any_of(skips, [&](auto &g) { return g.match(name); });
  for (const Override &o : parsed) {
    if (!o.glob.match(name))
      continue;
    for (const auto &[key, value] : o.settings) {
      int64_t v = 1;
      if (!value.empty() && StringRef(value).getAsInteger(10, v)) {
        emitLayerError() << "override value '" << value << "' for '" << key
                         << "' is not an integer";
        return failure();
      }
      if (key == "bits")
        bits = v;
      else if (key == "group-size")
        groupSize = v;
      else if (key == "zero-point")
        zeroPoint = v != 0;
      else if (key == "act-order")
        actOrder = v != 0;
      else
        skip = v != 0;
    }
  }
  if (skip)
    return SchemeAttr();
  if (bits < 0 || bits > 32) {
    emitLayerError() << "bits must be 2, 3, 4 or 8, got " << bits;
    return failure();
  }
  auto scheme = SchemeAttr::getChecked(emitLayerError, op.getContext(),
                                       static_cast<unsigned>(bits), groupSize,
                                       !zeroPoint, actOrder);
  if (!scheme)
    return failure();
  return scheme;
}
