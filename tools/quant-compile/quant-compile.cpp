//===- quant-compile.cpp - ONNX model to quantized model directory ----------===//
// The driver users run: import, calibrate, quantize (RTN, GPTQ, AWQ) and write
// OUTDIR (model.mlir, model.safetensors, stats.safetensors, quant-report.csv)
// atomically, with the flags AutoGPTQ/GPTQModel users know.
//===----------------------------------------------------------------------===//

#include "quant-mlir/InitAllDialects.h"
#include "quant-mlir/Conversion/Passes.h"
#include "quant-mlir/Data/TokenData.h"
#include "quant-mlir/Export/HFExport.h"
#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"
#include "quant-mlir/Dialect/WQ/Transforms/AWQPlan.h"
#include "quant-mlir/Dialect/WQ/Transforms/LayerQuantizer.h"
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h"
#include "quant-mlir/Runtime/Calibration.h"
#include "quant-mlir/Runtime/CPURunner.h"
#include "quant-mlir/Runtime/CUDARunner.h"
#include "quant-mlir/Conversion/WQToGPU/WQToGPU.h"
#include "quant-mlir/Support/OutputPaths.h"
#include "quant-mlir/Target/ONNX/ImportONNX.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Signals.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/JSON.h"
#include <set>

#include <chrono>

using namespace quant_mlir;
namespace cl = llvm::cl;
namespace fs = llvm::sys::fs;

static cl::OptionCategory category("quant-compile options");
static cl::opt<std::string> input(cl::Positional, cl::Required,
                                  cl::desc("<model.onnx>"), cl::cat(category));
static cl::opt<std::string> outDir("o", cl::Required,
                                   cl::desc("Output directory"),
                                   cl::value_desc("dir"), cl::cat(category));
static cl::opt<std::string> method("method", cl::init("gptq"),
                                   cl::desc("rtn | gptq | awq | awq+gptq | none (import only)"),
                                   cl::cat(category));
static cl::alias methodAlias("quantization-type", cl::aliasopt(method),
                             cl::desc("Alias of --method"), cl::cat(category));
static cl::opt<unsigned> bits("bits", cl::init(4), cl::desc("2, 3, 4 or 8"),
                              cl::cat(category));
static cl::opt<int64_t> groupSize("group-size", cl::init(128),
                                  cl::desc("32, 64, 128, 256, or -1 (per-channel)"),
                                  cl::cat(category));
static cl::opt<bool> zeroPoint("zero-point",
                               cl::desc("Asymmetric: store a zero point per group (sym=False; "
                                        "the default of awq, --zero-point=false turns it off)"),
                               cl::cat(category));
static cl::opt<bool> descAct("desc-act",
                             cl::desc("Act-order: columns by decreasing Hessian diagonal"),
                             cl::cat(category));
static cl::opt<bool> staticGroups("static-groups",
                                  cl::desc("Fix every group's grid up front (GPTQ)"),
                                  cl::cat(category));
static cl::opt<double> dampPercent("damp-percent", cl::init(0.01),
                                   cl::desc("GPTQ dampening, fraction of mean(diag H)"),
                                   cl::cat(category));
static cl::opt<int64_t> blockSize("block-size", cl::init(128),
                                  cl::desc("GPTQ lazy-batch width"),
                                  cl::cat(category));
static cl::opt<bool> trueSequential(
    "true-sequential",
    cl::desc("GPTQ block by block, as AutoGPTQ/GPTQModel: each block's inputs come from the "
             "quantized blocks before it, and its linears are quantized group by group "
             "([q,k,v], [o], [gate,up], [down]) on inputs from the groups quantized before"),
    cl::cat(category));
static cl::opt<std::string> awqMode("awq-mode", cl::init("gemm"),
                                    cl::desc("AWQ output: gemm (packed), fake (dequantized floats) "
                                             "scale (scales folded, float) or clip (folded and clipped, float)"),
                                    cl::cat(category));
static cl::opt<std::string> duoScaling("duo-scaling", cl::init("true"),
                                       cl::desc("AWQ scales: true (x^a / w^(1-a)), false (x^a) or both"),
                                       cl::cat(category));
static cl::opt<bool> noClip("no-clip", cl::desc("AWQ without the clip search"),
                            cl::cat(category));
static cl::opt<int64_t> nGrid("n-grid", cl::init(20),
                              cl::desc("AWQ scale candidates"), cl::cat(category));
