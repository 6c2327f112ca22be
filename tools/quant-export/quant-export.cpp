//===- quant-export.cpp - quantized model dir -> Hugging Face checkpoint ---===//
// `quant-export MODEL_DIR --format gptq|gptq_v2|awq|compressed-tensors -o
// HF_DIR` writes a directory transformers and vLLM load (lib/Export).
//===----------------------------------------------------------------------===//

#include "quant-mlir/Export/HFExport.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/raw_ostream.h"

using namespace llvm;
namespace hf = quant_mlir::hf;

static cl::OptionCategory category("quant-export options");
static cl::opt<std::string> modelDir(cl::Positional, cl::Required,
                                     cl::desc("<model dir (quant-compile output)>"),
                                     cl::cat(category));
static cl::opt<std::string> outDir("o", cl::Required,
                                   cl::desc("Output Hugging Face directory"),
                                   cl::value_desc("dir"), cl::cat(category));
static cl::opt<std::string> formatName("format", cl::Required,
                                   cl::desc("gptq | gptq_v2 | awq | compressed-tensors"),
                                   cl::cat(category));
static cl::opt<std::string> hfConfig("hf-config",
                                     cl::desc("The model's original config.json (else derived from the IR)"),
                                     cl::cat(category));
static cl::opt<std::string> tokenizer("tokenizer",
                                      cl::desc("Tokenizer file or directory copied into the output"),
                                      cl::cat(category));
static cl::opt<std::string> maxShardSize("max-shard-size", cl::init("5GB"),
                                         cl::desc("Largest weight file (5GB, 500MB, bytes)"),
                                         cl::cat(category));
static cl::opt<double> dampPercent("damp-percent", cl::init(0.01),
                                   cl::desc("Recorded in quantize_config.json"),
                                   cl::cat(category));
static cl::opt<bool> trueSequential("true-sequential", cl::init(true),
                                    cl::desc("Recorded in quantize_config.json"),
                                    cl::cat(category));
static cl::opt<bool> staticGroups("static-groups",
                                  cl::desc("Recorded in quantize_config.json"),
                                  cl::cat(category));
static cl::opt<bool> force("force", cl::desc("Replace an existing output directory"),
                           cl::cat(category));

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(
      argc, argv,
      "quant-export: write a quantized model directory as a Hugging Face "
      "checkpoint\n\n"
      "  quant-export outdir --format gptq -o hf-model [--tokenizer tokenizer.model]\n");
  auto fail = [](const Twine &msg) {
    errs() << "quant-export: error: " << msg << "\n";
    return 1;
  };
  hf::ExportOptions opt;
  auto f = hf::parseFormat(formatName);
  if (!f)
    return fail("--format must be gptq, gptq_v2, awq or compressed-tensors, "
                "got '" + formatName + "'");
  opt.format = *f;
  auto shard = hf::parseShardSize(maxShardSize);
  if (!shard)
    return fail(toString(shard.takeError()));
  opt.maxShardBytes = *shard;
  opt.hfConfig = hfConfig;
  opt.tokenizer = tokenizer;
  opt.force = force;
  opt.dampPercent = dampPercent;
  opt.trueSequential = trueSequential;
  opt.staticGroups = staticGroups;
  if (Error e = hf::exportModelDir(modelDir, outDir, opt, errs()))
    return fail(toString(std::move(e)));
  outs() << "wrote " << outDir << "\n";
  return 0;
}
