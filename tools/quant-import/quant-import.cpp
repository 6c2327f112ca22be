//===- quant-import.cpp - ONNX model -> model.mlir + model.safetensors -----===//
// `quant-import model.onnx -o outdir/` writes both files atomically: nothing
// appears in outdir unless the whole import succeeded.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Export/HFExport.h"
#include "quant-mlir/Support/SafeTensors.h"
#include "quant-mlir/Support/OutputPaths.h"
#include "quant-mlir/Target/ONNX/ImportONNX.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OperationSupport.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/Signals.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>

using namespace llvm;
namespace st = quant_mlir::safetensors;

static cl::OptionCategory category("quant-import options");
static cl::opt<std::string> inputPath(cl::Positional, cl::desc("<model.onnx>"),
                                      cl::cat(category));
static cl::opt<std::string> outDir("o", cl::desc("output directory"),
                                   cl::value_desc("dir"), cl::cat(category));
static cl::opt<std::string>
    archiveName("archive-name",
                cl::desc("archive file name inside the output directory "
                         "(and the module's wq.archive)"),
                cl::init("model.safetensors"), cl::cat(category));
static cl::opt<bool> noCleanup("no-cleanup",
                               cl::desc("skip CSE/canonicalization"),
                               cl::cat(category));
static cl::opt<std::string>
    checkpointDir("checkpoint",
                  cl::desc("Hugging Face GPTQ/AWQ/compressed-tensors checkpoint "
                           "whose codes and weights replace the graph's"),
                  cl::value_desc("dir"));
static cl::opt<std::string>
    listArchive("list-archive",
                cl::desc("print the tensors of a safetensors file and exit"),
                cl::value_desc("file.safetensors"), cl::cat(category));
static cl::list<std::string> setInputs(
    "set-input",
    cl::desc("NAME=VALUE: import with graph input NAME fixed to the integer "
             "VALUE (an If on it keeps one branch; e.g. use_cache_branch=1 "
             "imports only the cached branch of a merged decoder)"),
    cl::value_desc("NAME=VALUE"), cl::cat(category));

