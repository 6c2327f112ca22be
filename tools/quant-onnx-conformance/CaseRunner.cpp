//===- CaseRunner.cpp - import, JIT-compile and check one ONNX node test ---===//
// Goes the way a user's model goes: the public importer API, the weight
// archive written to disk, CPUModule::compile and run; then every data set's
// outputs are compared with the test's expected tensors.
//===----------------------------------------------------------------------===//

#include "Conformance.h"

#include "quant-mlir/Target/ONNX/ImportONNX.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>

using namespace llvm;
using namespace quant_mlir;
using namespace quant_mlir::conformance;

StringRef conformance::statusName(Status s) {
  switch (s) {
  case Status::Passed:
    return "passed";
  case Status::Refused:
    return "refused";
  case Status::Failed:
    return "failed";
  }
  llvm_unreachable("bad status");
}

json::Value conformance::toJSON(const CaseResult &r) {
  return json::Object{{"name", r.name},       {"op", r.op},
                      {"status", statusName(r.status)},
                      {"stage", r.stage},     {"message", r.message},
                      {"seconds", r.seconds}};
}

bool conformance::fromJSON(const json::Value &v, CaseResult &r,
                           json::Path p) {
  json::ObjectMapper m(v, p);
  std::string status;
  if (!m || !m.map("name", r.name) || !m.map("op", r.op) ||
      !m.map("status", status) || !m.map("stage", r.stage) ||
      !m.map("message", r.message) || !m.map("seconds", r.seconds))
    return false;
  r.status = status == "passed"    ? Status::Passed
             : status == "refused" ? Status::Refused
                                   : Status::Failed;
  return true;
}

/// The sorted test_data_set_* directories of a case.
static std::vector<std::string> dataSets(StringRef dir) {
  std::vector<std::string> sets;
  std::error_code ec;
  for (sys::fs::directory_iterator it(dir, ec), end; it != end && !ec;
       it.increment(ec))
    if (sys::path::filename(it->path()).starts_with("test_data_set_"))
      sets.push_back(it->path());
  llvm::sort(sets);
  return sets;
}

static SmallVector<std::string> nameAttrs(mlir::func::FuncOp func,
                                          bool results) {
  SmallVector<std::string> names;
  unsigned n = results ? func.getNumResults() : func.getNumArguments();
  for (unsigned i = 0; i < n; ++i) {
    auto attr = results
                    ? func.getResultAttrOfType<mlir::StringAttr>(i, "onnx.name")
                    : func.getArgAttrOfType<mlir::StringAttr>(i, "onnx.name");
    names.push_back(attr ? attr.getValue().str() : std::string());
  }
  return names;
}

/// Index of `name` in the graph's input/output list, for input_N.pb.
static std::optional<size_t> indexOf(const std::vector<std::string> &names,
                                     StringRef name) {
  auto it = llvm::find(names, name);
  if (it == names.end())
    return std::nullopt;
  return size_t(it - names.begin());
}

