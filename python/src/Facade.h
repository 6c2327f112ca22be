//===- Facade.h - the driver API in standard C++ types, for the extension -*- C++ -*-===//
// The pybind11 module is compiled with RTTI and exceptions; LLVM and MLIR
// are not. This header is the only project header it includes: plain
// structs and non-polymorphic handles (no LLVM type, no vtable), errors as
// strings, never as exceptions. Facade.cpp (compiled like the rest of the
// project) maps it onto lib/Driver.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_PYTHON_FACADE_H
#define QUANT_MLIR_PYTHON_FACADE_H

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace quant_mlir::python {

/// A value or the error message of a failed call.
template <typename T> struct Result {
  T value{};
  std::string error;
  bool ok() const { return error.empty(); }
};

/// Receives each log line (without its newline).
using LineSink = std::function<void(const std::string &)>;
/// Receives a rendered progress bar, and once more with `finished`.
using ProgressSink = std::function<void(const std::string &, bool finished)>;

struct CompileArgs {
  std::string input, outDir;
  std::string method = "gptq"; // a built-in method or a registered name
  unsigned bits = 4;
  int64_t groupSize = 128;
  int zeroPoint = -1; // -1: the method's default
  bool descAct = false, fakeQuant = false, force = false, quiet = false;
  std::string scaleType = "auto";
  std::vector<std::string> skip, overrides;
  double dampPercent = 0.01;
  int64_t blockSize = 128;
  bool staticGroups = false, trueSequential = false;
  std::string awqMode = "gemm", duoScaling = "true";
  bool clip = true;
  int64_t nGrid = 20;
  std::string calibData, tokenizer;
  int64_t calibSamples = 128, seqLen = 2048;
  uint64_t seed = 0;
  std::vector<std::string> targets;
  std::string ptxas = "/usr/local/cuda/bin/ptxas";
  std::string format; // "": no Hugging Face checkpoint
};

struct CompileOutput {
  std::string outDir, reportPath, hfDir;
  int64_t linears = 0, calibratedLayers = 0;
  double seconds = 0;
};

/// driver::compile; `log` gets the stage lines, `progress` the bars
/// (neither is called with args.quiet).
Result<CompileOutput> compile(const CompileArgs &args, const LineSink &log,
                              const ProgressSink &progress);

/// data::loadTokens (.npy, .jsonl, whitespace ids, or text with a tokenizer).
Result<std::vector<int64_t>> loadTokens(const std::string &path,
                                        const std::string &tokenizer);

struct PerplexityOutput {
  int64_t windows = 0, predicted = 0, seqLen = 0;
  double meanNLL = 0, perplexity = 0, tokensPerSecond = 0;
  double compileSeconds = 0, evalSeconds = 0;
};

struct GenerateArgs {
  int64_t maxNewTokens = 64;
  double temperature = 0, topP = 1;
  int64_t topK = 0;
  uint64_t seed = 0;
  int64_t maxSeqLen = 512;
  std::string kvCache = "auto"; // auto, recompute, past, derived
  bool stopAtEos = true;
};

struct GenerateOutput {
  std::vector<int64_t> ids;
  std::string text; // with a tokenizer
  std::string stop; // eos, max_seq_len, max_new_tokens
  std::string kvCache;
  double timeToFirstToken = 0;
  std::vector<double> tokenSeconds;
};

/// A loaded model directory (driver::Model).
class Model {
public:
  static Result<std::shared_ptr<Model>> load(const std::string &dir,
                                             const std::string &tokenizer,
                                             const std::string &func);
  ~Model();
  std::string dir() const;
  bool hasTokenizer() const;
  Result<std::vector<int64_t>> encode(const std::string &text, bool bos) const;
  Result<std::string> decode(const std::vector<int64_t> &ids) const;
  Result<int64_t> vocabSize();
  Result<PerplexityOutput> perplexity(const std::vector<int64_t> &tokens,
                                      int64_t seqLen, int64_t maxWindows,
                                      bool quiet, const ProgressSink &progress);
  /// Logits [batch, seq, vocab], row-major.
  Result<std::vector<float>> logits(const std::vector<int64_t> &ids,
                                    int64_t batch, int64_t seq,
                                    int64_t &vocab);
  Result<GenerateOutput> generate(const std::vector<int64_t> &prompt,
                                  const GenerateArgs &args,
                                  const std::function<void(int64_t)> &onToken);

  struct Impl;

private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl;
};

/// One tensor of a mapped archive; `data` stays valid while the Stats
/// object that returned it (or a copy of its keepAlive) lives.
struct TensorView {
  const void *data = nullptr;
  std::string dtype; // "F64", "F32", ...
  std::vector<int64_t> shape;
  size_t itemSize = 0;
};

/// A calibration statistics archive, mmapped (safetensors::Reader).
class Stats {
public:
  static Result<std::shared_ptr<Stats>> open(const std::string &path);
  ~Stats();
  std::string path() const;
  /// Layer keys (the prefixes of their .hessian tensors), sorted.
  std::vector<std::string> layers() const;
  /// Whether the tensor exists.
  bool view(const std::string &name, TensorView &out) const;
  std::map<std::string, std::string> metadata() const;

  struct Impl;

private:
  explicit Stats(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl;
};

/// What a custom quantizer gets for one layer; pointers are valid during
/// the call only. Statistics are null without calibration.
struct LayerInput {
  std::string layer;
  const float *weight = nullptr; // [n][k]
  int64_t n = 0, k = 0;
  unsigned bits = 4;
  int64_t groupSize = 128;
  bool symmetric = true, actOrder = false;
  const double *hessian = nullptr; // [k][k]
  const float *xMean = nullptr;    // [k]
  const float *rows = nullptr;     // [numRows][k]
  int64_t numRows = 0;
};

/// What it returns, in the weight's orientation: codes [n][k], scales and
/// zeros [n][groups], gIdx [k] (act-order only; else empty).
struct LayerOutput {
  std::vector<uint8_t> codes;
  std::vector<float> scales;
  std::vector<int32_t> zeros;
  std::vector<int32_t> gIdx;
};

/// Returns "" on success, else the error message.
using Quantizer =
    std::function<std::string(const LayerInput &, LayerOutput &)>;

/// Registers `fn` under `name` ("" or the error).
std::string registerQuantizer(const std::string &name, Quantizer fn);
bool unregisterQuantizer(const std::string &name);
std::vector<std::string> quantizerNames();

} // namespace quant_mlir::python

#endif // QUANT_MLIR_PYTHON_FACADE_H
