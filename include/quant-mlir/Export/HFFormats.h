//===- HFFormats.h - byte layouts of the Hugging Face quantized formats -*- C++ -*-===//
// The checkpoint tensors of one quantized linear layer in AutoGPTQ (v1 and
// v2), AutoAWQ GEMM and compressed-tensors pack-quantized, written from and
// read back into one unpacked form (codes, exact zeros, f16 scales, g_idx).
// Pure C++ (no MLIR): quant-export, quant-import --checkpoint and the tests
// share it. python/quant_mlir/hf_decode.py is the independent reader.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_EXPORT_HFFORMATS_H
#define QUANT_MLIR_EXPORT_HFFORMATS_H

#include "quant-mlir/Support/SafeTensors.h"

#include "llvm/ADT/STLFunctionalExtras.h"

#include <optional>
#include <string>
#include <vector>

namespace quant_mlir::hf {

enum class Format { GPTQ, GPTQv2, AWQ, CompressedTensors };

/// "gptq", "gptq_v2", "awq", "compressed-tensors".
std::optional<Format> parseFormat(llvm::StringRef name);
llvm::StringRef formatName(Format format);

/// One quantized linear layer, unpacked: w[n][k] = scales[g][n] * (codes[k][n]
/// - zeros[g][n]) with g = gIdx[k] (act-order) or k / groupSize.
struct QuantLayer {
  /// Hugging Face module path, e.g. model.layers.0.self_attn.q_proj.
  std::string name;
  int64_t n = 0, k = 0;
  unsigned bits = 4;
  int64_t groupSize = 128; // -1: one group over K
  bool symmetric = true;
  bool actOrder = false;
  std::vector<uint8_t> codes;   // [K][N], each < 2^bits
  std::vector<int32_t> zeros;   // [G][N], the zero itself; 2^(bits-1) if symmetric
  std::vector<uint16_t> scales; // [G][N], IEEE half bits
  std::vector<int32_t> gIdx;    // [K], empty unless actOrder
  std::vector<uint16_t> bias;   // [N] half bits, or empty

  int64_t numGroups() const { return groupSize == -1 ? 1 : k / groupSize; }
  int64_t groupOf(int64_t col) const {
    return gIdx.empty() ? (groupSize == -1 ? 0 : col / groupSize) : gIdx[col];
  }
};

/// An owned tensor to write.
struct OutTensor {
  std::string name;
  safetensors::DType dtype;
  llvm::SmallVector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

/// A tensor read from a checkpoint (views into a mapping).
struct TensorRef {
  safetensors::DType dtype;
  llvm::ArrayRef<int64_t> shape;
  llvm::ArrayRef<uint8_t> bytes;
};

/// Empty if `format` holds `layer` exactly, else why not (names the layer).
std::string checkFormat(Format format, const QuantLayer &layer);

/// The layer's checkpoint tensors (`<name>.qweight`, ...). checkFormat must
/// be empty.
std::vector<OutTensor> encodeLayer(Format format, const QuantLayer &layer);

/// The scheme a checkpoint's config states for one layer.
struct LayerConfig {
  unsigned bits = 4;
  int64_t groupSize = 128;
  bool symmetric = true;
  bool actOrder = false;
};

/// Looks a tensor up by its full name; nullptr if absent.
using TensorLookup = llvm::function_ref<const TensorRef *(llvm::StringRef)>;

/// Reads layer `name` ([n, k] in the graph) back from its checkpoint tensors.
/// Errors name the missing or malformed tensor.
llvm::Expected<QuantLayer> decodeLayer(Format format, const LayerConfig &config,
                                       llvm::StringRef name, int64_t n,
                                       int64_t k, TensorLookup lookup);

/// Which vLLM kernel would serve `layer` in `format`, and why (one line).
std::string vllmKernel(Format format, const QuantLayer &layer);

} // namespace quant_mlir::hf

#endif // QUANT_MLIR_EXPORT_HFFORMATS_H
