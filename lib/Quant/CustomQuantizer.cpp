//===- CustomQuantizer.cpp - user-registered layer quantizers --------------===//
// A process-wide registry (quantizers are registered once, before the
// passes run, like pass registration) and the checks on what they return:
// a user's bug must become an error naming the layer, never a corrupt pack.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Quant/CustomQuantizer.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/Twine.h"

#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <string>

using namespace llvm;

namespace quant_mlir::quant {

namespace {
struct Registry {
  std::mutex mutex;
  // shared_ptr: a quantizer running while it is replaced stays alive.
  std::map<std::string, std::shared_ptr<CustomQuantizeFn>> fns;
};
Registry &registry() {
  static Registry r;
  return r;
}
Error error(const Twine &msg) {
  return createStringError(inconvertibleErrorCode(), msg);
}
} // namespace

Error registerCustomQuantizer(StringRef name, CustomQuantizeFn fn) {
  if (name.empty() || !llvm::all_of(name, [](char c) {
        return isAlnum(c) || c == '_' || c == '.' || c == '-';
      }))
    return error("quantizer name '" + name +
                 "' must be non-empty and hold only letters, digits, '_', "
                 "'.' and '-'");
  if (name == "none" || name == "rtn" || name == "gptq" || name == "awq" ||
      name == "custom")
    return error("'" + name + "' is a built-in method; choose another name");
  if (!fn)
    return error("quantizer '" + name + "' has no function");
  Registry &r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.fns[name.str()] = std::make_shared<CustomQuantizeFn>(std::move(fn));
  return Error::success();
}

bool unregisterCustomQuantizer(StringRef name) {
  Registry &r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return r.fns.erase(name.str()) > 0;
}

bool hasCustomQuantizer(StringRef name) {
  Registry &r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return r.fns.count(name.str()) > 0;
}

std::vector<std::string> customQuantizerNames() {
  Registry &r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<std::string> names;
  for (const auto &entry : r.fns)
    names.push_back(entry.first);
  return names;
}

Error checkQuantizedWeight(const QuantizedWeight &q, int64_t n, int64_t k,
                           const Scheme &scheme, StringRef what) {
  auto fail = [&](const Twine &msg) {
    return error("layer '" + what + "': " + msg);
  };
  if (q.n != n || q.k != k)
    return fail("the quantizer returned a [" + Twine(q.n) + ", " + Twine(q.k) +
                "] weight for a [" + Twine(n) + ", " + Twine(k) + "] layer");
  int64_t groups = scheme.numGroups(k);
  size_t nk = size_t(n) * size_t(k), gn = size_t(groups) * size_t(n);
  if (q.q.size() != nk)
    return fail("codes hold " + Twine(q.q.size()) + " values, expected N*K = " +
                Twine(nk));
  if (q.scales.size() != gn)
    return fail("scales hold " + Twine(q.scales.size()) +
                " values, expected N*groups = " + Twine(gn));
  if (q.zeros.size() != gn)
    return fail("zeros hold " + Twine(q.zeros.size()) +
                " values, expected N*groups = " + Twine(gn));
  int32_t maxq = scheme.maxCode();
  for (size_t i = 0; i < nk; ++i)
    if (q.q[i] > maxq)
      return fail("code " + Twine(int(q.q[i])) + " at flat index " + Twine(i) +
                  " is outside [0, " + Twine(maxq) + "] for " +
                  Twine(scheme.bits) + " bits");
  for (size_t i = 0; i < gn; ++i) {
    if (!std::isfinite(q.scales[i]) || q.scales[i] == 0.0f)
      return fail("scale " + Twine(i) + " is " +
                  std::to_string(q.scales[i]) +
                  "; scales must be finite and non-zero");
    int32_t z = q.zeros[i];
    if (scheme.symmetric && z != (maxq + 1) / 2)
      return fail("zero " + Twine(i) + " is " + Twine(z) +
                  ", but a symmetric scheme stores none: every zero must be " +
                  Twine((maxq + 1) / 2));
    if (z < 0 || z > maxq)
      return fail("zero " + Twine(i) + " is " + Twine(z) + ", outside [0, " +
                  Twine(maxq) + "]");
  }
  if (!scheme.actOrder) {
    if (!q.gIdx.empty())
      return fail("g_idx given, but the scheme has no act-order (desc_act)");
    return Error::success();
  }
  if (q.gIdx.size() != size_t(k))
    return fail("act-order needs g_idx of K = " + Twine(k) + " entries, got " +
                Twine(q.gIdx.size()));
  for (int64_t c = 0; c < k; ++c)
    if (q.gIdx[c] < 0 || q.gIdx[c] >= groups)
      return fail("g_idx[" + Twine(c) + "] = " + Twine(q.gIdx[c]) +
                  " is not a group in [0, " + Twine(groups) + ")");
  return Error::success();
}

Expected<QuantizedWeight> runCustomQuantizer(StringRef name,
                                             const CustomQuantizeInput &in) {
  std::shared_ptr<CustomQuantizeFn> fn;
  {
    Registry &r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    auto it = r.fns.find(name.str());
    if (it != r.fns.end())
      fn = it->second;
  }
  if (!fn)
    return error("layer '" + in.layer + "': no quantizer '" + name +
                 "' is registered");
  if (Error err = verifyScheme(in.scheme, in.n, in.k, in.layer))
    return std::move(err);
  Expected<QuantizedWeight> q = (*fn)(in);
  if (!q)
    return error("layer '" + in.layer + "': quantizer '" + name +
                 "' failed: " + toString(q.takeError()));
  q->scheme = in.scheme;
  if (Error err = checkQuantizedWeight(*q, in.n, in.k, in.scheme, in.layer))
    return error("quantizer '" + name + "': " + toString(std::move(err)));
  return q;
}

} // namespace quant_mlir::quant
