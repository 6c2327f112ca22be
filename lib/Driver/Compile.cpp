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
#include "quant-mlir/Support/OutputPaths.h"
#include "quant-mlir/Target/ONNX/ImportONNX.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/Path.h"

#include <chrono>

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
  if (needsCalibration(q.method) && o.calib.data.empty())
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
  return checkNotAnInput(o.outDir, {o.input, o.calib.data, o.calib.tokenizer},
                         "-o");
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
  llvm::Error calibrate(mlir::ModuleOp module);
  llvm::Error quantize(mlir::ModuleOp module);
  llvm::Error moveIntoPlace(llvm::StringRef absOut);

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
};
} // namespace

llvm::Error Compiler::calibrate(mlir::ModuleOp module) {
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
  CalibrateOptions opts;
  opts.samples = o.calib.samples;
  opts.seqLen = o.calib.seqLen;
  opts.seed = o.calib.seed;
  opts.dataName = llvm::sys::path::filename(o.calib.data).str();
  opts.quiet = o.quiet;
  llvm::Expected<CalibrateResult> calibrated = CalibrateResult();
  bool moduleLoss = isAWQ(o.quant.method) && o.quant.awqLoss == "module";
  if (o.quant.trueSequential) {
    auto quantizer =
        wq::LayerQuantizer::create(module, gptqOptions(o.quant, work));
    if (!quantizer)
      return quantizer.takeError();
    calibrated = calibrateSequential(module, work, *tokens, opts, **quantizer);
  } else if (moduleLoss) {
    auto plan = wq::planAWQModuleLoss(module, awqOptions(o.quant, work));
    if (!plan)
      return plan.takeError();
    calibrated = calibrateAWQ(module, work, *tokens, opts, *plan,
                              o.quant.awqLossSamples);
  } else {
    calibrated = calibrateModel(module, work, *tokens, opts);
  }
  if (!calibrated)
    return calibrated.takeError();
  result.calibratedLayers = calibrated->layers;
  log << "[2/3] calibrated " << calibrated->layers << " layers"
      << (o.quant.trueSequential ? " block by block (true-sequential)"
          : moduleLoss             ? " with AWQ module losses, block by block"
                                   : "")
      << " on " << calibrated->samples << " x " << o.calib.seqLen
      << " tokens in " << llvm::format("%.2f", calibrated->seconds) << " s\n";
  return llvm::Error::success();
}

llvm::Error Compiler::quantize(mlir::ModuleOp module) {
  mlir::PassManager pm(&context);
  pm.addPass(createQuantizePass(o.quant, work));
  // The passes report their errors as diagnostics naming the layer; they
  // reach the user through the context's handler (stderr).
  if (mlir::failed(pm.run(module)))
    return error("quantization failed (see the error above)");
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
  auto tempDir = TempDir::createBeside(absOut);
  if (!tempDir)
    return tempDir.takeError();
  work = tempDir->path();
  auto fail = [&](llvm::Error err) -> llvm::Expected<CompileResult> {
    fs::remove_directories(work);
    return std::move(err);
  };

  // 1. Import.
  auto imported = onnx_import::importONNXModel(o.input, &context);
  if (!imported)
    return fail(imported.takeError());
  llvm::SmallString<256> archivePath(work), mlirPath(work);
  llvm::sys::path::append(archivePath, "model.safetensors");
  llvm::sys::path::append(mlirPath, "model.mlir");
  if (llvm::Error err = (*imported)->getArchive().write(archivePath))
    return fail(std::move(err));
  mlir::ModuleOp module = (*imported)->getModule();
  const auto &stats = (*imported)->getStats();
  result.linears = stats.linears;
  log << "[1/3] imported " << stats.linears << " linear layers, "
      << stats.tensors << " tensors ("
      << llvm::format("%.1f", stats.bytes / 1048576.0) << " MiB) in "
      << llvm::format("%.2f", lap()) << " s\n";

  // 2. Calibrate; 3. quantize.
  if (!o.calib.data.empty() && o.quant.method != Method::None)
    if (llvm::Error err = calibrate(module))
      return fail(std::move(err));
  if (o.quant.method != Method::None)
    if (llvm::Error err = quantize(module))
      return fail(std::move(err));
  if (llvm::Error err = llvm::writeToOutput(mlirPath, [&](llvm::raw_ostream &os) {
        module.print(os);
        return llvm::Error::success();
      }))
    return fail(std::move(err));

  if (llvm::Error err = moveIntoPlace(absOut))
    return fail(std::move(err));
  tempDir->keep();
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
  result.seconds = lap();
  return result;
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
