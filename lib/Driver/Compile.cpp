//===- Compile.cpp - import, calibrate, quantize, write a model directory ----===//
// The compile flow behind quant-compile and the Python package. Everything
// is built in a temporary directory beside the output and renamed into place
// at the end: a failure leaves no partial output, a signal removes it, and
// one left by a killed run is removed by the next.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Driver/Compile.h"

#include "quant-mlir/Data/TokenData.h"
#include "quant-mlir/Dialect/WQ/Transforms/AWQPlan.h"
#include "quant-mlir/Dialect/WQ/Transforms/LayerQuantizer.h"
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h"
#include "quant-mlir/Dialect/WQ/Transforms/SchemeSelection.h"
#include "quant-mlir/Export/HFExport.h"
#include "quant-mlir/InitAllDialects.h"
#include "quant-mlir/Quant/CustomQuantizer.h"
#include "quant-mlir/Runtime/Calibration.h"
#include "quant-mlir/Runtime/DiskEstimate.h"
#include "quant-mlir/Runtime/StreamCalibration.h"
#include "quant-mlir/Support/OutputPaths.h"
#include "quant-mlir/Support/SafeTensors.h"
#include "quant-mlir/Support/SystemMemory.h"
#include "quant-mlir/Target/ONNX/ImportONNX.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/xxhash.h"

#include <chrono>
#include <optional>

using namespace quant_mlir;
using namespace quant_mlir::driver;
namespace fs = llvm::sys::fs;

