//===- Packing.cpp - the gptq packed-code layout --------------------------===//

#include "quant-mlir/Quant/Packing.h"

#include <cassert>

using namespace llvm;

namespace quant_mlir::quant {

int64_t packedLength(int64_t length, unsigned bits) {
  return (length * int64_t(bits) + 31) / 32;
}

// Field i of a stream occupies bits [i*bits, (i+1)*bits) of the little-endian
// concatenation of the words; word w holds stream bits [32w, 32w + 32).
std::vector<int32_t> packBitStream(ArrayRef<uint32_t> values, int64_t rows,
                                   int64_t cols, unsigned bits, int axis) {
  assert(bits >= 1 && bits <= 32 && (axis == 0 || axis == 1));
  assert(int64_t(values.size()) == rows * cols);
  int64_t length = axis == 0 ? rows : cols;
  int64_t streams = axis == 0 ? cols : rows;
  int64_t words = packedLength(length, bits);
  std::vector<uint32_t> out(size_t(words * streams), 0);
  // Word w of stream s lives at [w][s] (axis 0) or [s][w] (axis 1).
  auto at = [&](int64_t w, int64_t s) -> uint32_t & {
    return axis == 0 ? out[size_t(w * streams + s)]
                     : out[size_t(s * words + w)];
  };
  uint64_t mask = bits == 32 ? 0xFFFFFFFFull : ((uint64_t(1) << bits) - 1);
  for (int64_t s = 0; s < streams; ++s) {
    for (int64_t i = 0; i < length; ++i) {
      uint64_t v = axis == 0 ? values[size_t(i * cols + s)]
                             : values[size_t(s * cols + i)];
      assert((v & ~mask) == 0 && "value does not fit in bits");
      v &= mask;
      int64_t pos = i * int64_t(bits);
      int64_t w = pos / 32;
      unsigned off = unsigned(pos % 32);
      uint64_t shifted = v << off; // at most 63 bits
      at(w, s) |= uint32_t(shifted);
      if (off + bits > 32)
        at(w + 1, s) |= uint32_t(shifted >> 32);
    }
  }
  return std::vector<int32_t>(out.begin(), out.end());
}

std::vector<uint32_t> unpackBitStream(ArrayRef<int32_t> words, int64_t rows,
                                      int64_t cols, unsigned bits, int axis) {
  assert(bits >= 1 && bits <= 32 && (axis == 0 || axis == 1));
  int64_t length = axis == 0 ? rows : cols;
  int64_t streams = axis == 0 ? cols : rows;
  int64_t nwords = packedLength(length, bits);
  assert(int64_t(words.size()) == nwords * streams);
  auto at = [&](int64_t w, int64_t s) -> uint64_t {
    return uint32_t(axis == 0 ? words[size_t(w * streams + s)]
                              : words[size_t(s * nwords + w)]);
  };
  uint64_t mask = bits == 32 ? 0xFFFFFFFFull : ((uint64_t(1) << bits) - 1);
  std::vector<uint32_t> out(size_t(rows * cols));
  for (int64_t s = 0; s < streams; ++s) {
    for (int64_t i = 0; i < length; ++i) {
      int64_t pos = i * int64_t(bits);
      int64_t w = pos / 32;
      unsigned off = unsigned(pos % 32);
      uint64_t v = at(w, s) >> off;
      if (off + bits > 32)
        v |= at(w + 1, s) << (32 - off);
      (axis == 0 ? out[size_t(i * cols + s)] : out[size_t(s * cols + i)]) =
          uint32_t(v & mask);
    }
  }
  return out;
}

std::vector<int32_t> packCodesGPTQ(const QuantizedWeight &qw) {
  std::vector<uint32_t> values(qw.q.begin(), qw.q.end());
  return packBitStream(values, qw.k, qw.n, qw.scheme.bits, /*axis=*/0);
}

std::vector<int32_t> packZerosGPTQ(const QuantizedWeight &qw) {
  std::vector<uint32_t> values(qw.zeros.begin(), qw.zeros.end());
  return packBitStream(values, qw.numGroups(), qw.n, qw.scheme.bits,
                       /*axis=*/1);
}

std::vector<uint8_t> unpackCodesGPTQ(ArrayRef<int32_t> words, int64_t k,
                                     int64_t n, unsigned bits) {
  std::vector<uint32_t> v = unpackBitStream(words, k, n, bits, /*axis=*/0);
  return std::vector<uint8_t>(v.begin(), v.end());
}

std::vector<int32_t> unpackZerosGPTQ(ArrayRef<int32_t> words, int64_t groups,
                                     int64_t n, unsigned bits) {
  std::vector<uint32_t> v =
      unpackBitStream(words, groups, n, bits, /*axis=*/1);
  return std::vector<int32_t>(v.begin(), v.end());
}

std::vector<int32_t> packAWQ(ArrayRef<uint32_t> values, int64_t rows,
                             int64_t cols) {
  assert(cols % 8 == 0 && int64_t(values.size()) == rows * cols);
  std::vector<int32_t> out(size_t(rows * (cols / 8)));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      unsigned nibble = unsigned(c % 8 % 2) * 4 + unsigned(c % 8 / 2);
      uint32_t &word =
          reinterpret_cast<uint32_t &>(out[size_t(r * (cols / 8) + c / 8)]);
      word |= (values[size_t(r * cols + c)] & 15u) << (4 * nibble);
    }
  return out;
}

std::vector<int32_t> packCodesAWQ(const QuantizedWeight &qw) {
  std::vector<uint32_t> values(qw.q.begin(), qw.q.end());
  return packAWQ(values, qw.k, qw.n);
}

std::vector<int32_t> packZerosAWQ(const QuantizedWeight &qw) {
  std::vector<uint32_t> values(qw.zeros.begin(), qw.zeros.end());
  return packAWQ(values, qw.numGroups(), qw.n);
}

} // namespace quant_mlir::quant