static cl::opt<std::string> awqLoss(
    "awq-loss", cl::init("module"),
    cl::desc("AWQ scale-search loss: module (AutoAWQ's: the inspected attention / MLP output, "
             "measured block by block during calibration) or linear (the group's own outputs, "
             "from the Hessian)"),
    cl::cat(category));
static cl::opt<int64_t> awqLossSamples(
    "awq-loss-samples", cl::init(0),
    cl::desc("--awq-loss module: score the candidates on the first N calibration samples "
             "(0: all; the statistics use all of them)"),
    cl::cat(category));
static cl::opt<std::string> calibData("calib-data",
                                      cl::desc("Calibration data: token ids (.npy, .jsonl, .txt) or text"),
                                      cl::cat(category));
static cl::opt<int64_t> calibSamples("calib-samples", cl::init(128),
                                     cl::desc("Calibration samples"),
                                     cl::cat(category));
static cl::alias calibSamplesAlias("calibration-samples",
                                   cl::aliasopt(calibSamples),
                                   cl::desc("Alias of --calib-samples"),
                                   cl::cat(category));
static cl::opt<int64_t> seqLen("seq-len", cl::init(2048),
                               cl::desc("Tokens per calibration sample"),
                               cl::cat(category));
static cl::alias seqLenAlias("max-seq-length", cl::aliasopt(seqLen),
                             cl::desc("Alias of --seq-len"), cl::cat(category));
static cl::opt<uint64_t> seed("seed", cl::init(0),
                              cl::desc("Seed of the calibration sample choice"),
                              cl::cat(category));
static cl::opt<std::string> tokenizerPath("tokenizer",
                                          cl::desc("Tokenizer for text calibration data"),
                                          cl::cat(category));
static cl::list<std::string> skip("skip", cl::CommaSeparated,
                                  cl::desc("Globs of layers left in float (default: lm_head,*.lm_head,*embed*)"),
                                  cl::cat(category));
static cl::list<std::string> overrides("overrides", cl::CommaSeparated,
                                       cl::desc("Per-module overrides GLOB:key=value[:key=value]"),
                                       cl::cat(category));
static cl::opt<bool> fakeQuant("fake-quant",
                               cl::desc("Write dequantized float weights instead of packed codes"),
                               cl::cat(category));
static cl::opt<std::string> scaleType("scale-dtype", cl::init("auto"),
                                      cl::desc("f16, bf16, f32 or auto"),
                                      cl::cat(category));
static cl::list<std::string> targets("target", cl::CommaSeparated,
                                     cl::desc("GPU targets (sm_75, sm_80, sm_86, sm_87, sm_89, sm_90): "
                                              "emit the layers' GEMV and GEMM kernels as PTX and cubin"),
                                     cl::cat(category));
static cl::opt<std::string> ptxasPath("ptxas", cl::init("/usr/local/cuda/bin/ptxas"),
                                      cl::desc("ptxas used to assemble --target kernels"),
                                      cl::cat(category));
static cl::opt<bool> force("force", cl::desc("Replace an existing output directory"),
                           cl::cat(category));
static cl::opt<bool> quiet("quiet", cl::desc("No progress bars"), cl::cat(category));
static cl::opt<std::string> hfFormat("format",
                                     cl::desc("Also write a Hugging Face checkpoint (gptq, gptq_v2, awq, "
                                              "compressed-tensors) to OUTDIR/hf (quant-export)"),
                                     cl::cat(category));

static std::string quoted(llvm::StringRef s) { return "\"" + s.str() + "\""; }

static bool isAWQ() { return method == "awq" || method == "awq+gptq"; }

