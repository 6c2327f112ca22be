//===- quant-run.cpp - run an imported or quantized model on the CPU --------===//
// Perplexity, tokens/s and peak memory of a model directory (model.mlir +
// its weight archive), JIT-compiled through the CPU lowering.
//===----------------------------------------------------------------------===//

#include "Generate.h"

#include "quant-mlir/InitAllDialects.h"
#include "quant-mlir/Data/TokenData.h"
#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h"
#include "quant-mlir/Runtime/Blockwise.h"
#include "quant-mlir/Runtime/CPURunner.h"
#include "quant-mlir/Runtime/Calibration.h"
#include "quant-mlir/Runtime/LanguageModel.h"
#include "quant-mlir/Runtime/Npy.h"
#include "RawRun.h"
#include "quant-mlir/Support/InputFiles.h"
#include "quant-mlir/Support/OutputPaths.h"
#include "quant-mlir/Support/Progress.h"
#include "quant-mlir/Quant/BLASKernels.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"

#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <ctime>

using namespace quant_mlir;
namespace cl = llvm::cl;

static cl::OptionCategory category("quant-run options");
static cl::opt<std::string> modelDir(cl::Positional, cl::Required,
                                     cl::desc("<model dir (model.mlir + archive)>"),
                                     cl::cat(category));
static cl::opt<std::string> evalData("eval-data",
                                     cl::desc("Evaluation data: token ids (.npy, .jsonl, .txt) or text"),
                                     cl::cat(category));
static cl::opt<bool> calibrate("calibrate",
                               cl::desc("Record calibration statistics instead of evaluating"),
                               cl::cat(category));
static cl::opt<std::string> calibData("calib-data",
                                      cl::desc("Calibration data (same formats as --eval-data)"),
                                      cl::cat(category));
static cl::opt<int64_t> calibSamples("calib-samples", cl::init(128),
                                     cl::desc("Calibration samples of --seq-len tokens"),
                                     cl::cat(category));
static cl::opt<int64_t> sampleRows("sample-rows", cl::init(512),
                                   cl::desc("Input rows kept per layer (seeded reservoir sample, for AWQ)"),
                                   cl::cat(category));
static cl::opt<uint64_t> seed("seed", cl::init(0),
                              cl::desc("Seed of the sample choice"), cl::cat(category));
static cl::opt<std::string> statsName("stats-archive", cl::init("stats.safetensors"),
                                      cl::desc("Statistics archive written into the model dir"),
                                      cl::cat(category));
static cl::opt<std::string> tokenizerPath("tokenizer",
                                          cl::desc("sentencepiece tokenizer.model or llama2.c tokenizer.bin, for text data"),
                                          cl::cat(category));
static cl::opt<int64_t> seqLen("seq-len", cl::init(512),
                               cl::desc("Tokens per evaluation window"),
                               cl::cat(category));
static cl::opt<int64_t> maxWindows("max-windows", cl::init(0),
                                   cl::desc("Evaluate at most this many windows (0: all)"),
                                   cl::cat(category));
static cl::opt<std::string> funcName("func", cl::init(""),
                                     cl::desc("Entry function (default: the only public one)"),
                                     cl::cat(category));
static cl::opt<bool> jsonOut("json", cl::desc("Print the results as JSON"),
                             cl::cat(category));
static cl::opt<bool> quiet("quiet", cl::desc("No progress bar"), cl::cat(category));
static cl::opt<std::string> dumpLogits("dump-logits",
                                       cl::desc("Run the whole data as one sequence and write its logits [1, n, vocab] as .npy"),
                                       cl::cat(category));

static cl::opt<bool> blockwise("blockwise",
                               cl::desc("Evaluate one transformer block at a time over all windows "
                                        "(wq-outline-blocks; peak memory: one block's activations)"),
                               cl::cat(category));

static cl::list<std::string> rawInputs("input",
                                      cl::desc("NAME=FILE.npy: run the entry as the graph defines it on these inputs (with --outputs)"),
                                      cl::cat(category));
static cl::opt<std::string> rawOutputs("outputs",
                                       cl::desc("Directory for every output of a raw run, as NAME.npy"),
                                       cl::cat(category));

