//===- quant-compile.cpp - ONNX model to quantized model directory ----------===//
// The tool users run: import, calibrate, quantize (RTN, GPTQ, AWQ) and write
// OUTDIR (model.mlir, model.safetensors, the statistics' shards and
// stats.safetensors.index.json, quant-report.csv)
// atomically, with the flags AutoGPTQ/GPTQModel users know; the flags map
// onto the typed driver API (quant-mlir/Driver/Compile.h).
//===----------------------------------------------------------------------===//

#include "quant-mlir/Driver/Compile.h"
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h"
#include "quant-mlir/Quant/BLASKernels.h"
#include "quant-mlir/Support/Progress.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"

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
enum class ProgressMode { Auto, Lines };
static cl::opt<ProgressMode> progressMode(
    "progress", cl::init(ProgressMode::Auto),
    cl::desc("How the progress bars (one per phase) are shown"),
    cl::values(clEnumValN(ProgressMode::Auto, "auto",
                          "redrawn in place when stderr is a terminal, else none"),
               clEnumValN(ProgressMode::Lines, "lines",
                          "each bar's final state as one line (logs, CI)")),
    cl::cat(category));
static cl::opt<std::string> hfFormat("format",
                                     cl::desc("Also write a Hugging Face checkpoint (gptq, gptq_v2, awq, "
                                              "compressed-tensors) to OUTDIR/hf (quant-export)"),
                                     cl::cat(category));
static cl::OptionCategory streamCategory("Streaming and resuming");
static cl::opt<std::string> blockInputs(
    "block-inputs",
    cl::desc("Inputs of block b+1 during calibration: 'quantized' (block b "
             "quantized; gptq's default, as AutoGPTQ) or 'float' (AutoAWQ; "
             "the default of the others)"),
    cl::cat(streamCategory));
static cl::opt<std::string> activations(
    "activations", cl::init("f32"),
    cl::desc("Storage of the activations between blocks: f32 or f16"),
    cl::cat(streamCategory));
static cl::opt<std::string> maxMemory(
    "max-memory",
    cl::desc("Activations above this size (e.g. 8G, 512M; default half the "
             "physical memory) go to a memory-mapped temporary file"),
    cl::cat(streamCategory));
static cl::opt<std::string> saveStats(
    "save-stats", cl::desc("Also write the calibration statistics to FILE"),
    cl::value_desc("FILE"), cl::cat(streamCategory));
// (Not "--stats": LLVM's own -stats option has that name.)
static cl::opt<std::string> statsFile(
    "stats-file",
    cl::desc("Reuse the statistics in FILE (from --save-stats) instead of "
             "calibrating"),
    cl::value_desc("FILE"), cl::cat(streamCategory));
static cl::opt<bool> resume(
    "resume",
    cl::desc("Keep completed blocks in .OUTDIR.resume beside OUTDIR and "
             "continue an interrupted run with the same inputs and options"),
    cl::cat(streamCategory));
static cl::opt<std::string> diskReserve(
    "disk-reserve",
    cl::desc("Refuse to start unless this much (e.g. 10G) stays free on the "
             "output's file system after the bytes the run will write "
             "(default 0)"),
    cl::cat(streamCategory));
static cl::opt<int64_t> stopAfterBlock(
    "stop-after-block", cl::init(-1), cl::Hidden,
    cl::desc("Testing: fail after calibrating block N (0-based)"),
    cl::cat(streamCategory));

