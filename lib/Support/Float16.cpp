//===- Float16.cpp - f32 <-> f16 / bf16 bit conversions -------------------===//
// Software conversions so results do not depend on the host's F16C/AVX512-BF16
// support or on compiler flags; every tool must round the same way.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Support/SafeTensors.h"

#include "llvm/ADT/bit.h"

namespace quant_mlir::safetensors {

// Drops the low `shift` bits of `value`, rounding to nearest with ties to even.
// A carry out of the mantissa correctly bumps the exponent field above it.
static uint32_t shiftRoundEven(uint32_t value, unsigned shift) {
  uint32_t kept = value >> shift;
  uint32_t rest = value & ((1u << shift) - 1);
  uint32_t half = 1u << (shift - 1);
  if (rest > half || (rest == half && (kept & 1)))
    ++kept;
  return kept;
}

uint16_t floatToHalf(float value) {
  uint32_t x = llvm::bit_cast<uint32_t>(value);
  uint16_t sign = (x >> 16) & 0x8000;
  uint32_t abs = x & 0x7fffffff;
  if (abs > 0x7f800000) {
    // Keep the top payload bits; if they are all zero the result would be
    // infinity, so set the quiet bit to stay a NaN.
    uint16_t payload = (abs >> 13) & 0x3ff;
    return sign | 0x7c00 | (payload ? payload : 0x200);
  }
  // 65520 is the midpoint between 65504 (odd mantissa) and 2^16: ties go up.
  if (abs >= 0x477ff000)
    return sign | 0x7c00;
  if (abs >= 0x38800000) { // normal in f16: exponent >= -14
    uint32_t rebiased = abs - ((127 - 15) << 23);
    return sign | shiftRoundEven(rebiased, 13);
  }
  // 2^-25 is the midpoint between 0 and the smallest subnormal: ties to 0.
  if (abs <= 0x33000000)
    return sign;
  // Subnormal: value = mantissa * 2^(e - 150), counted in units of 2^-24.
  uint32_t mantissa = (abs & 0x7fffff) | 0x800000;
  unsigned shift = 126 - (abs >> 23);
  return sign | shiftRoundEven(mantissa, shift);
}

float halfToFloat(uint16_t bits) {
  uint32_t sign = uint32_t(bits & 0x8000) << 16;
  uint32_t exponent = (bits >> 10) & 0x1f;
  uint32_t mantissa = bits & 0x3ff;
  if (exponent == 0x1f)
    return llvm::bit_cast<float>(sign | 0x7f800000 | (mantissa << 13));
  if (exponent != 0)
    return llvm::bit_cast<float>(sign | ((exponent + 127 - 15) << 23) |
                                 (mantissa << 13));
  // Subnormal (or zero): exact in f32 as mantissa * 2^-24.
  float magnitude = float(mantissa) * 0x1p-24f;
  return llvm::bit_cast<float>(sign | llvm::bit_cast<uint32_t>(magnitude));
}

uint16_t floatToBF16(float value) {
  uint32_t x = llvm::bit_cast<uint32_t>(value);
  if ((x & 0x7fffffff) > 0x7f800000) {
    uint16_t top = x >> 16;
    return (top & 0x7f) ? top : (top | 0x40);
  }
  // Rounding may carry into the exponent, which also overflows to infinity.
  return (x + 0x7fff + ((x >> 16) & 1)) >> 16;
}

float bf16ToFloat(uint16_t bits) {
  return llvm::bit_cast<float>(uint32_t(bits) << 16);
}

} // namespace quant_mlir::safetensors