static llvm::Error error(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

std::optional<Method> driver::parseMethod(llvm::StringRef name) {
  return llvm::StringSwitch<std::optional<Method>>(name)
      .Case("none", Method::None)
      .Case("rtn", Method::RTN)
      .Case("gptq", Method::GPTQ)
      .Case("awq", Method::AWQ)
      .Case("awq+gptq", Method::AWQGPTQ)
      .Default(std::nullopt);
}

llvm::StringRef driver::methodName(Method method) {
  switch (method) {
  case Method::None:
    return "none";
  case Method::RTN:
    return "rtn";
  case Method::GPTQ:
    return "gptq";
  case Method::AWQ:
    return "awq";
  case Method::AWQGPTQ:
    return "awq+gptq";
  case Method::Custom:
    return "custom";
  }
  llvm_unreachable("unknown method");
}

llvm::Error driver::validate(CompileOptions &o) {
  QuantizeOptions &q = o.quant;
  if (q.awqMode != "gemm" && q.awqMode != "fake" && q.awqMode != "scale" &&
      q.awqMode != "clip")
    return error("--awq-mode must be gemm, fake, scale or clip, got '" +
                 q.awqMode + "'");
  if (q.duoScaling != "true" && q.duoScaling != "false" &&
      q.duoScaling != "both")
    return error("--duo-scaling must be true, false or both, got '" +
                 q.duoScaling + "'");
  if (q.awqLoss != "module" && q.awqLoss != "linear")
    return error("--awq-loss must be module or linear, got '" + q.awqLoss +
                 "'");
  if (q.method == Method::Custom && !quant::hasCustomQuantizer(q.custom))
    return error("no custom quantizer '" + q.custom + "' is registered");
  StreamingOptions &st = o.stream;
  if (!st.blockInputs.empty() && st.blockInputs != "quantized" &&
      st.blockInputs != "float")
    return error("--block-inputs must be quantized or float, got '" +
                 st.blockInputs + "'");
  if (st.blockInputs == "quantized" && q.method != Method::GPTQ &&
      q.method != Method::RTN)
    return error("--block-inputs quantized applies to --method gptq and rtn "
                 "(AWQ's search runs on the float blocks' inputs)");
  if (q.trueSequential && st.blockInputs == "float")
    return error("--true-sequential quantizes in the loop; it excludes "
                 "--block-inputs float");
  if (!st.stats.empty()) {
    if (!fs::is_regular_file(st.stats))
      return error("--stats-file '" + st.stats + "' is not a file");
    if (!o.calib.data.empty())
      return error("--stats-file reuses statistics; it excludes --calib-data");
    if (st.resume)
      return error("--stats-file skips calibration; --resume has nothing to "
                   "resume");
  }
  if (needsCalibration(q.method) && o.calib.data.empty() && st.stats.empty())
    return error("--method " + methodName(q.method) + " needs --calib-data");
  if (q.trueSequential && q.method != Method::GPTQ)
    return error("--true-sequential applies to --method gptq only");
  if (o.format && (q.method == Method::None || q.fakeQuant))
    return error("--format needs packed codes (--method rtn|gptq without "
                 "--fake-quant)");
  if (!o.targets.empty() && q.scaleType == "auto")
    q.scaleType = "f16"; // the GPU kernels compute in f16
  if (fs::exists(o.outDir) && !o.force)
    return error("'" + o.outDir + "' exists; pass --force to replace it");
  // -o must not replace a directory that holds an input (`model.onnx -o .`
  // with --force would delete the model) nor be an input itself.
  if (llvm::Error err = checkNotAnInput(
          o.outDir, {o.input, o.calib.data, o.calib.tokenizer, st.stats}, "-o"))
    return err;
  if (!st.saveStats.empty())
    return checkNotAnInput(st.saveStats,
                           {o.input, o.calib.data, o.calib.tokenizer, st.stats},
                           "--save-stats");
  return llvm::Error::success();
}

bool driver::quantizedBlockInputs(const CompileOptions &o) {
  if (!o.stream.blockInputs.empty())
    return o.stream.blockInputs == "quantized";
  return o.quant.method == Method::GPTQ;
}

/// The options every quantization pass shares, as the generated structs
/// spell them (WQRTNOptions, WQGPTQOptions, WQAWQOptions have these fields).
template <typename PassOptions>
static PassOptions commonOptions(const QuantizeOptions &q,
                                 llvm::StringRef baseDir) {
  PassOptions p;
  p.bits = q.bits;
  p.groupSize = q.groupSize;
  p.zeroPoint = q.effectiveZeroPoint();
  p.descAct = q.descAct;
  p.fakeQuant = q.fakeQuant;
  p.scaleType = q.scaleType;
  // A struct-built pass counts its skip list as given: spell the default.
  auto skip = q.skip.empty() ? wq::SchemeSelector::defaultSkip()
                             : llvm::SmallVector<std::string>(q.skip.begin(),
                                                              q.skip.end());
  p.skip.assign(skip.begin(), skip.end());
  p.overrides.assign(q.overrides.begin(), q.overrides.end());
  p.output = "model.safetensors";
  p.report = "quant-report.csv";
  p.baseDir = baseDir.str();
  return p;
}

static wq::WQGPTQOptions gptqOptions(const QuantizeOptions &q,
                                     llvm::StringRef baseDir) {
  auto p = commonOptions<wq::WQGPTQOptions>(q, baseDir);
  p.dampPercent = q.dampPercent;
  p.blockSize = q.blockSize;
  p.staticGroups = q.staticGroups;
  p.trueSequential = q.trueSequential;
  return p;
}

static wq::WQAWQOptions awqOptions(const QuantizeOptions &q,
                                   llvm::StringRef baseDir) {
  auto p = commonOptions<wq::WQAWQOptions>(q, baseDir);
  p.mode = q.awqMode;
  p.duoScaling = q.duoScaling;
  p.clip = q.clip;
  p.nGrid = q.nGrid;
  p.loss = q.awqLoss;
  p.gptq = q.method == Method::AWQGPTQ;
  p.dampPercent = q.dampPercent;
  p.blockSize = q.blockSize;
  p.staticGroups = q.staticGroups;
  p.awqReport = "awq-report.csv";
  return p;
}

std::unique_ptr<mlir::Pass>
driver::createQuantizePass(const QuantizeOptions &q, llvm::StringRef baseDir) {
  switch (q.method) {
  case Method::None:
    return nullptr;
  case Method::RTN:
    return wq::createWQRTN(commonOptions<wq::WQRTNOptions>(q, baseDir));
  case Method::Custom: {
    auto p = commonOptions<wq::WQRTNOptions>(q, baseDir);
    p.custom = q.custom;
    return wq::createWQRTN(p);
  }
  case Method::GPTQ:
    return wq::createWQGPTQ(gptqOptions(q, baseDir));
  case Method::AWQ:
  case Method::AWQGPTQ:
    return wq::createWQAWQ(awqOptions(q, baseDir));
  }
  llvm_unreachable("unknown method");
}

namespace {
/// The stages of one compile, sharing the context, the temporary directory
/// and the clock.
class Compiler {
public:
  Compiler(const CompileOptions &o, llvm::raw_ostream &log)
      : o(o), log(o.quiet ? llvm::nulls() : log), results(log),
        start(std::chrono::steady_clock::now()) {
    mlir::DialectRegistry registry;
    quant_mlir::registerAllDialects(registry);
    context.appendDialectRegistry(registry);
    context.loadAllAvailableDialects();
    if (o.captureDiagnostics)
      capture.emplace(&context, [this](mlir::Diagnostic &d) {
        if (d.getSeverity() != mlir::DiagnosticSeverity::Error)
          return mlir::failure(); // warnings still reach stderr
        diagnostics += (diagnostics.empty() ? "" : "\n") + d.str();
        return mlir::success();
      });
  }

  llvm::Expected<CompileResult> run();
  /// The errors the passes reported, in place of `err`'s generic message.
  llvm::Error withDiagnostics(llvm::Error err) {
    if (diagnostics.empty())
      return err;
    llvm::consumeError(std::move(err));
    return error(diagnostics);
  }

private:
  double lap() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         start)
        .count();
  }
  llvm::Error checkDiskSpace(mlir::ModuleOp module, uint64_t modelBytes);
  llvm::Error calibrate(mlir::ModuleOp module);
  llvm::Error quantize(mlir::ModuleOp module);
  llvm::Error moveIntoPlace(llvm::StringRef absOut);
  void printPhases();

  const CompileOptions &o;
  llvm::raw_ostream &log;
  /// What the user asked for even when quiet (the checkpoint's vLLM kernel).
  llvm::raw_ostream &results;
  std::chrono::steady_clock::time_point start;
  mlir::MLIRContext context;
  std::optional<mlir::ScopedDiagnosticHandler> capture;
  std::string diagnostics;
  llvm::SmallString<256> work;
  CompileResult result;
  std::vector<double> stageSeconds;
  /// The calibration state, kept until wq-gptq has read the GPTQ results of
  /// the calibration loop in it (precomputed); empty when removed.
  std::string keptStateDir, precomputed;
  /// The disk estimate, logged after the import.
  std::string diskLine;
};
} // namespace

