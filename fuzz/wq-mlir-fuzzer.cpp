//===- wq-mlir-fuzzer.cpp - libFuzzer target: parse + verify of wq IR -------===//
// The textual IR quant-opt and quant-run read: the `wq` dialect (ops,
// #wq.scheme / #wq.packing / #wq.stats attributes, their verifiers) with
// the upstream dialects the importer emits beside it.

#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"

using namespace mlir;

/// Upstream MLIR 22's linalg.transpose / linalg.broadcast parsers store the
/// result of a failed `permutation = [...]` / `dimensions = [...]` parse (a
/// null attribute: no list, or anything but integers in it) and crash in
/// NamedAttrList::set; Debian's own
/// `mlir-opt` crashes on `linalg.transpose ins(..) outs(..) permutation =
/// foo` the same way (README, "Tests"). Such inputs are skipped so the
/// target keeps looking for defects of ours.
static bool isIntegerList(llvm::StringRef list) {
  if (list.trim().empty())
    return true;
  llvm::SmallVector<llvm::StringRef> items;
  list.split(items, ',');
  for (llvm::StringRef item : items) {
    item = item.trim();
    item.consume_front("-");
    if (item.empty() || item.size() > 18 ||
        item.find_first_not_of("0123456789") != llvm::StringRef::npos)
      return false;
  }
  return true;
}

static bool hitsUpstreamLinalgArrayParse(llvm::StringRef text) {
  for (llvm::StringRef key : {"permutation", "dimensions"}) {
    for (size_t at = text.find(key); at != llvm::StringRef::npos;
         at = text.find(key, at + 1)) {
      llvm::StringRef rest = text.drop_front(at + key.size()).ltrim();
      if (!rest.consume_front("="))
        continue;
      rest = rest.ltrim();
      if (!rest.consume_front("["))
        return true;
      // Anything but a list of int64 literals fails that parse.
      size_t close = rest.find(']');
      if (close == llvm::StringRef::npos || !isIntegerList(rest.take_front(close)))
        return true;
    }
  }
  return false;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static std::unique_ptr<MLIRContext> context;
  static unsigned uses = 0;
  if (!context || ++uses % 2000 == 0) {
    DialectRegistry registry;
    registry.insert<quant_mlir::wq::WQDialect, arith::ArithDialect,
                    func::FuncDialect, linalg::LinalgDialect, math::MathDialect,
                    tensor::TensorDialect>();
    context = std::make_unique<MLIRContext>(registry);
    context->loadAllAvailableDialects();
    context->printOpOnDiagnostic(false);
  }
  ScopedDiagnosticHandler quiet(context.get(),
                                [](Diagnostic &) { return success(); });
  // The lexer relies on a NUL after the text, as every file buffer has.
  std::string text(reinterpret_cast<const char *>(data), size);
  if (hitsUpstreamLinalgArrayParse(text))
    return 0;
  // parseSourceString verifies after parsing; verify again after a
  // round trip through the printer, which must also not crash.
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(text, context.get());
  if (!module)
    return 0;
  std::string printed;
  llvm::raw_string_ostream os(printed);
  module->print(os);
  // Upstream's printer marks what it cannot print (e.g. an empty symbol
  // reference, `@""`, becomes `@<<INVALID EMPTY SYMBOL>>`): not a wq bug.
  if (llvm::StringRef(printed).contains("<<INVALID"))
    return 0;
  OwningOpRef<ModuleOp> again = parseSourceString<ModuleOp>(printed, context.get());
  if (!again)
    __builtin_trap(); // what the printer wrote must parse back
  return 0;
}
