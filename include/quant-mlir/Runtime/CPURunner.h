//===- CPURunner.h - JIT-compile and run wq modules on the CPU ---*- C++ -*-===//
// Lowers a tensor-level module, JITs it with MLIR's ExecutionEngine and calls
// its functions with weights bound zero-copy from the mmapped archive.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_RUNTIME_CPURUNNER_H
#define QUANT_MLIR_RUNTIME_CPURUNNER_H

#include "quant-mlir/Pipelines/Pipelines.h"
#include "quant-mlir/Support/SafeTensors.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/Support/Error.h"

#include <map>
#include <memory>
#include <optional>
#include <vector>

namespace mlir {
class ExecutionEngine;
} // namespace mlir

namespace quant_mlir {

/// A dense row-major host tensor (inputs and outputs of a run).
struct HostTensor {
  safetensors::DType dtype = safetensors::DType::F32;
  llvm::SmallVector<int64_t> shape;
  std::vector<uint8_t> data;

  int64_t numElements() const;
  template <typename T> llvm::ArrayRef<T> as() const {
    return {reinterpret_cast<const T *>(data.data()), data.size() / sizeof(T)};
  }
  template <typename T>
  static HostTensor from(safetensors::DType dtype,
                         llvm::ArrayRef<int64_t> shape, llvm::ArrayRef<T> v) {
    HostTensor t{dtype, llvm::SmallVector<int64_t>(shape), {}};
    t.data.assign(reinterpret_cast<const uint8_t *>(v.data()),
                  reinterpret_cast<const uint8_t *>(v.data() + v.size()));
    return t;
  }
};

/// Replacement bytes for archive tensors, by name.
using WeightOverlay = std::map<std::string, std::vector<uint8_t>>;

/// One function's calling convention, recorded before lowering.
struct FunctionSignature {
  std::string name;
  llvm::SmallVector<mlir::RankedTensorType> inputs;  // user inputs
  /// Per input: a memref argument, i.e. a buffer the function writes in
  /// place (the derived decode step's caches); bound by the `buffers` of
  /// CPUModule::run, never copied. `inputs` holds its shape as a tensor.
  llvm::SmallVector<bool> inOut;
  llvm::SmallVector<std::string> weights;            // archive names, in order
  llvm::SmallVector<mlir::RankedTensorType> weightTypes;
  llvm::SmallVector<mlir::RankedTensorType> results;
  /// The ONNX names of inputs and results (`onnx.name`), "" where absent.
  llvm::SmallVector<std::string> inputNames, resultNames;
};

/// How CPUModule::compile lowers and JIT-compiles (docs/performance-cpu.md).
struct CPUCompileOptions {
  CPULoweringOptions lowering;
  /// LLVM code generation level (0-3).
  unsigned optLevel = 3;
  /// Give LLVM's IR optimizer the host's target machine (CPU name and
  /// features), so the loop/SLP vectorizers see AVX2 / AVX-512; false keeps
  /// the target-less IR pipeline (code generation is for the host either way).
  bool hostTarget = true;
  /// IR optimization level; unset: min(optLevel, 2) with the host target
  /// (-O3 costs 3-4x the compile time for no gain), optLevel without.
  std::optional<unsigned> irOptLevel;
  /// Once per process: glibc malloc settings that keep large freed
  /// intermediates in the heap (kernels::configureAllocator).
  bool tuneAllocator = true;
  /// Read the weight archive into memory while the module compiles (on a
  /// second thread; safetensors::Reader::prefault), as onnxruntime does at
  /// session load, so the first run does not wait on the disk for every
  /// weight page. Skipped when the archive is over half the physical
  /// memory (a model streamed block by block must not be pulled in whole).
  bool prefaultWeights = false;
};

class CPUModule {
public:
  /// Takes a tensor-level module whose `wq.archive` is resolved relative to
  /// `baseDir`, binds weights to arguments, lowers and JIT-compiles it.
  /// The archive is opened (mmapped) and every weight is checked against the
  /// IR's type here, so a bad archive fails before anything runs.
  static llvm::Expected<std::unique_ptr<CPUModule>>
  compile(mlir::OwningOpRef<mlir::ModuleOp> module, llvm::StringRef baseDir,
          const CPUCompileOptions &options = {});
  ~CPUModule();

  /// Runs `func` on `inputs` (shapes must match the signature's static dims).
  /// Weights named in `overlay` are read from its buffers (same dtype and
  /// shape as the archive's tensor) instead of the archive: a block re-run
  /// with some layers already quantized, without recompiling.
  llvm::Expected<std::vector<HostTensor>>
  run(llvm::StringRef func, llvm::ArrayRef<HostTensor> inputs,
      const WeightOverlay *overlay = nullptr) const;
  /// The same with inputs by pointer (no copies of shared inputs).
  llvm::Expected<std::vector<HostTensor>>
  run(llvm::StringRef func, llvm::ArrayRef<const HostTensor *> inputs,
      const WeightOverlay *overlay = nullptr) const;
  /// The same for a function with in/out arguments (FunctionSignature::
  /// inOut): `inputs` binds the others in order, `buffers` the in/out ones
  /// in order; the function updates the buffers' bytes in place.
  llvm::Expected<std::vector<HostTensor>>
  run(llvm::StringRef func, llvm::ArrayRef<const HostTensor *> inputs,
      llvm::ArrayRef<HostTensor *> buffers,
      const WeightOverlay *overlay = nullptr) const;

  const FunctionSignature *lookup(llvm::StringRef func) const;
  /// Makes `address` the definition of the external symbol `name` (runtime
  /// hooks such as the calibration recorder). Call before the first run.
  llvm::Error registerSymbol(llvm::StringRef name, void *address);
  llvm::ArrayRef<FunctionSignature> functions() const { return signatures; }
  const safetensors::Reader &archive() const { return *weights; }

private:
  CPUModule() = default;
  std::unique_ptr<safetensors::Reader> weights;
  std::unique_ptr<mlir::ExecutionEngine> engine;
  std::vector<FunctionSignature> signatures;
};

/// Maps an MLIR element type to the archive dtype (F32, F16, BF16, I64, ...).
std::optional<safetensors::DType> dtypeFor(mlir::Type type);

} // namespace quant_mlir

#endif // QUANT_MLIR_RUNTIME_CPURUNNER_H
