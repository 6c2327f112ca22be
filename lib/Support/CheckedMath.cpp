//===- CheckedMath.cpp - overflow-checked size arithmetic ------------------===//

#include "quant-mlir/Support/CheckedMath.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/raw_ostream.h"

using namespace llvm;

namespace quant_mlir {

std::optional<int64_t> checkedMul(int64_t a, int64_t b) {
  int64_t r;
  if (MulOverflow(a, b, r))
    return std::nullopt;
  return r;
}

std::optional<int64_t> checkedAdd(int64_t a, int64_t b) {
  int64_t r;
  if (AddOverflow(a, b, r))
    return std::nullopt;
  return r;
}

std::string formatDims(ArrayRef<int64_t> dims) {
  std::string out = "[";
  raw_string_ostream os(out);
  interleaveComma(dims, os);
  os << "]";
  return out;
}

static Error fail(const Twine &what, const Twine &msg) {
  std::string prefix = what.str();
  return createStringError(inconvertibleErrorCode(),
                           (prefix.empty() ? "" : prefix + ": ") + msg);
}

Expected<int64_t> checkedElementCount(ArrayRef<int64_t> dims,
                                      const Twine &what, int64_t limit) {
  // Negative dims first: a later zero must not hide them.
  for (int64_t d : dims)
    if (d < 0)
      return fail(what, "negative dimension " + Twine(d) + " in shape " +
                            formatDims(dims));
  int64_t count = 1;
  for (int64_t d : dims) {
    std::optional<int64_t> next = checkedMul(count, d);
    if (!next || *next > limit)
      return fail(what, "element count of shape " + formatDims(dims) +
                            " overflows");
    count = *next;
  }
  return count;
}

Expected<uint64_t> checkedByteSize(ArrayRef<int64_t> dims, uint64_t elementSize,
                                   const Twine &what, int64_t limit) {
  Expected<int64_t> count = checkedElementCount(dims, what, limit);
  if (!count)
    return count.takeError();
  std::optional<int64_t> bytes =
      elementSize > uint64_t(INT64_MAX) ? std::nullopt
                                        : checkedMul(*count, int64_t(elementSize));
  if (!bytes)
    return fail(what, "byte size of shape " + formatDims(dims) + " overflows");
  return uint64_t(*bytes);
}

} // namespace quant_mlir