// CPU lowering and JIT settings (CPUCompileOptions, docs/performance-cpu.md).
static cl::opt<CPUKernels> cpuKernels(
    "cpu-kernels", cl::init(CPUKernels::Vector),
    cl::desc("Kernel family for contractions and packed layers"),
    cl::values(clEnumValN(CPUKernels::Blas, "blas", "OpenBLAS-backed kernels"),
               clEnumValN(CPUKernels::Vector, "vector",
                          "generated vector micro-kernels (host ISA)"),
               clEnumValN(CPUKernels::Loops, "loops",
                          "reference lowering, no runtime kernels")),
    cl::cat(category));
static cl::opt<bool> jitHostTarget(
    "jit-host-target", cl::init(true),
    cl::desc("Give LLVM's IR optimizer the host target machine (vectorizers "
             "see AVX2/AVX-512); =false for the target-less pipeline"),
    cl::cat(category));
static cl::opt<int> jitIROpt("jit-ir-opt", cl::init(-1),
                             cl::desc("LLVM IR optimization level (-1: default)"),
                             cl::cat(category));
static cl::opt<bool> tuneMalloc(
    "tune-malloc", cl::init(true),
    cl::desc("glibc malloc settings that keep large intermediates in the heap"),
    cl::cat(category));
static cl::opt<bool> prefaultWeights(
    "prefault-weights", cl::init(true),
    cl::desc("Read the weight archive into memory while the model compiles "
             "(skipped above half the physical memory); =false maps pages "
             "on first use"),
    cl::cat(category));
/// The JIT settings of every mode (perplexity, calibration, generation).
static CPUCompileOptions cpuCompileOptions() {
  CPUCompileOptions options;
  options.lowering.kernels = cpuKernels;
  options.hostTarget = jitHostTarget;
  if (jitIROpt >= 0)
    options.irOptLevel = unsigned(jitIROpt);
  options.tuneAllocator = tuneMalloc;
  options.prefaultWeights = prefaultWeights;
  return options;
}

static cl::opt<bool> printTokens("print-tokens",
                                 cl::desc("Print the token ids of --eval-data (after tokenization) and exit"),
                                 cl::cat(category));

static int fail(const llvm::Twine &msg) {
  llvm::errs() << "quant-run: error: " << msg << "\n";
  return 1;
}

static double peakRSSMiB() {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0; // Linux reports KiB.
}

/// Mean negative log-likelihood terms of one window: -log softmax(logits[t])
/// at token t+1, for every t but the last, accumulated in float64.
static void accumulateNLL(llvm::ArrayRef<float> logits, int64_t vocab,
                          llvm::ArrayRef<int64_t> window, double &sum,
                          int64_t &count) {
  for (size_t t = 0; t + 1 < window.size(); ++t) {
    const float *row = logits.data() + t * vocab;
    double maxLogit = row[0];
    for (int64_t v = 1; v < vocab; ++v)
      maxLogit = std::max(maxLogit, double(row[v]));
    double z = 0;
    for (int64_t v = 0; v < vocab; ++v)
      z += std::exp(double(row[v]) - maxLogit);
    sum += maxLogit + std::log(z) - double(row[window[t + 1]]);
    ++count;
  }
}

/// The files this run reads, which no output may replace.
static std::vector<std::string> runInputs(mlir::ModuleOp module,
                                          llvm::StringRef mlirPath) {
  std::vector<std::string> inputs = {mlirPath.str(), calibData, evalData,
                                     tokenizerPath};
  if (auto archive = module->getAttrOfType<mlir::StringAttr>(
          wq::WQDialect::kArchiveAttrName)) {
    llvm::SmallString<256> path(modelDir);
    llvm::sys::path::append(path, archive.getValue());
    inputs.push_back(std::string(path));
  }
  return inputs;
}

/// --stats-archive names a file inside the model directory (after resolving
/// symlinks) that is none of the inputs: `--stats-archive model.safetensors`
/// would replace the weights.
static llvm::Error checkStatsArchive(mlir::ModuleOp module,
                                     llvm::StringRef mlirPath) {
  auto path = resolveOutputInside(modelDir, statsName, "--stats-archive");
  if (!path)
    return path.takeError();
  return checkNotAnInput(*path, runInputs(module, mlirPath),
                         "--stats-archive");
}

/// Process CPU seconds (all threads).
static double processCPUSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