/// The activation bytes held in memory before they go to a file.
static uint64_t maxActivationMemory(const StreamingOptions &st) {
  if (st.maxMemory)
    return st.maxMemory;
  uint64_t half = physicalMemory() / 2;
  return half ? half : uint64_t(4) << 30;
}

/// The bytes under `dir` (what an interrupted run left for --resume).
static uint64_t bytesUnder(llvm::StringRef dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), e; it != e && !ec;
       it.increment(ec)) {
    fs::file_status st;
    if (!fs::status(it->path(), st, /*follow=*/false) &&
        fs::is_regular_file(st))
      total += st.getSize();
  }
  return total;
}

llvm::Error Compiler::checkDiskSpace(mlir::ModuleOp module,
                                     uint64_t modelBytes) {
  const QuantizeOptions &q = o.quant;
  bool calibrates = !o.calib.data.empty() && q.method != Method::None;
  bool loop = q.method == Method::GPTQ &&
              (quantizedBlockInputs(o) || q.trueSequential);
  wq::SchemeSelector::Options so;
  so.bits = q.bits;
  so.groupSize = q.groupSize;
  so.zeroPoint = q.effectiveZeroPoint();
  so.actOrder = q.descAct;
  if (!q.skip.empty())
    so.skip.emplace(q.skip.begin(), q.skip.end());
  so.overrides.assign(q.overrides.begin(), q.overrides.end());
  // A bad skip or override list is reported by the pass, naming it.
  std::unique_ptr<wq::SchemeSelector> selector;
  if (loop) {
    mlir::ScopedDiagnosticHandler quiet(&context, [](mlir::Diagnostic &) {
      return mlir::success();
    });
    auto created =
        wq::SchemeSelector::create(so, [&] { return module.emitError(); });
    if (mlir::succeeded(created))
      selector = std::move(*created);
  }
  std::vector<DiskLayer> layers;
  DiskPlan plan;
  llvm::DenseSet<mlir::Value> inputs;
  if (calibrates) {
    module.walk([&](wq::LinearOp op) {
      auto type = llvm::dyn_cast<mlir::RankedTensorType>(op.getWeight().getType());
      if (!op.getName() || !type || type.getRank() != 2)
        return;
      DiskLayer l;
      l.name = op.getName()->str();
      l.n = type.getDimSize(0);
      l.k = type.getDimSize(1);
      l.sharesInput = !inputs.insert(op.getInput()).second;
      if (loop) {
        mlir::ScopedDiagnosticHandler quiet(&context, [](mlir::Diagnostic &) {
          return mlir::success();
        });
        auto scheme = selector ? selector->select(op)
                               : mlir::FailureOr<wq::SchemeAttr>();
        l.quantizedInLoop = mlir::failed(scheme) || bool(*scheme);
        if (mlir::succeeded(scheme) && *scheme) {
          l.groupSize = scheme->getGroupSize();
          l.actOrder = scheme->getActOrder();
        }
      }
      if (!plan.hidden)
        plan.hidden = l.k; // the first layer reads the residual stream
      layers.push_back(std::move(l));
    });
    plan.samples = o.calib.samples;
    plan.seqLen = o.calib.seqLen;
    plan.sampleRows = CalibrateOptions().sampleRows;
    plan.f16Activations = o.stream.f16Activations;
    plan.resumable = o.stream.resume;
    plan.maxMemory = maxActivationMemory(o.stream);
    plan.saveStats = !o.stream.saveStats.empty();
  }
  plan.modelBytes = modelBytes;
  DiskEstimate e = estimateDisk(layers, plan);
  // What an interrupted run already wrote is on the disk (and in use).
  uint64_t present = o.stream.resume ? bytesUnder(work) : 0;
  uint64_t need = e.total() > present ? e.total() - present : 0;
  auto space = fs::disk_space(work);
  if (!space)
    return llvm::Error::success(); // unknown: nothing to check against
  uint64_t reserve = o.stream.diskReserve;
  diskLine = "      disk: this run writes about " + formatBytes(e.total()) +
             " (" + e.describe() + "); " + formatBytes(space->available) +
             " free\n";
  if (need <= space->available && space->available - need >= reserve)
    return llvm::Error::success();
  std::string dir = llvm::sys::path::parent_path(work).str();
  return error("not enough free disk space in '" + dir + "': this run "
               "writes about " + formatBytes(need) + " (" + e.describe() +
               "; the largest part: " + e.largest() + ")" +
               (reserve ? " and --disk-reserve keeps " + formatBytes(reserve) +
                              " free"
                        : std::string()) +
               ", but " + formatBytes(space->available) + " are free");
}

