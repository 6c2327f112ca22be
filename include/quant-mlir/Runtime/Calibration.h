//===- Calibration.h - per-layer activation statistics -----------*- C++ -*-===//
// Accumulates, for every instrumented linear layer, the statistics all
// quantization methods share: H = 2/n sum x x^T (float64), mean |x| per input
// channel, and a seeded reservoir sample of input rows.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_RUNTIME_CALIBRATION_H
#define QUANT_MLIR_RUNTIME_CALIBRATION_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace quant_mlir {
class CPUModule;

class CalibrationRecorder {
public:
  /// `layers` are the names in the module's `wq.calib_layers` order;
  /// `sampleRows` rows per layer are kept (reservoir sampling, seeded).
  CalibrationRecorder(llvm::ArrayRef<std::string> layers, int64_t sampleRows,
                      uint64_t seed);

  /// Records only these layers from now on (hook calls for the others are
  /// ignored); setAllActive() undoes it.
  void setActive(llvm::ArrayRef<int64_t> layers);
  void setAllActive() { active.clear(); }
  /// The index of `name`, or -1.
  int64_t indexOf(llvm::StringRef name) const;

  /// Adds `m` rows of `k` features (row-major with `rowStride`).
  llvm::Error record(int64_t layer, const float *rows, int64_t m, int64_t k,
                     int64_t rowStride);

  /// Routes the module's `wq_calib_record` hook to this recorder while it is
  /// alive (one recorder at a time).
  llvm::Error attach(CPUModule &module);
  ~CalibrationRecorder();

  /// Writes `<layer>.hessian` (F64 [K, K]), `<layer>.absmean` (F32 [K]) and
  /// `<layer>.inputs` (F32 [rows, K]) for every layer that saw data, plus
  /// `metadata`, atomically. Layers that saw no rows are an error.
  llvm::Error write(llvm::StringRef path,
                    const std::map<std::string, std::string> &metadata) const;

  /// H of `layer` (as hessian()), computed once in place of the running
  /// sums, which are not updated any more: recording stops for the layer.
  llvm::ArrayRef<double> finalHessian(int64_t layer);
  /// Writes the statistics of `layers` like write() (plus the metadata
  /// "tokens.<layer>" per layer, and the tensors addTensor() added since the
  /// last commit) and frees their buffers: the block by block flow holds one
  /// block's statistics at a time.
  llvm::Error commitLayers(llvm::StringRef path, llvm::ArrayRef<int64_t> layers,
                           const std::map<std::string, std::string> &metadata);

  int64_t numTokens(int64_t layer) const { return stats[layer].n; }
  int64_t numSampledRows(int64_t layer) const {
    return std::min<int64_t>(stats[layer].seen, sampleRows);
  }
  /// H = 2/n sum x x^T, full symmetric [K, K].
  std::vector<double> hessian(int64_t layer) const;
  /// Mean |x| per input channel, as write() stores it (`<layer>.absmean`).
  std::vector<float> absMean(int64_t layer) const;
  /// A further F64 [N] tensor (AWQ's module losses) for write(), or for the
  /// next commitLayers(), which writes and drops every one added so far.
  void addTensor(const std::string &name, std::vector<double> values) {
    extra[name] = std::move(values);
  }
  llvm::ArrayRef<std::string> layerNames() const { return names; }

private:
  struct LayerStats {
    int64_t k = -1, n = 0, seen = 0;
    std::vector<double> xtx;     // upper triangle of sum x x^T
    std::vector<double> absSum;  // sum |x| per channel
    std::vector<float> samples;  // [sampleRows, K]
    std::mt19937_64 rng;
    bool final = false; // xtx holds H (finalHessian())
  };
  std::vector<std::string> names;
  std::vector<LayerStats> stats;
  int64_t sampleRows;
  std::vector<double> scratch;
  std::vector<bool> active; // empty: all
  std::map<std::string, std::vector<double>> extra;
};

} // namespace quant_mlir


namespace quant_mlir {
struct FunctionSignature;

struct CalibrateOptions {
  int64_t samples = 128, seqLen = 512, sampleRows = 512;
  uint64_t seed = 0;
  std::string statsArchive = "stats.safetensors";
  std::string dataName;  // recorded in the archive's metadata
  std::string func;      // entry; empty: the only public function
  bool quiet = false;
};

struct CalibrateResult {
  int64_t layers = 0, samples = 0;
  double seconds = 0;
  std::string statsPath;
};

/// Calibrates `module` (whose archive is relative to `modelDir`) on seeded
/// windows of `tokens`: runs an instrumented, JIT-compiled copy, writes
/// `modelDir/<statsArchive>` atomically, then annotates `module` in place
/// with `#wq.stats` on every layer and `wq.stats_archive` on the module.
/// The caller writes the module out.
llvm::Expected<CalibrateResult> calibrateModel(mlir::ModuleOp module,
                                               llvm::StringRef modelDir,
                                               llvm::ArrayRef<int64_t> tokens,
                                               const CalibrateOptions &options);

} // namespace quant_mlir

#endif // QUANT_MLIR_RUNTIME_CALIBRATION_H