/// "8G", "512M", "4096K", "1000000" -> bytes.
static std::optional<uint64_t> parseBytes(llvm::StringRef text) {
  uint64_t scale = 1;
  if (!text.empty()) {
    char c = llvm::toUpper(text.back());
    if (c == 'K' || c == 'M' || c == 'G' || c == 'T') {
      scale = c == 'K' ? 1ull << 10 : c == 'M' ? 1ull << 20
                                  : c == 'G'   ? 1ull << 30
                                               : 1ull << 40;
      text = text.drop_back();
    }
  }
  double v;
  if (text.empty() || text.getAsDouble(v) || v <= 0)
    return std::nullopt;
  return uint64_t(v * double(scale));
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

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  quant_mlir::quant::configureBLASKernels();
  wq::registerWQPasses();
  cl::HideUnrelatedOptions({&category, &streamCategory});
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
  driver::CompileOptions o;
  o.input = input;
  o.outDir = outDir;
  o.force = force;
  o.quiet = quiet;
  std::optional<driver::Method> m = driver::parseMethod(method);
  if (!m)
    return fail("--method must be rtn, gptq, awq, awq+gptq or none, got '" +
                method + "'");
  driver::QuantizeOptions &q = o.quant;
  q.method = *m;
  q.bits = bits;
  q.groupSize = groupSize;
  if (zeroPoint.getNumOccurrences())
    q.zeroPoint = zeroPoint;
  q.descAct = descAct;
  q.staticGroups = staticGroups;
  q.dampPercent = dampPercent;
  q.blockSize = blockSize;
  q.trueSequential = trueSequential;
  q.fakeQuant = fakeQuant;
  q.scaleType = scaleType;
  q.skip.assign(skip.begin(), skip.end());
  q.overrides.assign(overrides.begin(), overrides.end());
  if (!driver::isAWQ(q.method) &&
      (awqMode.getNumOccurrences() || duoScaling.getNumOccurrences() ||
       noClip.getNumOccurrences() || nGrid.getNumOccurrences() ||
       awqLoss.getNumOccurrences() || awqLossSamples.getNumOccurrences()))
    return fail("--awq-mode, --duo-scaling, --no-clip, --n-grid, --awq-loss and "
                "--awq-loss-samples apply to --method awq and awq+gptq only");
  q.awqMode = awqMode;
  q.duoScaling = duoScaling;
  q.clip = !noClip;
  q.nGrid = nGrid;
  q.awqLoss = awqLoss;
  q.awqLossSamples = awqLossSamples;
  o.calib.data = calibData;
  o.calib.tokenizer = tokenizerPath;
  o.calib.samples = calibSamples;
  o.calib.seqLen = seqLen;
  o.calib.seed = seed;
  o.targets.assign(targets.begin(), targets.end());
  o.ptxas = ptxasPath;
  if (!hfFormat.empty() && !(o.format = hf::parseFormat(hfFormat)))
    return fail("--format must be gptq, gptq_v2, awq or compressed-tensors, got '" +
                hfFormat + "'");

  driver::StreamingOptions &st = o.stream;
  st.blockInputs = blockInputs;
  if (activations != "f32" && activations != "f16")
    return fail("--activations must be f32 or f16, got '" + activations + "'");
  st.f16Activations = activations == "f16";
  if (!maxMemory.empty()) {
    std::optional<uint64_t> bytes = parseBytes(maxMemory);
    if (!bytes)
      return fail("--max-memory must be a size such as 8G or 512M, got '" +
                  maxMemory + "'");
    st.maxMemory = *bytes;
  }
  st.saveStats = saveStats;
  st.stats = statsFile;
  st.resume = resume;
  st.stopAfterBlock = stopAfterBlock;
  if (!diskReserve.empty()) {
    std::optional<uint64_t> bytes = parseBytes(diskReserve);
    if (!bytes)
      return fail("--disk-reserve must be a size such as 10G or 512M, got '" +
                  diskReserve + "'");
    st.diskReserve = *bytes;
  }

  // The passes draw their bars without knowing --quiet: a sink that drops
  // every line silences them too.
  if (quiet)
    Progress::setSink([](llvm::StringRef, bool) {});
  else if (progressMode == ProgressMode::Lines)
    Progress::setSink([](llvm::StringRef line, bool finished) {
      if (finished)
        llvm::errs() << line << "\n";
    });
  auto result = driver::compile(std::move(o), llvm::errs());
  if (!result)
    return fail(llvm::toString(result.takeError()));
  if (!result->reportPath.empty())
    printReport(result->reportPath);
  llvm::outs() << "wrote " << outDir << " in "
               << llvm::format("%.2f", result->seconds) << " s\n";
  if (!result->hfDir.empty())
    llvm::outs() << "wrote " << result->hfDir << "\n";
  return 0;
}