/// What a resumed run must share with the interrupted one: the inputs (by
/// path, size and modification time) and every option that changes the
/// statistics.
static std::string fingerprint(const CompileOptions &o) {
  std::string text;
  llvm::raw_string_ostream os(text);
  for (const std::string &path : {o.input, o.calib.data, o.calib.tokenizer}) {
    fs::file_status st;
    os << path << ":";
    if (!path.empty() && !fs::status(path, st))
      os << st.getSize() << ":"
         << st.getLastModificationTime().time_since_epoch().count();
    os << ";";
  }
  const QuantizeOptions &q = o.quant;
  os << methodName(q.method) << ";" << q.bits << ";" << q.groupSize << ";"
     << q.effectiveZeroPoint() << ";" << q.descAct << ";" << q.fakeQuant
     << ";" << q.scaleType << ";" << llvm::join(q.skip, ",") << ";"
     << llvm::join(q.overrides, ",") << ";" << q.dampPercent << ";"
     << q.blockSize << ";" << q.staticGroups << ";" << q.trueSequential << ";"
     << o.calib.samples << ";" << o.calib.seqLen << ";" << o.calib.seed << ";"
     << quantizedBlockInputs(o) << ";" << o.stream.f16Activations;
  return llvm::utohexstr(llvm::xxh3_64bits(text)) + " " +
         std::to_string(text.size());
}