/// Wall and process CPU seconds inside the forward calls alone (no scoring),
/// for bench/forward; negative where a mode does not measure them.
static double forwardSeconds = -1, forwardCPUSeconds = -1;

/// Prints the results table or JSON shared by both evaluation modes.
static void report(int64_t windows, int64_t predicted, double meanNLL,
                   double tokensPerSecond, double compileSeconds,
                   double evalSeconds, const char *mode) {
  double ppl = std::exp(meanNLL);
  if (jsonOut) {
    llvm::json::Object result{
        {"model", modelDir.getValue()},
        {"eval_data", evalData.getValue()},
        {"mode", mode},
        {"seq_len", seqLen.getValue()},
        {"windows", windows},
        {"predicted_tokens", predicted},
        {"mean_nll", meanNLL},
        {"perplexity", ppl},
        {"tokens_per_second", tokensPerSecond},
        {"compile_seconds", compileSeconds},
        {"eval_seconds", evalSeconds},
        {"peak_rss_mib", peakRSSMiB()}};
    if (forwardSeconds >= 0) {
      result["forward_seconds"] = forwardSeconds;
      result["forward_cpu_seconds"] = forwardCPUSeconds;
    }
    llvm::outs() << llvm::formatv("{0:2}", llvm::json::Value(std::move(result)))
                 << "\n";
    return;
  }
  llvm::outs() << llvm::format("%-22s %s\n", "model", modelDir.c_str())
               << llvm::format("%-22s %s\n", "mode", mode)
               << llvm::format("%-22s %lld x %lld tokens (%lld predicted)\n",
                               "windows", (long long)windows,
                               (long long)seqLen.getValue(),
                               (long long)predicted)
               << llvm::format("%-22s %.6f\n", "mean NLL (nats)", meanNLL)
               << llvm::format("%-22s %.4f\n", "perplexity", ppl)
               << llvm::format("%-22s %.1f\n", "tokens/s", tokensPerSecond)
               << llvm::format("%-22s %.2f s\n", "compile", compileSeconds)
               << llvm::format("%-22s %.1f MiB\n", "peak RSS", peakRSSMiB());
}