static int listTensors(StringRef path) {
  auto reader = st::Reader::open(path);
  if (!reader) {
    errs() << "quant-import: error: " << toString(reader.takeError()) << "\n";
    return 1;
  }
  for (const st::TensorInfo &t : (*reader)->tensors()) {
    outs() << t.name << " " << st::dtypeName(t.dtype) << " [";
    interleave(t.shape, outs(), ", ");
    outs() << "]\n";
  }
  return 0;
}

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(
      argc, argv,
      "quant-import: ONNX model -> model.mlir + weight archive\n\n"
      "  quant-import model.onnx -o outdir [--archive-name NAME]\n"
      "  quant-import --list-archive file.safetensors\n");
  if (!listArchive.empty())
    return listTensors(listArchive);
  if (inputPath.empty() || outDir.empty()) {
    errs() << "quant-import: error: usage: quant-import model.onnx -o outdir\n";
    return 2;
  }
  if (archiveName.empty() || StringRef(archiveName).contains('/') ||
      archiveName == "model.mlir") {
    errs() << "quant-import: error: --archive-name must be a plain file name "
              "other than model.mlir\n";
    return 2;
  }
  std::map<std::string, int64_t> fixedInputs;
  for (const std::string &spec : setInputs) {
    auto [name, value] = StringRef(spec).split('=');
    int64_t v;
    if (name.empty() || value.getAsInteger(10, v)) {
      errs() << "quant-import: error: --set-input wants NAME=INTEGER, got '"
             << spec << "'\n";
      return 2;
    }
    fixedInputs[name.str()] = v;
  }
  auto start = std::chrono::steady_clock::now();

  // Import before creating anything: a failing (or crashing) import must
  // not leave an empty output directory behind.
  mlir::MLIRContext context;
  quant_mlir::onnx_import::ImportOptions options;
  options.archiveName = archiveName;
  options.cleanup = !noCleanup;
  options.fixedInputs = fixedInputs;
  auto model =
      quant_mlir::onnx_import::importONNXModel(inputPath, &context, options);
  if (!model) {
    errs() << "quant-import: error: " << toString(model.takeError()) << "\n";
    return 1;
  }
  {
    SmallString<256> mlirOut(outDir), archiveOut(outDir);
    sys::path::append(mlirOut, "model.mlir");
    sys::path::append(archiveOut, archiveName);
    for (StringRef out : {StringRef(mlirOut), StringRef(archiveOut)})
      if (Error err = quant_mlir::checkNotAnInput(out, {inputPath}, "-o")) {
        errs() << "quant-import: error: " << toString(std::move(err)) << "\n";
        return 1;
      }
  }

  bool createdDir = false;
  if (sys::fs::exists(outDir)) {
    if (!sys::fs::is_directory(outDir)) {
      errs() << "quant-import: error: '" << outDir << "' is not a directory\n";
      return 1;
    }
  } else {
    if (std::error_code ec = sys::fs::create_directories(outDir)) {
      errs() << "quant-import: error: cannot create '" << outDir
             << "': " << ec.message() << "\n";
      return 1;
    }
    createdDir = true;
  }
  SmallVector<std::string> temps;
  auto failWith = [&](const Twine &msg) {
    for (const std::string &t : temps) {
      sys::fs::remove(t);
      sys::DontRemoveFileOnSignal(t);
    }
    if (createdDir)
      sys::fs::remove(outDir); // empty again: we only ever wrote temps
    errs() << "quant-import: error: " << msg << "\n";
    return 1;
  };

  const st::Writer *archive = &(*model)->getArchive();
  std::unique_ptr<quant_mlir::hf::CheckpointArchive> checkpoint;
  if (!checkpointDir.empty()) {
    auto mapped = quant_mlir::hf::importCheckpoint(
        (*model)->getModule(), *archive, outDir, checkpointDir, errs());
    if (!mapped)
      return failWith(toString(mapped.takeError()));
    checkpoint = std::move(*mapped);
    archive = &checkpoint->getArchive();
  }

  // Both files go to temps in outdir first (same filesystem, so the renames
  // cannot fail half-way for space reasons).
  SmallString<256> mlirTmp, archiveTmp, mlirPath(outDir), archivePath(outDir);
  sys::path::append(mlirPath, "model.mlir");
  sys::path::append(archivePath, archiveName);
  int fd;
  SmallString<256> pattern(outDir);
  sys::path::append(pattern, ".model.mlir.tmp-%%%%%%%%");
  if (std::error_code ec = sys::fs::createUniqueFile(pattern, fd, mlirTmp))
    return failWith("cannot create a temporary file in '" + outDir +
                    "': " + ec.message());
  temps.push_back(mlirTmp.str().str());
  sys::RemoveFileOnSignal(mlirTmp);
  {
    raw_fd_ostream os(fd, /*shouldClose=*/true);
    (*model)->getModule()->print(os, mlir::OpPrintingFlags());
    os << "\n";
    os.close();
    if (os.has_error()) {
      std::string msg = os.error().message();
      os.clear_error();
      return failWith("cannot write '" + mlirTmp + "': " + msg);
    }
  }
  archiveTmp = outDir;
  sys::path::append(archiveTmp, "." + archiveName + ".partial-" +
                                    Twine(sys::Process::getProcessId()));
  temps.push_back(archiveTmp.str().str());
  sys::RemoveFileOnSignal(archiveTmp);
  if (Error err = archive->write(archiveTmp))
    return failWith(toString(std::move(err)));

  // The archive lands first so that model.mlir never names a missing file.
  if (std::error_code ec = sys::fs::rename(archiveTmp, archivePath))
    return failWith("cannot rename into '" + archivePath + "': " +
                    ec.message());
  sys::DontRemoveFileOnSignal(archiveTmp);
  temps.erase(temps.begin() + 1);
  if (std::error_code ec = sys::fs::rename(mlirTmp, mlirPath)) {
    sys::fs::remove(archivePath);
    return failWith("cannot rename into '" + mlirPath + "': " + ec.message());
  }
  sys::DontRemoveFileOnSignal(mlirTmp);

  const auto &s = (*model)->getStats();
  double secs = std::chrono::duration<double>(
                    std::chrono::steady_clock::now() - start)
                    .count();
  errs() << "quant-import: " << s.nodes << " nodes (opset " << s.opset << "), "
         << s.linears << " wq.linear, " << s.tensors << " tensors, " << s.bytes
         << " bytes, " << format("%.2f", secs) << " s\n";
  return 0;
}