llvm::Error Compiler::calibrate(mlir::ModuleOp module) {
  const StreamingOptions &st = o.stream;
  CalibrateOptions opts;
  llvm::SmallString<256> statsPath(work);
  llvm::sys::path::append(statsPath, opts.statsArchive);
  if (!st.stats.empty()) {
    // Reused statistics: the pass reads them from the output directory
    // (one file, or an index and its shards, linked in).
    if (llvm::Error err =
            safetensors::isIndexPath(st.stats)
                ? linkStatistics(st.stats, work, opts.statsArchive)
                : linkOrCopyAtomically(st.stats, statsPath))
      return err;
    auto count = useStatistics(module, statsPath, opts.statsArchive);
    if (!count)
      return count.takeError();
    result.calibratedLayers = *count;
    log << "[2/3] statistics of " << *count << " layers from " << st.stats
        << "\n";
    return llvm::Error::success();
  }
  std::unique_ptr<data::Tokenizer> tokenizer;
  if (!o.calib.tokenizer.empty()) {
    auto tok = data::Tokenizer::open(o.calib.tokenizer);
    if (!tok)
      return tok.takeError();
    tokenizer = std::move(*tok);
  }
  auto tokens = data::loadTokens(o.calib.data, tokenizer.get());
  if (!tokens)
    return tokens.takeError();
  opts.samples = o.calib.samples;
  opts.seqLen = o.calib.seqLen;
  opts.seed = o.calib.seed;
  opts.dataName = llvm::sys::path::filename(o.calib.data).str();
  opts.quiet = o.quiet;

  StreamOptions so;
  so.trueSequential = o.quant.trueSequential;
  so.quantizedInputs = quantizedBlockInputs(o);
  so.f16Activations = st.f16Activations;
  so.maxMemory = maxActivationMemory(st);
  llvm::SmallString<256> stateDir(work);
  llvm::sys::path::append(stateDir, "calibration.state");
  so.stateDir = stateDir.str().str();
  so.resumable = so.resume = st.resume;
  so.fingerprint = fingerprint(o);
  so.stopAfterStage = st.stopAfterBlock < 0 ? -1 : st.stopAfterBlock + 1;
  llvm::SmallString<256> saveTarget(st.saveStats);
  if (!saveTarget.empty())
    fs::make_absolute(saveTarget);
  so.mergedCopy = saveTarget.str().str();
  bool moduleLoss = isAWQ(o.quant.method) && o.quant.awqLoss == "module";
  std::unique_ptr<wq::LayerQuantizer> quantizer;
  if (!moduleLoss && (so.quantizedInputs || so.trueSequential)) {
    auto created =
        o.quant.method == Method::RTN
            ? wq::LayerQuantizer::create(
                  module, commonOptions<wq::WQRTNOptions>(o.quant, work))
            : wq::LayerQuantizer::create(module, gptqOptions(o.quant, work));
    if (!created)
      return created.takeError();
    quantizer = std::move(*created);
  }
  // AutoAWQ's module-output loss: the candidate scales are scored in the
  // block loop, on each float block's inputs, and committed (and resumed)
  // with the block's statistics.
  std::optional<wq::AWQPlan> awqPlan;
  if (moduleLoss) {
    auto plan = wq::planAWQModuleLoss(module, awqOptions(o.quant, work));
    if (!plan)
      return plan.takeError();
    awqPlan = std::move(*plan);
    so.awqPlan = &*awqPlan;
    so.awqLossSamples = o.quant.awqLossSamples;
    so.fingerprint += " awq " + awqPlan->fingerprint + " " +
                      std::to_string(o.quant.awqLossSamples);
  }
  llvm::Expected<StreamResult> calibrated = calibrateStreaming(
      module, work, *tokens, opts, so, quantizer.get());
  if (!calibrated)
    return calibrated.takeError();
  result.calibratedLayers = calibrated->layers;
  result.blocks = calibrated->stages;
  result.resumedBlocks = calibrated->resumedStages;
  result.activationBytes = calibrated->activationBytes;
  result.spilledActivations = calibrated->spilled;
  result.phases.push_back({"calibrate", calibrated->seconds});
  result.phases.push_back({"index statistics", calibrated->mergeSeconds});
  stageSeconds = calibrated->stageSeconds;
  // GPTQ's results from the loop save the pass a second GPTQ per layer. The
  // state goes once the pass has run, so a run killed during the pass
  // resumes from the shards without calibrating again (a failed pass
  // leaves it for --resume, like a failed calibration).
  keptStateDir = so.stateDir;
  if (o.quant.method == Method::GPTQ && !calibrated->precomputedPath.empty())
    precomputed = calibrated->precomputedPath;
  if (!calibrated->wholeModelReason.empty())
    log << "      note: calibrating the whole model at once (float inputs): "
           "it does not split into blocks: "
        << calibrated->wholeModelReason << "\n";
  log << "[2/3] calibrated " << calibrated->layers << " layers "
      << (!calibrated->wholeModelReason.empty() ? "whole"
          : o.quant.trueSequential              ? "block by block (true-sequential)"
          : moduleLoss ? "with AWQ module losses, block by block"
          : so.quantizedInputs ? "block by block (inputs from the quantized blocks)"
                               : "block by block")
      << " on " << calibrated->samples << " x " << o.calib.seqLen
      << " tokens in " << llvm::format("%.2f", calibrated->seconds) << " s";
  if (calibrated->resumedStages)
    log << " (" << calibrated->resumedStages << " of " << calibrated->stages
        << " stages from the interrupted run)";
  log << "\n";
  // Block by block, calibrateStreaming wrote the copy from the shards; a
  // whole-model calibration wrote one file, linked (or copied) here.
  bool streamed = calibrated->wholeModelReason.empty();
  if (!saveTarget.empty() && !streamed)
    if (llvm::Error err = linkOrCopyAtomically(statsPath, saveTarget))
      return err;
  return llvm::Error::success();
}