/// The wq-rtn / wq-gptq / wq-awq options for the flags.
static std::string quantizeOptions(llvm::StringRef dir) {
  std::string opts = "bits=" + std::to_string(bits) +
                     " group-size=" + std::to_string(groupSize) +
                     " zero-point=" + (zeroPoint ? "true" : "false") +
                     " desc-act=" + (descAct ? "true" : "false") +
                     " fake-quant=" + (fakeQuant ? "true" : "false") +
                     " scale-dtype=" + scaleType.getValue() +
                     " output=model.safetensors report=quant-report.csv" +
                     " base-dir=" + quoted(dir);
  if (!skip.empty())
    opts += " skip=" + llvm::join(skip, ",");
  if (!overrides.empty())
    opts += " overrides=" + llvm::join(overrides, ",");
  bool awq = isAWQ();
  if (method == "gptq" || method == "awq+gptq")
    opts += " damp-percent=" + std::to_string(dampPercent) +
            " block-size=" + std::to_string(blockSize) +
            " static-groups=" + (staticGroups ? "true" : "false");
  if (method == "gptq")
    opts += std::string(" true-sequential=") +
            (trueSequential ? "true" : "false");
  if (awq)
    opts += " mode=" + awqMode.getValue() +
            " duo-scaling=" + duoScaling.getValue() +
            " clip=" + (noClip ? "false" : "true") +
            " n-grid=" + std::to_string(nGrid) + " loss=" + awqLoss.getValue() +
            " gptq=" + (method == "awq+gptq" ? "true" : "false") +
            " awq-report=awq-report.csv";
  return opts;
}

/// The wq-rtn / wq-gptq / wq-awq pipeline for the flags.
static std::string quantizePipeline(llvm::StringRef dir) {
  return (isAWQ() ? std::string("wq-awq") : "wq-" + method.getValue()) + "{" +
         quantizeOptions(dir) + "}";
}

/// Prints quant-report.csv as an aligned table.
static void printReport(llvm::StringRef path) {
  auto buf = llvm::MemoryBuffer::getFile(path);
  if (!buf)
    return;
  llvm::SmallVector<llvm::StringRef> lines;
  (*buf)->getBuffer().split(lines, '\n', -1, false);
  llvm::outs() << llvm::format("%-40s %12s %5s %6s %12s %12s\n", "layer",
                               "N x K", "bits", "group", "rel |dW|",
                               "rel tr(dWHdW')");
  for (llvm::StringRef line : llvm::drop_begin(lines)) {
    llvm::SmallVector<llvm::StringRef> f;
    line.split(f, ',');
    if (f.size() < 10)
      continue;
    std::string shape = (f[1] + " x " + f[2]).str();
    llvm::outs() << llvm::format("%-40s %12s %5s %6s %12s %12s\n",
                                 f[0].str().c_str(), shape.c_str(),
                                 f[3].str().c_str(), f[4].str().c_str(),
                                 f[8].str().c_str(),
                                 f[9].starts_with("-") ? "-" : f[9].str().c_str());
  }
}

