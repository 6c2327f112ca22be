//===- Compile.h - typed driver API: ONNX model to quantized directory -*- C++ -*-===//
// What quant-compile (and the Python package) call: import, calibrate,
// quantize with RTN / GPTQ / AWQ, optionally emit GPU kernels and a Hugging
// Face checkpoint, written atomically into one output directory. Options are
// plain structs; the passes are built from their generated option structs,
// not from option text.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_DRIVER_COMPILE_H
#define QUANT_MLIR_DRIVER_COMPILE_H

#include "quant-mlir/Export/HFFormats.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mlir {
class ModuleOp;
class MLIRContext;
class Pass;
} // namespace mlir

namespace quant_mlir::driver {

/// Custom: the quantizer registered under QuantizeOptions::custom
/// (quant::registerCustomQuantizer), run by wq-rtn custom=NAME.
enum class Method { None, RTN, GPTQ, AWQ, AWQGPTQ, Custom };

/// "none", "rtn", "gptq", "awq", "awq+gptq" ("custom" is not parsed: a
/// custom method is named by its registered name).
std::optional<Method> parseMethod(llvm::StringRef name);
llvm::StringRef methodName(Method method);
inline bool isAWQ(Method m) { return m == Method::AWQ || m == Method::AWQGPTQ; }
inline bool usesGPTQ(Method m) { return m == Method::GPTQ || m == Method::AWQGPTQ; }
/// Whether the method needs calibration statistics.
inline bool needsCalibration(Method m) {
  return m == Method::GPTQ || isAWQ(m);
}

/// The quantization scheme and the method's knobs, spelled as AutoGPTQ /
/// AutoAWQ spell them.
struct QuantizeOptions {
  Method method = Method::GPTQ;
  unsigned bits = 4;
  int64_t groupSize = 128; // -1: per output channel
  /// Unset: the method's reference default (AutoAWQ zero_point=True,
  /// AutoGPTQ sym=True).
  std::optional<bool> zeroPoint;
  bool descAct = false;
  bool fakeQuant = false;
  std::string scaleType = "auto"; // f16, bf16, f32 or auto
  /// Globs of layers left in float; empty: the passes' default skip list.
  std::vector<std::string> skip;
  /// Per-module overrides "GLOB:key=value[:key=value]".
  std::vector<std::string> overrides;
  // GPTQ.
  double dampPercent = 0.01;
  int64_t blockSize = 128;
  bool staticGroups = false;
  bool trueSequential = false;
  // AWQ.
  std::string awqMode = "gemm"; // gemm, fake, scale, clip
  // Method::Custom: the registered quantizer's name.
  std::string custom;
  std::string duoScaling = "true"; // true, false, both
  bool clip = true;
  int64_t nGrid = 20;
  /// The scale-search loss: "module" (AutoAWQ's, the inspected module's
  /// output measured block by block while calibrating) or "linear" (the
  /// group's own outputs, from the Hessian).
  std::string awqLoss = "module";
  /// With the module loss: candidates scored on the first N samples (0: all).
  int64_t awqLossSamples = 0;

  bool effectiveZeroPoint() const {
    return zeroPoint.value_or(isAWQ(method));
  }
};

/// Calibration data: token ids (.npy, .jsonl, .bin) or text with a tokenizer.
struct CalibrationOptions {
  std::string data;
  std::string tokenizer;
  int64_t samples = 128;
  int64_t seqLen = 2048;
  uint64_t seed = 0;
};

/// How calibration streams through the model: one block at a time over all
/// samples, holding one block's statistics and activations.
struct StreamingOptions {
  /// The inputs of block b+1: "quantized" (block b with its layers
  /// quantized, as AutoGPTQ / GPTQModel; rtn and gptq only) or "float" (the
  /// float block b, as AutoAWQ); empty: the method's reference (gptq:
  /// quantized, others: float).
  std::string blockInputs;
  /// Activations between blocks in f16 (half the memory) instead of f32.
  bool f16Activations = false;
  /// Bytes of activations held in memory; above, they go to a memory-mapped
  /// file in the work directory. 0: half of the physical memory.
  uint64_t maxMemory = 0;
  /// Also write the statistics archive to this file.
  std::string saveStats;
  /// Reuse this statistics archive instead of calibrating.
  std::string stats;
  /// Keep every completed block in `.<outdir name>.resume` beside outDir
  /// and continue from there if an earlier run with the same model, data
  /// and options was interrupted.
  bool resume = false;
  /// Bytes to leave free on the output's file system: a run whose
  /// estimated writes (DiskEstimate.h) plus this exceed the free space is
  /// refused before it starts.
  uint64_t diskReserve = 0;
  /// Test-only: fail after completing block N (0-based), as a crash would.
  int64_t stopAfterBlock = -1;
};

struct CompileOptions {
  std::string input;  // model.onnx
  std::string outDir; // written atomically
  bool force = false; // replace an existing outDir
  bool quiet = false; // no progress output
  /// Pass errors (diagnostics) become the returned error's message instead
  /// of going to stderr (for callers without a terminal: Python).
  bool captureDiagnostics = false;
  QuantizeOptions quant;
  CalibrationOptions calib;
  /// GPU targets (sm_75 .. sm_90) to emit GEMV/GEMM kernels for.
  std::vector<std::string> targets;
  std::string ptxas = "/usr/local/cuda/bin/ptxas";
  /// A Hugging Face checkpoint written to outDir/hf as well.
  std::optional<hf::Format> format;
  StreamingOptions stream;
};

struct CompileResult {
  std::string outDir;     // absolute
  std::string reportPath; // quant-report.csv ("" for --method none)
  std::string hfDir;      // "" without a format
  int64_t linears = 0, calibratedLayers = 0;
  double seconds = 0;
  /// (phase, seconds) in order: import, calibrate, merge statistics,
  /// quantize, write.
  std::vector<std::pair<std::string, double>> phases;
  /// Calibration blocks run (and taken from an interrupted run), the
  /// activation bytes of one block boundary and whether they were spilled.
  int64_t blocks = 0, resumedBlocks = 0;
  uint64_t activationBytes = 0;
  bool spilledActivations = false;
};

/// Checks the options' consistency (method/flag combinations, values) and
/// fills the method-dependent defaults; the message names the flag.
llvm::Error validate(CompileOptions &options);

/// Whether calibration feeds block b+1 the outputs of the quantized block b
/// (the --block-inputs choice, else the method's reference).
bool quantizedBlockInputs(const CompileOptions &options);

/// The whole compile. `log` receives progress lines unless options.quiet.
/// On error nothing is left at outDir (an existing one is kept).
llvm::Expected<CompileResult> compile(CompileOptions options,
                                      llvm::raw_ostream &log);

/// The wq-rtn / wq-gptq / wq-awq pass for `quant`, writing model.safetensors
/// and quant-report.csv into `baseDir`.
std::unique_ptr<mlir::Pass> createQuantizePass(const QuantizeOptions &quant,
                                               llvm::StringRef baseDir);

/// GEMV and GEMM kernels for every quantized layer the GPU path supports,
/// assembled by ptxas into `dir`/kernels (manifest.json lists them).
llvm::Error emitGPUKernels(mlir::ModuleOp module, llvm::StringRef dir,
                           llvm::ArrayRef<std::string> targets,
                           llvm::StringRef ptxas);

} // namespace quant_mlir::driver

#endif // QUANT_MLIR_DRIVER_COMPILE_H