llvm::Error Compiler::quantize(mlir::ModuleOp module) {
  mlir::PassManager pm(&context);
  if (!precomputed.empty()) {
    wq::WQGPTQOptions p = gptqOptions(o.quant, work);
    p.precomputed = precomputed;
    pm.addPass(wq::createWQGPTQ(p));
  } else {
    pm.addPass(createQuantizePass(o.quant, work));
  }
  // The passes report their errors as diagnostics naming the layer; they
  // reach the user through the context's handler (stderr).
  if (mlir::failed(pm.run(module)))
    return error("quantization failed (see the error above)");
  if (!keptStateDir.empty())
    fs::remove_directories(keptStateDir);
  log << "[3/3] " << methodName(o.quant.method) << " " << o.quant.bits
      << "-bit, group " << o.quant.groupSize << " done at "
      << llvm::format("%.2f", lap()) << " s\n";
  if (o.targets.empty())
    return llvm::Error::success();
  // The kernels read codes in the gpu_v4 layout (the CPU lowering reads it
  // too); layers it cannot hold stay gptq, with a warning.
  mlir::PassManager pack(&context);
  wq::WQPackOptions packOptions;
  packOptions.layout = "gpu_v4";
  packOptions.output = "model.safetensors";
  packOptions.baseDir = work.str().str();
  pack.addPass(wq::createWQPack(packOptions));
  if (mlir::failed(pack.run(module)))
    return error("repacking for the GPU kernels failed");
  if (llvm::Error err = emitGPUKernels(module, work, o.targets, o.ptxas))
    return err;
  log << "      GPU kernels for " << llvm::join(o.targets, ", ")
      << " assembled by ptxas\n";
  return llvm::Error::success();
}