/// For every quantized layer the GPU kernels support: a GEMV (decode, M = 1)
/// and a GEMM (prefill, M = 16) per target, as PTX from gpu-module-to-binary
/// assembled by ptxas into a cubin, listed in kernels/manifest.json. Layers
/// the kernels cannot take (act-order, shapes) are listed with the reason.
static llvm::Error emitKernels(mlir::ModuleOp module, llvm::StringRef dir) {
  llvm::SmallString<256> kdir(dir);
  llvm::sys::path::append(kdir, "kernels");
  if (std::error_code ec = fs::create_directories(kdir))
    return llvm::createStringError(ec, "cannot create '" + kdir + "'");
  if (!fs::can_execute(ptxasPath))
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "ptxas not found at '" + ptxasPath +
                                       "' (install the CUDA toolkit or pass --ptxas)");
  llvm::json::Array entries;
  std::set<std::string> done;
  llvm::Error err = llvm::Error::success();
  module.walk([&](wq::QuantizedLinearOp op) {
    if (err)
      return;
    wq::SchemeAttr scheme = op.getScheme();
    int64_t k = op.getInput().getType().getShape().back();
    int64_t n = op.getScales().getType().getDimSize(1);
    std::string layer = op.getName().value_or("").str();
    for (auto kind : {wqgpu::KernelConfig::Kind::GEMV,
                      wqgpu::KernelConfig::Kind::GEMM}) {
      wqgpu::KernelConfig cfg;
      cfg.kind = kind;
      cfg.m = kind == wqgpu::KernelConfig::Kind::GEMV ? 1 : 16;
      cfg.blockM = 16;
      cfg.k = k;
      cfg.n = n;
      cfg.bits = scheme.getBits();
      cfg.groupSize = scheme.isPerChannel() ? k : scheme.getGroupSize();
      cfg.zeros = static_cast<bool>(op.getZeros());
      cfg.bias = static_cast<bool>(op.getBias());
      std::string why = scheme.getActOrder() ? "act-order is not supported on the GPU path" : cfg.check();
      for (const std::string &target : targets) {
        int sm = wqgpu::parseChip(target);
        if (sm == 0) {
          err = llvm::createStringError(llvm::inconvertibleErrorCode(),
                                        "bad --target '" + target + "' (expected e.g. sm_87)");
          return;
        }
        cfg.sm = sm;
        llvm::json::Object entry{{"layer", layer}, {"target", target},
                                 {"kind", kind == wqgpu::KernelConfig::Kind::GEMV ? "gemv" : "gemm"}};
        if (!why.empty()) {
          entry["skipped"] = why;
          entries.push_back(std::move(entry));
          continue;
        }
        std::string base = cfg.name() + "." + target;
        entry["kernel"] = cfg.name();
        entry["ptx"] = "kernels/" + base + ".ptx";
        entry["cubin"] = "kernels/" + base + ".cubin";
        entries.push_back(std::move(entry));
        if (!done.insert(base).second)
          continue;
        auto ptx = cuda::compileKernelToPTX(cfg, target);
        if (!ptx) {
          err = ptx.takeError();
          return;
        }
        llvm::SmallString<256> ptxFile(kdir), cubin(kdir);
        llvm::sys::path::append(ptxFile, base + ".ptx");
        llvm::sys::path::append(cubin, base + ".cubin");
        if ((err = llvm::writeToOutput(ptxFile, [&](llvm::raw_ostream &os) {
               os << *ptx;
               return llvm::Error::success();
             })))
          return;
        std::string arch = "-arch=" + target;
        llvm::StringRef args[] = {ptxasPath, arch, "-O3", ptxFile, "-o", cubin};
        std::string msg;
        if (llvm::sys::ExecuteAndWait(ptxasPath, args, std::nullopt, {}, 0, 0,
                                      &msg) != 0) {
          err = llvm::createStringError(llvm::inconvertibleErrorCode(),
                                        "ptxas rejected " + base + ".ptx for " +
                                            target + (msg.empty() ? "" : ": " + msg));
          return;
        }
      }
    }
  });
  if (err)
    return err;
  llvm::SmallString<256> manifest(kdir);
  llvm::sys::path::append(manifest, "manifest.json");
  return llvm::writeToOutput(manifest, [&](llvm::raw_ostream &os) {
    os << llvm::formatv("{0:2}", llvm::json::Value(std::move(entries))) << "\n";
    return llvm::Error::success();
  });
}

