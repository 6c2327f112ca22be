//===- onnx-fuzzer.cpp - libFuzzer target: ONNX loader + importer -----------===//
// importONNXModel on arbitrary bytes as model.onnx: protobuf decoding,
// external data resolution (relative to the scratch directory), and every
// operator's import. A successful import must produce a module that
// verifies.

#include "FuzzFile.h"

#include "quant-mlir/Target/ONNX/ImportONNX.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"

using namespace quant_mlir;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // One context for many inputs (creating one is slow); renewed now and then
  // so interned types and attributes do not pile up.
  static std::unique_ptr<mlir::MLIRContext> context;
  static unsigned uses = 0;
  if (!context || ++uses % 2000 == 0) {
    context = std::make_unique<mlir::MLIRContext>();
    context->printOpOnDiagnostic(false);
  }
  mlir::ScopedDiagnosticHandler quiet(
      context.get(), [](mlir::Diagnostic &) { return mlir::success(); });
  std::string path = fuzz::writeInput("model.onnx", data, size);
  auto imported = onnx_import::importONNXModel(path, context.get());
  if (!imported) {
    llvm::consumeError(imported.takeError());
    return 0;
  }
  if (mlir::failed(mlir::verify((*imported)->getModule())))
    __builtin_trap(); // the importer must not emit invalid IR
  return 0;
}