llvm::Error Compiler::moveIntoPlace(llvm::StringRef absOut) {
  // The old directory (with force) is moved aside first and put back if the
  // rename fails.
  llvm::SmallString<256> old;
  if (fs::exists(absOut)) {
    old = work;
    old += ".old";
    removeTreeOnSignal(old);
    if (std::error_code ec = fs::rename(absOut, old))
      return error("cannot move the old '" + o.outDir +
                   "' aside: " + ec.message());
  }
  if (std::error_code ec = fs::rename(work, absOut)) {
    if (!old.empty()) {
      dontRemoveTreeOnSignal(old);
      (void)fs::rename(old, absOut);
    }
    return error("cannot rename into '" + o.outDir + "': " + ec.message());
  }
  if (!old.empty()) {
    fs::remove_directories(old);
    dontRemoveTreeOnSignal(old);
  }
  return llvm::Error::success();
}

llvm::Expected<CompileResult> Compiler::run() {
  llvm::SmallString<256> absOut(o.outDir);
  fs::make_absolute(absOut);
  std::optional<TempDir> tempDir;
  bool hadState = false; // an interrupted run's, kept whatever happens
  if (o.stream.resume) {
    // A fixed name, kept on errors and signals: the calibration state in it
    // is what the next --resume continues from; everything else in it is
    // rebuilt (so nothing half-written by the interrupted run is used).
    work = llvm::sys::path::parent_path(absOut);
    llvm::sys::path::append(work, "." + llvm::sys::path::filename(absOut) +
                                      ".resume");
    llvm::SmallString<256> state(work);
    llvm::sys::path::append(state, "calibration.state");
    hadState = fs::exists(state);
    if (std::error_code ec = fs::create_directories(work))
      return error("cannot create '" + work + "': " + ec.message());
    std::error_code ec;
    std::vector<std::string> stale;
    for (fs::directory_iterator it(work, ec), e; it != e && !ec;
         it.increment(ec))
      if (llvm::sys::path::filename(it->path()) != "calibration.state" &&
          !isStatisticsFile(llvm::sys::path::filename(it->path()),
                            CalibrateOptions().statsArchive))
        stale.push_back(it->path());
    for (const std::string &path : stale)
      if (fs::remove_directories(path))
        fs::remove(path);
  } else {
    auto created = TempDir::createBeside(absOut);
    if (!created)
      return created.takeError();
    tempDir.emplace(std::move(*created));
    work = tempDir->path();
  }
  auto fail = [&](llvm::Error err) -> llvm::Expected<CompileResult> {
    if (o.stream.resume)
      return error(llvm::toString(std::move(err)) +
                   " (the completed blocks are kept in '" + work.str() +
                   "' for --resume)");
    fs::remove_directories(work);
    return std::move(err);
  };
  auto phaseStart = std::chrono::steady_clock::now();
  auto phase = [&](llvm::StringRef name) {
    auto now = std::chrono::steady_clock::now();
    result.phases.push_back(
        {name.str(), std::chrono::duration<double>(now - phaseStart).count()});
    phaseStart = now;
  };

  // 1. Import.
  auto imported = onnx_import::importONNXModel(o.input, &context);
  if (!imported)
    return fail(imported.takeError());
  // Before anything is written: refused, the run leaves nothing behind
  // (but the state of an interrupted run).
  if (llvm::Error err = checkDiskSpace((*imported)->getModule(),
                                       (*imported)->getArchive().totalBytes())) {
    if (!hadState)
      fs::remove_directories(work);
    return std::move(err);
  }
  llvm::SmallString<256> archivePath(work), mlirPath(work);
  llvm::sys::path::append(archivePath, "model.safetensors");
  llvm::sys::path::append(mlirPath, "model.mlir");
  if (llvm::Error err = (*imported)->getArchive().write(
          archivePath, o.quiet ? "" : "write model.safetensors"))
    return fail(std::move(err));
  mlir::ModuleOp module = (*imported)->getModule();
  const auto &stats = (*imported)->getStats();
  result.linears = stats.linears;
  log << "[1/3] imported " << stats.linears << " linear layers, "
      << stats.tensors << " tensors ("
      << llvm::format("%.1f", stats.bytes / 1048576.0) << " MiB) in "
      << llvm::format("%.2f", lap()) << " s\n";
  log << diskLine;
  phase("import");

  // 2. Calibrate; 3. quantize.
  if ((!o.calib.data.empty() || !o.stream.stats.empty()) &&
      o.quant.method != Method::None) {
    if (llvm::Error err = calibrate(module))
      return fail(std::move(err));
    phaseStart = std::chrono::steady_clock::now(); // calibrate() timed itself
  }
  if (o.quant.method != Method::None) {
    if (llvm::Error err = quantize(module))
      return fail(std::move(err));
    phase("quantize");
  }
  if (llvm::Error err = llvm::writeToOutput(mlirPath, [&](llvm::raw_ostream &os) {
        module.print(os);
        return llvm::Error::success();
      }))
    return fail(std::move(err));

  if (llvm::Error err = moveIntoPlace(absOut))
    return fail(std::move(err));
  if (tempDir)
    tempDir->keep();
  phase("write");
  result.outDir = absOut.str().str();
  if (o.quant.method != Method::None) {
    llvm::SmallString<256> report(absOut);
    llvm::sys::path::append(report, "quant-report.csv");
    result.reportPath = report.str().str();
  }
  if (o.format) {
    // The Hugging Face checkpoint, from the directory just written.
    hf::ExportOptions opt;
    opt.format = *o.format;
    opt.tokenizer = o.calib.tokenizer;
    opt.dampPercent = o.quant.dampPercent;
    opt.trueSequential = o.quant.trueSequential;
    opt.staticGroups = o.quant.staticGroups;
    llvm::SmallString<256> hfDir(absOut);
    llvm::sys::path::append(hfDir, "hf");
    if (llvm::Error err = hf::exportModelDir(absOut, hfDir, opt, results))
      return error(llvm::toString(std::move(err)) + " (the model directory '" +
                   o.outDir + "' was written; no checkpoint)");
    result.hfDir = hfDir.str().str();
  }
  if (o.format)
    phase("export");
  result.seconds = lap();
  printPhases();
  return result;
}