/// Perplexity with the model split into blocks: every window goes through
/// the prologue, then block 0 for all windows, block 1, ..., the epilogue.
static int evaluateBlockwise(mlir::ModuleOp module,
                             llvm::ArrayRef<int64_t> tokens,
                             llvm::StringRef dataPath) {
  LanguageModelEntry entry;
  auto scoring = specializeForScoring(module, funcName, entry);
  if (!scoring)
    return fail(llvm::toString(scoring.takeError()));
  auto model = BlockwiseModel::create(**scoring, modelDir, entry.name,
                                      /*instrument=*/false);
  if (!model)
    return fail(llvm::toString(model.takeError()));
  auto results = (*model)->resultTypes();
  if (results.size() != 1 || results[0].getRank() != 3 ||
      mlir::ShapedType::isDynamic(results[0].getDimSize(2)))
    return fail("the entry must return logits tensor<BxSxVxf32> with a "
                "static vocabulary V");
  int64_t vocab = results[0].getDimSize(2);
  if (llvm::Error err = data::checkVocabulary(tokens, vocab, dataPath))
    return fail(llvm::toString(std::move(err)));
  int64_t windows = int64_t(tokens.size()) / seqLen;
  if (windows == 0)
    return fail("'" + evalData + "' holds " + llvm::Twine(tokens.size()) +
                " tokens, fewer than one window of --seq-len " +
                llvm::Twine(seqLen));
  if (maxWindows > 0)
    windows = std::min<int64_t>(windows, maxWindows);
  std::vector<std::vector<HostTensor>> inputs;
  for (int64_t w = 0; w < windows; ++w)
    inputs.push_back(entry.inputs(tokens.slice(w * seqLen, seqLen), 1, seqLen));

  double compileSeconds = 0, nllSum = 0;
  int64_t predicted = 0;
  BlockActivations acts;
  Progress progress("perplexity (blockwise)",
                    windows * (*model)->numStages(), !quiet);
  auto evalStart = std::chrono::steady_clock::now();
  for (int64_t s = 0; s < (*model)->numStages(); ++s) {
    auto t0 = std::chrono::steady_clock::now();
    if (llvm::Error err = (*model)->compileStage(s))
      return fail(llvm::toString(std::move(err)));
    compileSeconds += std::chrono::duration<double>(
                          std::chrono::steady_clock::now() - t0)
                          .count();
    auto tick = [&] { progress.advance(); };
    if (s == 0) {
      auto out = (*model)->runPrologue(inputs, nullptr, tick);
      if (!out)
        return fail(llvm::toString(out.takeError()));
      acts = std::move(*out);
      continue;
    }
    bool last = s + 1 == (*model)->numStages();
    auto consume = [&](int64_t w, std::vector<HostTensor> &out) {
      if (last)
        accumulateNLL(out[0].as<float>(), vocab,
                      tokens.slice(w * seqLen, seqLen), nllSum, predicted);
      return llvm::Error::success();
    };
    if (llvm::Error err = (*model)->runStage(s, acts, nullptr, !last, consume,
                                             tick))
      return fail(llvm::toString(std::move(err)));
  }
  progress.finish();
  double evalSeconds = std::chrono::duration<double>(
                           std::chrono::steady_clock::now() - evalStart)
                           .count() -
                       compileSeconds;
  report(windows, predicted, nllSum / predicted,
         windows * seqLen / evalSeconds, compileSeconds, evalSeconds,
         "blockwise");
  return 0;
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  quant_mlir::quant::configureBLASKernels();
  cl::HideUnrelatedOptions({&category, &quant_run::generationCategory});
  cl::ParseCommandLineOptions(argc, argv,
                              "quant-run: perplexity, tokens/s and peak memory "
                              "of a model directory on the CPU\n");
  if (seqLen < 2)
    return fail("--seq-len must be at least 2");

  mlir::DialectRegistry registry;
  quant_mlir::registerAllDialects(registry);
  mlir::MLIRContext context(registry);
  context.loadAllAvailableDialects();

  std::unique_ptr<data::Tokenizer> tokenizer;
  if (!tokenizerPath.empty()) {
    auto tok = data::Tokenizer::open(tokenizerPath);
    if (!tok)
      return fail(llvm::toString(tok.takeError()));
    tokenizer = std::move(*tok);
  }
  if (!rawInputs.empty() || !rawOutputs.empty()) {
    if (rawOutputs.empty())
      return fail("--input needs --outputs DIR");
    llvm::SmallString<256> path(modelDir);
    llvm::sys::path::append(path, "model.mlir");
    llvm::SourceMgr sm;
    mlir::SourceMgrDiagnosticHandler handler(sm, &context);
    auto module = mlir::parseSourceFile<mlir::ModuleOp>(path, sm, &context);
    if (!module)
      return fail("cannot load '" + path + "'");
    if (llvm::Error err = runRaw(std::move(module), modelDir, funcName,
                                 rawInputs, rawOutputs))
      return fail(llvm::toString(std::move(err)));
    return 0;
  }
  if (quant_run::generationRequested())
    return quant_run::runGeneration(context, modelDir, tokenizer.get(),
                                    funcName, seed, jsonOut,
                                    cpuCompileOptions());
  if (calibrate && calibData.empty())
    return fail("--calibrate needs --calib-data");
  if (!calibrate && evalData.empty())
    return fail("give --eval-data (or --calibrate --calib-data)");
  const std::string &dataPath = calibrate ? calibData : evalData;
  auto tokens = data::loadTokens(dataPath, tokenizer.get());
  if (!tokens)
    return fail(llvm::toString(tokens.takeError()));

  if (printTokens) {
    for (auto [i, t] : llvm::enumerate(*tokens))
      llvm::outs() << (i ? " " : "") << t;
    llvm::outs() << "\n";
    return 0;
  }

  llvm::SmallString<256> mlirPath(modelDir);
  llvm::sys::path::append(mlirPath, "model.mlir");
  if (llvm::Error err = checkRegularFile(mlirPath)) // a FIFO would block
    return fail(llvm::toString(std::move(err)));
  llvm::SourceMgr sourceMgr;
  mlir::SourceMgrDiagnosticHandler diagHandler(sourceMgr, &context);
  auto module = mlir::parseSourceFile<mlir::ModuleOp>(mlirPath, sourceMgr,
                                                      &context);
  if (!module)
    return fail("cannot load '" + mlirPath + "'");

  if (calibrate) {
    if (llvm::Error err = checkStatsArchive(*module, mlirPath))
      return fail(llvm::toString(std::move(err)));
    CalibrateOptions opts;
    opts.samples = calibSamples;
    opts.seqLen = seqLen;
    opts.sampleRows = sampleRows;
    opts.seed = seed;
    opts.statsArchive = statsName;
    opts.dataName = calibData;
    opts.func = funcName;
    opts.quiet = quiet;
    auto result = calibrateModel(*module, modelDir, *tokens, opts);
    if (!result)
      return fail(llvm::toString(result.takeError()));
    // The statistics are on disk; now the IR that references them.
    if (llvm::Error err =
            llvm::writeToOutput(mlirPath, [&](llvm::raw_ostream &os) {
              module->print(os);
              return llvm::Error::success();
            }))
      return fail("cannot write '" + mlirPath + "': " +
                  llvm::toString(std::move(err)));
    if (!quiet)
      llvm::errs() << "calibrated " << result->layers << " layers on "
                   << result->samples << " x " << seqLen << " tokens in "
                   << llvm::format("%.2f", result->seconds) << " s -> "
                   << result->statsPath << "\n";
    return 0;
  }

  if (blockwise)
    return evaluateBlockwise(*module, *tokens, dataPath);

  if (!dumpLogits.empty())
    if (llvm::Error err = checkNotAnInput(
            dumpLogits, runInputs(*module, mlirPath), "--dump-logits"))
      return fail(llvm::toString(std::move(err)));
  LanguageModelEntry entry;
  auto scoring = specializeForScoring(*module, funcName, entry);
  if (!scoring)
    return fail(llvm::toString(scoring.takeError()));
  auto compileStart = std::chrono::steady_clock::now();
  auto compiled =
      CPUModule::compile(std::move(*scoring), modelDir, cpuCompileOptions());
  if (!compiled)
    return fail(llvm::toString(compiled.takeError()));
  double compileSeconds = std::chrono::duration<double>(
                              std::chrono::steady_clock::now() - compileStart)
                              .count();

  int64_t vocab = entry.vocab;
  if (llvm::Error err = data::checkVocabulary(*tokens, vocab, dataPath))
    return fail(llvm::toString(std::move(err)));

  if (!dumpLogits.empty()) {
    int64_t n = tokens->size();
    auto out = (*compiled)->run(entry.name, entry.inputs(*tokens, 1, n));
    if (!out)
      return fail(llvm::toString(out.takeError()));
    if (llvm::Error err = writeNpy(dumpLogits, (*out)[0]))
      return fail(llvm::toString(std::move(err)));
    return 0;
  }

  int64_t windows = int64_t(tokens->size()) / seqLen;
  if (windows == 0)
    return fail("'" + evalData + "' holds " + llvm::Twine(tokens->size()) +
                " tokens, fewer than one window of --seq-len " +
                llvm::Twine(seqLen));
  if (maxWindows > 0)
    windows = std::min<int64_t>(windows, maxWindows);

  double nllSum = 0;
  int64_t predicted = 0;
  Progress progress("perplexity", windows, !quiet);
  auto evalStart = std::chrono::steady_clock::now();
  forwardSeconds = forwardCPUSeconds = 0;
  for (int64_t w = 0; w < windows; ++w) {
    llvm::ArrayRef<int64_t> window(tokens->data() + w * seqLen, seqLen);
    auto inputs = entry.inputs(window, 1, seqLen);
    auto forwardStart = std::chrono::steady_clock::now();
    double cpuStart = processCPUSeconds();
    auto out = (*compiled)->run(entry.name, inputs);
    forwardCPUSeconds += processCPUSeconds() - cpuStart;
    forwardSeconds += std::chrono::duration<double>(
                          std::chrono::steady_clock::now() - forwardStart)
                          .count();
    if (!out)
      return fail(llvm::toString(out.takeError()));
    accumulateNLL((*out)[0].as<float>(), vocab, window, nllSum, predicted);
    progress.advance();
  }
  progress.finish();
  double evalSeconds = std::chrono::duration<double>(
                           std::chrono::steady_clock::now() - evalStart)
                           .count();
  report(windows, predicted, nllSum / predicted, windows * seqLen / evalSeconds,
         compileSeconds, evalSeconds, "whole model");
  return 0;
}
