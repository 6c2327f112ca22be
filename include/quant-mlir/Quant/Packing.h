//===- Packing.h - the gptq packed-code layout ------------------*- C++ -*-===//
// #wq.packing<gptq> (AutoGPTQ's layout, docs/design.md): codes are one
// little-endian bit stream per output column along K in int32 words,
// [K*bits/32][N]; zeros are the same stream along N, [G][N*bits/32]. 3-bit
// fields straddle word boundaries (32 codes per 3 words). Zeros are stored
// exactly (not AutoGPTQ v1's zero - 1). python/quant_mlir/packing.py is the
// numpy reference.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_QUANT_PACKING_H
#define QUANT_MLIR_QUANT_PACKING_H

#include "quant-mlir/Quant/Quantizer.h"

namespace quant_mlir::quant {

/// Number of int32 words a stream of `length` fields of `bits` bits takes,
/// ceil(length * bits / 32); the dialect requires length * bits % 32 == 0, in
/// which case the words hold exactly the stream (a partial last word is
/// zero-padded otherwise).
int64_t packedLength(int64_t length, unsigned bits);

/// Packs `values` ([rows][cols] row-major, each < 2^bits) into a bit stream
/// along `axis` (0: down the rows, one stream per column, result
/// [packedLength(rows)][cols]; 1: along each row, result
/// [rows][packedLength(cols)]). 1 <= bits <= 32.
std::vector<int32_t> packBitStream(llvm::ArrayRef<uint32_t> values,
                                   int64_t rows, int64_t cols, unsigned bits,
                                   int axis);
/// Inverse of packBitStream: `words` as packBitStream returns them for a
/// [rows][cols] array.
std::vector<uint32_t> unpackBitStream(llvm::ArrayRef<int32_t> words,
                                      int64_t rows, int64_t cols,
                                      unsigned bits, int axis);

/// qweight: codes [K*bits/32][N].
std::vector<int32_t> packCodesGPTQ(const QuantizedWeight &qw);
/// qzeros: zeros [G][N*bits/32].
std::vector<int32_t> packZerosGPTQ(const QuantizedWeight &qw);
/// Codes [K][N] from qweight.
std::vector<uint8_t> unpackCodesGPTQ(llvm::ArrayRef<int32_t> words, int64_t k,
                                     int64_t n, unsigned bits);
/// Zeros [G][N] from qzeros.
std::vector<int32_t> unpackZerosGPTQ(llvm::ArrayRef<int32_t> words,
                                     int64_t groups, int64_t n, unsigned bits);

/// #wq.packing<awq> (AutoAWQ's GEMM layout, 4-bit): `values` [rows][cols]
/// (cols % 8 == 0) into [rows][cols/8] words; column 8j + c sits in nibble
/// (c % 2) * 4 + c / 2 of word j (the order 0,2,4,6,1,3,5,7).
std::vector<int32_t> packAWQ(llvm::ArrayRef<uint32_t> values, int64_t rows,
                             int64_t cols);
/// qweight in awq packing: codes [K][N/8].
std::vector<int32_t> packCodesAWQ(const QuantizedWeight &qw);
/// qzeros in awq packing: zeros [G][N/8].
std::vector<int32_t> packZerosAWQ(const QuantizedWeight &qw);

} // namespace quant_mlir::quant

#endif // QUANT_MLIR_QUANT_PACKING_H