void Compiler::printPhases() {
  log << "phase              seconds   share\n";
  double total = std::max(result.seconds, 1e-9);
  for (const auto &[name, sec] : result.phases)
    log << llvm::format("%-18s %8.2f %6.1f%%\n", name.c_str(), sec,
                        100.0 * sec / total);
  log << llvm::format("%-18s %8.2f\n", "total", result.seconds);
  int64_t run = 0;
  double blockSeconds = 0;
  // Stages 1 .. n-2 are the transformer blocks.
  for (size_t s = 1; s + 1 < stageSeconds.size(); ++s)
    if (stageSeconds[s] > 0)
      ++run, blockSeconds += stageSeconds[s];
  if (run)
    log << llvm::format("calibration: %lld blocks run, %.2f s per block",
                        (long long)run, blockSeconds / run)
        << (result.resumedBlocks ? " (" + std::to_string(result.resumedBlocks) +
                                       " stages resumed)"
                                 : std::string())
        << llvm::format(", activations %.1f MiB per boundary%s\n",
                        result.activationBytes / 1048576.0,
                        result.spilledActivations ? " (memory-mapped file)"
                                                  : "");
}

llvm::Expected<CompileResult> driver::compile(CompileOptions options,
                                              llvm::raw_ostream &log) {
  if (llvm::Error err = validate(options))
    return std::move(err);
  Compiler compiler(options, log);
  auto result = compiler.run();
  if (!result)
    return compiler.withDiagnostics(result.takeError());
  return result;
}
