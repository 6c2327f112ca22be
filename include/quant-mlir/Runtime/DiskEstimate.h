//===- DiskEstimate.h - the disk a quantization run will fill ---*- C++ -*-===//
// From the layer shapes alone (before anything is written): the bytes of
// the statistics shards, the calibration loop's GPTQ results, the spilled
// activations, the model archives and the --save-stats copy, so that a run
// that would fill the disk is refused before it starts instead of failing
// hours in.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_RUNTIME_DISKESTIMATE_H
#define QUANT_MLIR_RUNTIME_DISKESTIMATE_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <string>

namespace quant_mlir {

struct DiskLayer {
  std::string name;
  int64_t n = 0, k = 0; // weight [N, K]
  /// It reads the activations an earlier layer reads (k/v after q, up after
  /// gate): its Hessian is that layer's, stored once.
  bool sharesInput = false;
  /// GPTQ runs on it inside the calibration loop (its results are kept).
  bool quantizedInLoop = false;
  int64_t groupSize = 128; // -1: one group
  bool actOrder = false;
};

struct DiskPlan {
  int64_t samples = 0, seqLen = 0, sampleRows = 512;
  /// The residual stream's width (the activations between blocks).
  int64_t hidden = 0;
  bool f16Activations = false;
  /// The activations go to files: always with --resume, else when the two
  /// boundaries a stage holds exceed maxMemory.
  bool resumable = false;
  uint64_t maxMemory = 0;
  /// The imported archive's bytes; the quantized archive is written beside
  /// it before it replaces it, so both count.
  uint64_t modelBytes = 0;
  bool saveStats = false;
};

struct DiskEstimate {
  uint64_t statistics = 0, gptqResults = 0, activations = 0, model = 0,
           savedCopy = 0;
  uint64_t total() const {
    return statistics + gptqResults + activations + model + savedCopy;
  }
  /// The name of the largest part ("statistics", ...).
  llvm::StringRef largest() const;
  /// "statistics 1.65 GiB, GPTQ results ..., model ...": the non-empty parts.
  std::string describe() const;
};

/// Bytes as a person reads them: "812 B", "3.40 MiB", "1.65 GiB".
std::string formatBytes(uint64_t bytes);

/// What a block-streaming calibration and quantization of `layers` writes
/// at its peak: each layer's f64 Hessian (K * K * 8; once per shared
/// input), mean |x| (K * 4) and
/// sampled rows (min(samples * seqLen, sampleRows) * K * 4), with their
/// header entries; the GPTQ results of the layers quantized in the loop
/// (u8 codes, f32 scales, i32 zeros, g_idx); two stage boundaries of
/// activations when they are spilled; the model archives; and the merged
/// copy of the statistics when asked for.
DiskEstimate estimateDisk(llvm::ArrayRef<DiskLayer> layers,
                          const DiskPlan &plan);

} // namespace quant_mlir

#endif // QUANT_MLIR_RUNTIME_DISKESTIMATE_H
