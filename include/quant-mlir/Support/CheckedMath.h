//===- CheckedMath.h - overflow-checked size arithmetic ---------*- C++ -*-===//
// One place for the element-count and byte-size products every reader
// computes from untrusted dims (safetensors, .npy, ONNX tensors and shapes),
// so a corrupt file yields an error instead of signed overflow.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_SUPPORT_CHECKEDMATH_H
#define QUANT_MLIR_SUPPORT_CHECKEDMATH_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <optional>
#include <string>

namespace quant_mlir {

/// a * b and a + b, or std::nullopt when the result does not fit in int64.
std::optional<int64_t> checkedMul(int64_t a, int64_t b);
std::optional<int64_t> checkedAdd(int64_t a, int64_t b);

/// "[2, 3, 4]".
std::string formatDims(llvm::ArrayRef<int64_t> dims);

/// Product of `dims` (1 for none). Errors, prefixed by `what`, for a negative
/// dim ("negative dimension -3 in shape [2, -3]") or a product that exceeds
/// `limit` or int64 ("element count of shape [...] overflows").
llvm::Expected<int64_t>
checkedElementCount(llvm::ArrayRef<int64_t> dims, const llvm::Twine &what = "",
                    int64_t limit = INT64_MAX);

/// checkedElementCount(dims) * elementSize, with the same errors (and "byte
/// size of shape [...] overflows" when only the byte count does not fit).
llvm::Expected<uint64_t> checkedByteSize(llvm::ArrayRef<int64_t> dims,
                                         uint64_t elementSize,
                                         const llvm::Twine &what = "",
                                         int64_t limit = INT64_MAX);

} // namespace quant_mlir

#endif // QUANT_MLIR_SUPPORT_CHECKEDMATH_H