/// -o must not replace a directory that holds an input (`model.onnx -o .`
/// with --force would delete the model) nor be an input itself.
static llvm::Error checkOutputDir() {
  return checkNotAnInput(outDir, {input, calibData, tokenizerPath}, "-o");
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  wq::registerWQPasses();
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(
      argc, argv,
      "quant-compile: import an ONNX decoder, calibrate it and quantize its "
      "linear layers\n\n"
      "  quant-compile model.onnx --method gptq --bits 4 --group-size 128 \\\n"
      "      --calib-data ids.npy --calib-samples 128 --seq-len 2048 -o outdir\n");
  auto fail = [](const llvm::Twine &msg) {
    llvm::errs() << "quant-compile: error: " << msg << "\n";
    return 1;
  };
  if (method != "rtn" && method != "gptq" && method != "awq" &&
      method != "awq+gptq" && method != "none")
    return fail("--method must be rtn, gptq, awq, awq+gptq or none, got '" +
                method + "'");
  if (isAWQ() && zeroPoint.getNumOccurrences() == 0)
    zeroPoint = true; // AutoAWQ's zero_point=True
  if (awqMode != "gemm" && awqMode != "fake" && awqMode != "scale" &&
      awqMode != "clip")
    return fail("--awq-mode must be gemm, fake, scale or clip, got '" +
                awqMode + "'");
  if (duoScaling != "true" && duoScaling != "false" && duoScaling != "both")
    return fail("--duo-scaling must be true, false or both, got '" +
                duoScaling + "'");
  if (isAWQ() && calibData.empty())
    return fail("--method " + method + " needs --calib-data");
  if (awqLoss != "module" && awqLoss != "linear")
    return fail("--awq-loss must be module or linear, got '" + awqLoss + "'");
  if (!isAWQ() && (awqMode.getNumOccurrences() || duoScaling.getNumOccurrences() ||
                   noClip.getNumOccurrences() || nGrid.getNumOccurrences() ||
                   awqLoss.getNumOccurrences() || awqLossSamples.getNumOccurrences()))
    return fail("--awq-mode, --duo-scaling, --no-clip, --n-grid, --awq-loss and --awq-loss-samples apply to "
                "--method awq and awq+gptq only");
  if (!targets.empty() && scaleType == "auto")
    scaleType = "f16"; // the GPU kernels compute in f16
  if (method == "gptq" && calibData.empty())
    return fail("--method gptq needs --calib-data");
  if (trueSequential && method != "gptq")
    return fail("--true-sequential applies to --method gptq only");
  if (fs::exists(outDir) && !force)
    return fail("'" + outDir + "' exists; pass --force to replace it");
  std::optional<hf::Format> exportFormat;
  if (!hfFormat.empty() && !(exportFormat = hf::parseFormat(hfFormat)))
    return fail("--format must be gptq, gptq_v2, awq or compressed-tensors, got '" +
                hfFormat + "'");
  if (exportFormat && (method == "none" || fakeQuant))
    return fail("--format needs packed codes (--method rtn|gptq without --fake-quant)");
  auto start = std::chrono::steady_clock::now();
  auto lap = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         start)
        .count();
  };

  if (llvm::Error err = checkOutputDir())
    return fail(llvm::toString(std::move(err)));
  // Everything is built in a temporary directory beside OUTDIR and renamed
  // into place at the end: a failure leaves no partial output, a signal
  // removes it, and one left by a killed run is removed by the next.
  llvm::SmallString<256> absOut(outDir);
  fs::make_absolute(absOut);
  auto tempDir = TempDir::createBeside(absOut);
  if (!tempDir)
    return fail(llvm::toString(tempDir.takeError()));
  llvm::SmallString<256> work(tempDir->path());
  auto cleanup = [&](const llvm::Twine &msg) {
    fs::remove_directories(work);
    return fail(msg);
  };

  mlir::DialectRegistry registry;
  quant_mlir::registerAllDialects(registry);
  mlir::MLIRContext context(registry);
  context.loadAllAvailableDialects();

  // 1. Import.
  auto imported = onnx_import::importONNXModel(input, &context);
  if (!imported)
    return cleanup(llvm::toString(imported.takeError()));
  llvm::SmallString<256> archivePath(work), mlirPath(work), reportPath(work);
  llvm::sys::path::append(archivePath, "model.safetensors");
  llvm::sys::path::append(mlirPath, "model.mlir");
  llvm::sys::path::append(reportPath, "quant-report.csv");
  if (llvm::Error err = (*imported)->getArchive().write(archivePath))
    return cleanup(llvm::toString(std::move(err)));
  mlir::ModuleOp module = (*imported)->getModule();
  const auto &stats = (*imported)->getStats();
  if (!quiet)
    llvm::errs() << "[1/3] imported " << stats.linears << " linear layers, "
                 << stats.tensors << " tensors ("
                 << llvm::format("%.1f", stats.bytes / 1048576.0) << " MiB) in "
                 << llvm::format("%.2f", lap()) << " s\n";

  // 2. Calibrate.
  if (!calibData.empty() && method != "none") {
    std::unique_ptr<data::Tokenizer> tokenizer;
    if (!tokenizerPath.empty()) {
      auto tok = data::Tokenizer::open(tokenizerPath);
      if (!tok)
        return cleanup(llvm::toString(tok.takeError()));
      tokenizer = std::move(*tok);
    }
    auto tokens = data::loadTokens(calibData, tokenizer.get());
    if (!tokens)
      return cleanup(llvm::toString(tokens.takeError()));
    CalibrateOptions opts;
    opts.samples = calibSamples;
    opts.seqLen = seqLen;
    opts.seed = seed;
    opts.dataName = llvm::sys::path::filename(calibData).str();
    opts.quiet = quiet;
    llvm::Expected<CalibrateResult> result = CalibrateResult();
    if (trueSequential) {
      auto quantizer = wq::LayerQuantizer::create(module, "wq-gptq",
                                                  quantizeOptions(work));
      if (!quantizer)
        return cleanup(llvm::toString(quantizer.takeError()));
      result = calibrateSequential(module, work, *tokens, opts, **quantizer);
    } else if (isAWQ() && awqLoss == "module") {
      auto plan = wq::planAWQModuleLoss(module, quantizeOptions(work));
      if (!plan)
        return cleanup(llvm::toString(plan.takeError()));
      result = calibrateAWQ(module, work, *tokens, opts, *plan, awqLossSamples);
    } else {
      result = calibrateModel(module, work, *tokens, opts);
    }
    if (!result)
      return cleanup(llvm::toString(result.takeError()));
    if (!quiet)
      llvm::errs() << "[2/3] calibrated " << result->layers << " layers"
                   << (trueSequential ? " block by block (true-sequential)"
                       : isAWQ() && awqLoss == "module"
                           ? " with AWQ module losses, block by block"
                           : "")
                   << " on "
                   << result->samples << " x " << seqLen << " tokens in "
                   << llvm::format("%.2f", result->seconds) << " s\n";
  }

  // 3. Quantize.
  if (method != "none") {
    mlir::PassManager pm(&context);
    std::string pipeline = quantizePipeline(work);
    if (mlir::failed(mlir::parsePassPipeline(pipeline, pm, llvm::errs())))
      return cleanup("bad quantization options");
    if (mlir::failed(pm.run(module)))
      return cleanup("quantization failed (see the error above)");
    if (!quiet)
      llvm::errs() << "[3/3] " << method << " " << bits << "-bit, group "
                   << groupSize << " done at " << llvm::format("%.2f", lap())
                   << " s\n";
  }
  if (!targets.empty() && method != "none") {
    // The kernels read codes in the gpu_v4 layout (the CPU lowering reads it
    // too); layers it cannot hold stay gptq, with a warning.
    mlir::PassManager pack(&context);
    std::string packPipeline = "wq-pack{layout=gpu_v4 output=model.safetensors base-dir=" +
                               quoted(work) + "}";
    if (mlir::failed(mlir::parsePassPipeline(packPipeline, pack, llvm::errs())) ||
        mlir::failed(pack.run(module)))
      return cleanup("repacking for the GPU kernels failed");
    if (llvm::Error err = emitKernels(module, work))
      return cleanup(llvm::toString(std::move(err)));
    if (!quiet)
      llvm::errs() << "      GPU kernels for " << llvm::join(targets, ", ")
                   << " assembled by ptxas\n";
  }
  if (llvm::Error err = llvm::writeToOutput(mlirPath, [&](llvm::raw_ostream &os) {
        module.print(os);
        return llvm::Error::success();
      }))
    return cleanup("cannot write '" + mlirPath + "': " +
                   llvm::toString(std::move(err)));

  // Into place: the old directory (with --force) is moved aside first.
  llvm::SmallString<256> old;
  if (fs::exists(absOut)) {
    old = work;
    old += ".old";
    removeTreeOnSignal(old);
    if (std::error_code ec = fs::rename(absOut, old))
      return cleanup("cannot move the old '" + outDir + "' aside: " +
                     ec.message());
  }
  if (std::error_code ec = fs::rename(work, absOut)) {
    if (!old.empty()) {
      dontRemoveTreeOnSignal(old);
      (void)fs::rename(old, absOut);
    }
    return cleanup("cannot rename into '" + outDir + "': " + ec.message());
  }
  tempDir->keep();
  if (!old.empty()) {
    fs::remove_directories(old);
    dontRemoveTreeOnSignal(old);
  }

  if (method != "none") {
    llvm::SmallString<256> report(absOut);
    llvm::sys::path::append(report, "quant-report.csv");
    printReport(report);
  }
  llvm::outs() << "wrote " << outDir << " in " << llvm::format("%.2f", lap())
               << " s\n";
  if (exportFormat) {
    // The Hugging Face checkpoint, from the directory just written.
    hf::ExportOptions opt;
    opt.format = *exportFormat;
    opt.tokenizer = tokenizerPath;
    opt.dampPercent = dampPercent;
    opt.trueSequential = trueSequential;
    opt.staticGroups = staticGroups;
    llvm::SmallString<256> hfDir(absOut);
    llvm::sys::path::append(hfDir, "hf");
    if (llvm::Error err = hf::exportModelDir(absOut, hfDir, opt, llvm::errs()))
      return fail(llvm::toString(std::move(err)) + " (the model directory '" +
                  outDir + "' was written; no checkpoint)");
    llvm::outs() << "wrote " << hfDir << "\n";
  }
  return 0;
}