CaseResult conformance::runCase(const TestCase &tc, mlir::MLIRContext &context,
                                StringRef workDir, const RunOptions &options) {
  auto start = std::chrono::steady_clock::now();
  CaseResult r;
  r.name = tc.name;
  r.op = tc.op;
  auto finish = [&](Status status, StringRef stage, const Twine &message) {
    r.status = status;
    r.stage = stage.str();
    r.message = message.str();
    r.seconds = std::chrono::duration<double>(
                    std::chrono::steady_clock::now() - start)
                    .count();
    return r;
  };
  // Diagnostics of passes that fail (verifier, lowering) would go to stderr;
  // they belong in the case's message.
  std::string diagnostics;
  mlir::ScopedDiagnosticHandler handler(&context, [&](mlir::Diagnostic &d) {
    raw_string_ostream os(diagnostics);
    os << (diagnostics.empty() ? "" : "; ") << d;
    return mlir::success();
  });
  auto withDiagnostics = [&](std::string msg) {
    if (!diagnostics.empty())
      msg += ": " + diagnostics;
    return msg;
  };

  // 1. Import. An error here is the importer refusing the model.
  SmallString<256> modelPath(tc.dir);
  sys::path::append(modelPath, "model.onnx");
  auto imported = onnx_import::importONNXModel(modelPath, &context);
  if (!imported)
    return finish(Status::Refused, "import", toString(imported.takeError()));
  if (tc.probeOnly)
    return finish(Status::Passed, "import", "imported");
  // @main_graph, or else the module's only public function.
  mlir::ModuleOp importedModule = (*imported)->getModule();
  auto func = importedModule.lookupSymbol<mlir::func::FuncOp>("main_graph");
  if (!func) {
    auto publics = llvm::make_filter_range(
        importedModule.getOps<mlir::func::FuncOp>(),
        [](mlir::func::FuncOp f) { return f.isPublic() && !f.isExternal(); });
    if (llvm::hasSingleElement(publics))
      func = *publics.begin();
  }
  if (!func)
    return finish(Status::Failed, "import",
                  "no @main_graph nor a single public function");
  std::string entry = func.getSymName().str();
  SmallVector<std::string> argNames = nameAttrs(func, false);
  SmallVector<std::string> resultNames = nameAttrs(func, true);

  // 2. Archive to disk as quant-import writes it, then lower and JIT. A
  // model the importer accepted must run: errors from here on are failures.
  SmallString<256> archivePath(workDir);
  sys::path::append(archivePath, "model.safetensors");
  if (Error err = (*imported)->getArchive().write(archivePath))
    return finish(Status::Failed, "compile",
                  "writing the archive: " + toString(std::move(err)));
  mlir::OwningOpRef<mlir::ModuleOp> module((*imported)->getModule().clone());
  imported->reset();
  CPUCompileOptions compileOptions;
  compileOptions.optLevel = options.optLevel;
  auto compiled = CPUModule::compile(std::move(module), workDir, compileOptions);
  if (!compiled)
    return finish(Status::Failed, "compile",
                  withDiagnostics(toString(compiled.takeError())));
  if (!(*compiled)->lookup(entry))
    return finish(Status::Failed, "compile", "@" + entry + " is not public");

  // 3. Every data set.
  std::vector<std::string> sets = dataSets(tc.dir);
  if (sets.empty())
    return finish(Status::Failed, "data", "no test_data_set_* directory");
  for (const std::string &set : sets) {
    StringRef setName = sys::path::filename(set);
    std::vector<HostTensor> inputs;
    for (const std::string &name : argNames) {
      std::optional<size_t> idx = indexOf(tc.inputs, name);
      if (!idx)
        return finish(Status::Failed, "data",
                      "function argument '" + name +
                          "' is no graph input");
      SmallString<256> path(set);
      sys::path::append(path, "input_" + Twine(*idx) + ".pb");
      auto t = readTensorProto(path, tc.inputTypes[*idx]);
      if (!t)
        return finish(Status::Failed, "data", toString(t.takeError()));
      inputs.push_back(std::move(*t));
    }
    auto outputs = (*compiled)->run(entry, inputs);
    if (!outputs)
      return finish(Status::Failed, "run",
                    withDiagnostics(toString(outputs.takeError())));
    if (outputs->size() != tc.outputs.size())
      return finish(Status::Failed, "compare",
                    Twine(outputs->size()) + " outputs, the graph has " +
                        Twine(tc.outputs.size()));
    for (auto [i, got] : llvm::enumerate(*outputs)) {
      std::optional<size_t> idx = indexOf(tc.outputs, resultNames[i]);
      if (!idx)
        return finish(Status::Failed, "compare",
                      "result #" + Twine(i) + " '" + resultNames[i] +
                          "' is no graph output");
      SmallString<256> path(set);
      sys::path::append(path, "output_" + Twine(*idx) + ".pb");
      auto want = readTensorProto(path, tc.outputTypes[*idx]);
      if (!want)
        return finish(Status::Failed, "data", toString(want.takeError()));
      std::string diff =
          compareTensors(got, *want, options.rtol, options.atol);
      if (!diff.empty())
        return finish(Status::Failed, "compare",
                      setName + ": output '" + resultNames[i] + "' " + diff);
    }
  }
  return finish(Status::Passed, "", "");
}
