//===- RawRun.cpp - quant-run --input NAME=FILE.npy --outputs DIR ----------===//
// Runs an entry as the graph defines it (every input given by its ONNX
// name, every output written as NAME.npy): how the tests compare imported
// models with torch's outputs, KV-cache inputs and present.* outputs
// included.
//===----------------------------------------------------------------------===//

#include "RawRun.h"

#include "quant-mlir/Runtime/CPURunner.h"
#include "quant-mlir/Runtime/Npy.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

using namespace quant_mlir;

static llvm::Error makeError(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

llvm::Error quant_mlir::runRaw(mlir::OwningOpRef<mlir::ModuleOp> module,
                               llvm::StringRef modelDir, llvm::StringRef func,
                               llvm::ArrayRef<std::string> inputSpecs,
                               llvm::StringRef outDir) {
  std::map<std::string, HostTensor> given;
  for (const std::string &spec : inputSpecs) {
    auto [name, path] = llvm::StringRef(spec).split('=');
    if (name.empty() || path.empty())
      return makeError("--input wants NAME=FILE.npy, got '" + spec + "'");
    auto t = readNpy(path);
    if (!t)
      return t.takeError();
    if (!given.emplace(name.str(), std::move(*t)).second)
      return makeError("--input '" + name + "' given twice");
  }
  auto compiled = CPUModule::compile(std::move(module), modelDir);
  if (!compiled)
    return compiled.takeError();
  const FunctionSignature *sig = nullptr;
  if (!func.empty())
    sig = (*compiled)->lookup(func);
  else if ((*compiled)->functions().size() == 1)
    sig = &(*compiled)->functions().front();
  if (!sig)
    return makeError(func.empty() ? "the model has several entries; pick one "
                                    "with --func"
                                  : "no function '" + func + "'");
  std::vector<const HostTensor *> inputs;
  for (const std::string &name : sig->inputNames) {
    auto it = given.find(name);
    if (it == given.end())
      return makeError("entry '" + sig->name + "' needs input '" + name +
                       "' (--input " + name + "=FILE.npy)");
    inputs.push_back(&it->second);
  }
  for (const auto &[name, t] : given)
    if (!llvm::is_contained(sig->inputNames, name))
      return makeError("entry '" + sig->name + "' has no input '" + name + "'");
  auto out = (*compiled)->run(sig->name, inputs);
  if (!out)
    return out.takeError();
  if (std::error_code ec = llvm::sys::fs::create_directories(outDir))
    return makeError("cannot create '" + outDir + "': " + ec.message());
  for (auto [i, t] : llvm::enumerate(*out)) {
    std::string name = sig->resultNames[i].empty() ? "output" + std::to_string(i)
                                                   : sig->resultNames[i];
    llvm::SmallString<256> path(outDir);
    llvm::sys::path::append(path, name + ".npy");
    if (llvm::Error err = writeNpy(path, t))
      return err;
  }
  return llvm::Error::success();
}
