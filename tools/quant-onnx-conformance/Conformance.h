//===- Conformance.h - ONNX node-test conformance runner internals -*- C++ -*-===//
// Shared by the driver (discovery, one child process per case, the table) and
// the case runner (import, JIT, run, compare) of quant-onnx-conformance.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_TOOLS_ONNX_CONFORMANCE_H
#define QUANT_MLIR_TOOLS_ONNX_CONFORMANCE_H

#include "quant-mlir/Runtime/CPURunner.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <string>
#include <vector>

namespace mlir {
class MLIRContext;
} // namespace mlir

namespace quant_mlir::conformance {

/// One directory of ONNX's backend node tests: model.onnx plus
/// test_data_set_*/{input,output}_N.pb.
struct TestCase {
  std::string name; // directory name, e.g. test_add_bcast
  std::string dir;
  /// The operator the case tests: the op of its node, or "<Op> (expanded)"
  /// for a function body expanded into primitive nodes.
  std::string op;
  /// Distinct op types of the graph's nodes.
  std::vector<std::string> nodeOps;
  /// Graph input / output names, in the order of input_N.pb / output_N.pb.
  std::vector<std::string> inputs, outputs;
  /// Their declared ONNX element types (0 when not a tensor).
  std::vector<int32_t> inputTypes, outputTypes;
  /// Only import it: a case of an operator outside the coverage list, run
  /// to find operators the importer handles that the list lacks.
  bool probeOnly = false;
  /// The default domain's opset of the model.
  int64_t opset = 0;
};

enum class Status { Passed, Refused, Failed };
llvm::StringRef statusName(Status s);

struct CaseResult {
  std::string name, op;
  Status status = Status::Failed;
  /// Where a refusal or failure happened: import, compile, data, run,
  /// compare, crash, timeout.
  std::string stage;
  std::string message;
  double seconds = 0;
};

llvm::json::Value toJSON(const CaseResult &r);
bool fromJSON(const llvm::json::Value &v, CaseResult &r, llvm::json::Path p);

struct RunOptions {
  double rtol = 1e-5;
  double atol = 1e-6;
  unsigned optLevel = 0;
};

/// Imports, compiles and runs one case against every data set (in this
/// process; the driver calls it in a forked child).
CaseResult runCase(const TestCase &tc, mlir::MLIRContext &context,
                   llvm::StringRef workDir, const RunOptions &options);

/// Decodes an ONNX TensorProto file (raw_data or the typed fields).
/// `declaredType` is the graph's ONNX element type for it: ONNX's test
/// generator stores bfloat16 data as uint16 bits.
llvm::Expected<HostTensor> readTensorProto(llvm::StringRef path,
                                           int32_t declaredType);

/// Parses `dir`/model.onnx into a TestCase (name, ops, input/output names).
llvm::Expected<TestCase> loadTestCase(llvm::StringRef dir);

/// Empty when `got` matches `want`: same dtype and shape; floats within
/// atol + rtol * |want| (rtol at least one ulp of f16 / bf16), NaN matching
/// NaN; integers and booleans exactly.
std::string compareTensors(const HostTensor &got, const HostTensor &want,
                           double rtol, double atol);

} // namespace quant_mlir::conformance

#endif // QUANT_MLIR_TOOLS_ONNX_CONFORMANCE_H
