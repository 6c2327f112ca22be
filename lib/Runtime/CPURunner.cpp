//===- CPURunner.cpp - JIT-compile and run wq modules on the CPU ------------===//
// Binds archive tensors to weight arguments as memref descriptors pointing
// into the mmapped file, so a run copies no weights.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Runtime/CPURunner.h"
#include "quant-mlir/Runtime/Kernels.h"
#include "quant-mlir/Runtime/MicroKernels.h"
#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h"
#include "quant-mlir/Pipelines/Pipelines.h"
#include "quant-mlir/Support/SystemMemory.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/ExecutionEngine/Orc/Mangling.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/TargetSelect.h"

#include <algorithm>
#include <cstdlib>
#include <thread>

using namespace mlir;
using namespace quant_mlir;
using safetensors::DType;

static llvm::Error makeError(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

int64_t HostTensor::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

std::optional<DType> quant_mlir::dtypeFor(Type type) {
  if (type.isF64())
    return DType::F64;
  if (type.isF32())
    return DType::F32;
  if (type.isF16())
    return DType::F16;
  if (type.isBF16())
    return DType::BF16;
  if (type.isInteger(64))
    return DType::I64;
  if (type.isInteger(32))
    return DType::I32;
  if (type.isInteger(16))
    return DType::I16;
  if (type.isSignlessInteger(8) || type.isSignedInteger(8))
    return DType::I8;
  if (type.isUnsignedInteger(8))
    return DType::U8;
  if (type.isInteger(1))
    return DType::BOOL;
  return std::nullopt;
}

static std::string shapeStr(ArrayRef<int64_t> shape) {
  std::string s = "[";
  for (auto [i, d] : llvm::enumerate(shape))
    s += (i ? ", " : "") + (ShapedType::isDynamic(d) ? std::string("?")
                                                      : std::to_string(d));
  return s + "]";
}

namespace {
/// A ranked memref descriptor as the LLVM lowering lays it out:
/// {allocated, aligned, offset, sizes[rank], strides[rank]}, all 8 bytes.
struct Descriptor {
  std::vector<int64_t> words;

  Descriptor(const void *data, ArrayRef<int64_t> shape) {
    int64_t rank = shape.size();
    words.resize(3 + 2 * rank);
    words[0] = words[1] = reinterpret_cast<intptr_t>(data);
    words[2] = 0;
    int64_t stride = 1;
    for (int64_t i = rank - 1; i >= 0; --i) {
      words[3 + i] = shape[i];
      words[3 + rank + i] = stride;
      stride *= shape[i];
    }
  }
};

/// Copies a strided result out of a descriptor into a dense HostTensor.
HostTensor readResult(const int64_t *words, int64_t rank, DType dtype) {
  HostTensor t;
  t.dtype = dtype;
  auto *aligned = reinterpret_cast<const uint8_t *>(words[1]);
  int64_t offset = words[2];
  t.shape.assign(words + 3, words + 3 + rank);
  const int64_t *strides = words + 3 + rank;
  size_t elem = safetensors::dtypeSize(dtype);
  t.data.resize(t.numElements() * elem);
  bool dense = true;
  for (int64_t d = rank - 1, stride = 1; d >= 0; --d) {
    dense &= t.shape[d] == 1 || strides[d] == stride;
    stride *= t.shape[d];
  }
  if (t.data.empty()) // a zero-sized result: its buffer may be null
    return t;
  if (dense) {
    std::memcpy(t.data.data(), aligned + offset * elem, t.data.size());
    return t;
  }
  SmallVector<int64_t> index(rank, 0);
  for (int64_t linear = 0, n = t.numElements(); linear < n; ++linear) {
    int64_t src = offset;
    for (int64_t d = 0; d < rank; ++d)
      src += index[d] * strides[d];
    std::memcpy(t.data.data() + linear * elem, aligned + src * elem, elem);
    for (int64_t d = rank - 1; d >= 0; --d) {
      if (++index[d] < t.shape[d])
        break;
      index[d] = 0;
    }
  }
  return t;
}
} // namespace

CPUModule::~CPUModule() = default;

const FunctionSignature *CPUModule::lookup(StringRef func) const {
  for (const FunctionSignature &sig : signatures)
    if (sig.name == func)
      return &sig;
  return nullptr;
}

llvm::Error CPUModule::registerSymbol(StringRef name, void *address) {
  std::string symbol = name.str();
  engine->registerSymbols([&](llvm::orc::MangleAndInterner interner) {
    llvm::orc::SymbolMap map;
    map[interner(symbol)] = {llvm::orc::ExecutorAddr::fromPtr(address),
                             llvm::JITSymbolFlags::Exported};
    return map;
  });
  return llvm::Error::success();
}

namespace {
/// Whether the archive's files together are at most half the physical
/// memory (CPUCompileOptions::prefaultWeights).
bool archiveFitsInMemory(const safetensors::Reader &reader) {
  uint64_t total = 0;
  for (const std::string &file : reader.files()) {
    uint64_t size = 0;
    if (llvm::sys::fs::file_size(file, size))
      return false;
    total += size;
  }
  uint64_t memory = physicalMemory();
  return memory > 0 && total <= memory / 2;
}
} // namespace

llvm::Expected<std::unique_ptr<CPUModule>>
CPUModule::compile(OwningOpRef<ModuleOp> module, StringRef baseDir,
                   const CPUCompileOptions &compileOptions) {
  const unsigned optLevel = std::min(compileOptions.optLevel, 3u);
  std::unique_ptr<CPUModule> result(new CPUModule());
  MLIRContext *ctx = module->getContext();

  StringRef archiveName = wq::getArchivePath(*module);
  if (!archiveName.empty()) {
    SmallString<256> path(archiveName);
    if (llvm::sys::path::is_relative(path)) {
      path = baseDir;
      llvm::sys::path::append(path, archiveName);
    }
    auto reader = safetensors::Reader::open(path);
    if (!reader)
      return reader.takeError();
    result->weights = std::move(*reader);
  }
  // Joined on every return below (the thread reads result->weights).
  std::thread prefaulter;
  llvm::scope_exit joinPrefault([&] {
    if (prefaulter.joinable())
      prefaulter.join();
  });
  if (compileOptions.prefaultWeights && result->weights &&
      archiveFitsInMemory(*result->weights))
    prefaulter = std::thread(
        [reader = result->weights.get()] { (void)reader->prefault(); });

  PassManager bind(ctx);
  // Stage functions (wq-outline-blocks) run as one program: inline them
  // back into their callers so that weights bind once per entry.
  bool hasCalls = false;
  module->walk([&](func::CallOp call) {
    auto callee = module->lookupSymbol<func::FuncOp>(call.getCallee());
    hasCalls |= callee && !callee.isExternal();
  });
  if (hasCalls) {
    (*module)->removeAttr(wq::WQDialect::kBlocksAttrName);
    bind.addPass(createInlinerPass());
    bind.addPass(createSymbolDCEPass());
  }
  bind.addPass(wq::createWQWeightsToArguments());
  if (failed(bind.run(*module)))
    return makeError("binding weights to arguments failed");

  // Record each function's calling convention and check every weight
  // against the archive before any code is generated.
  for (auto func : module->getOps<func::FuncOp>()) {
    if (func.isExternal() || func.isPrivate())
      continue;
    FunctionSignature sig;
    sig.name = func.getSymName().str();
    for (auto [i, type] : llvm::enumerate(func.getArgumentTypes())) {
      // A static identity-layout memref: a buffer written in place.
      auto buffer = dyn_cast<MemRefType>(type);
      if (buffer && buffer.hasStaticShape() &&
          buffer.getLayout().isIdentity() && !buffer.getMemorySpace() &&
          dtypeFor(buffer.getElementType())) {
        if (!sig.weights.empty())
          return makeError("function '" + sig.name +
                           "': inputs must precede weight arguments");
        sig.inputs.push_back(RankedTensorType::get(buffer.getShape(),
                                                   buffer.getElementType()));
        sig.inOut.push_back(true);
        auto onnxName = func.getArgAttrOfType<StringAttr>(i, "onnx.name");
        sig.inputNames.push_back(onnxName ? onnxName.getValue().str() : "");
        continue;
      }
      auto tensor = dyn_cast<RankedTensorType>(type);
      if (!tensor || !dtypeFor(tensor.getElementType()))
        return makeError("function '" + sig.name + "' argument #" +
                         Twine(i) + " is not a ranked tensor (or static "
                                    "memref) of a supported element type");
      auto name = func.getArgAttrOfType<StringAttr>(
          i, wq::WQDialect::kWeightArgAttrName);
      if (name) {
        const safetensors::TensorInfo *info =
            result->weights ? result->weights->lookup(name.getValue())
                            : nullptr;
        if (!info)
          return makeError("weight '" + name.getValue() +
                           "' is not in the archive" +
                           (result->weights
                                ? " '" + result->weights->path() + "'"
                                : Twine(" (the module names no wq.archive)")));
        if (info->dtype != *dtypeFor(tensor.getElementType()) ||
            ArrayRef<int64_t>(info->shape) != tensor.getShape())
          return makeError(
              "weight '" + name.getValue() + "' is " +
              safetensors::dtypeName(info->dtype) + " " +
              shapeStr(info->shape) + " in the archive but the IR expects " +
              safetensors::dtypeName(*dtypeFor(tensor.getElementType())) +
              " " + shapeStr(tensor.getShape()));
        sig.weights.push_back(name.getValue().str());
        sig.weightTypes.push_back(tensor);
        // Recorded; the LLVM translation has no use for it.
        func.removeArgAttr(i, wq::WQDialect::kWeightArgAttrName);
      } else {
        if (!sig.weights.empty())
          return makeError("function '" + sig.name +
                           "': inputs must precede weight arguments");
        sig.inputs.push_back(tensor);
        sig.inOut.push_back(false);
        auto onnxName = func.getArgAttrOfType<StringAttr>(i, "onnx.name");
        sig.inputNames.push_back(onnxName ? onnxName.getValue().str() : "");
      }
      // Tensor inputs and the read-only mmapped archive are never written
      // in place.
      func.setArgAttr(i, "bufferization.writable", BoolAttr::get(ctx, false));
    }
    for (auto [i, type] : llvm::enumerate(func.getResultTypes())) {
      auto onnxName = func.getResultAttrOfType<StringAttr>(i, "onnx.name");
      sig.resultNames.push_back(onnxName ? onnxName.getValue().str() : "");
      auto tensor = dyn_cast<RankedTensorType>(type);
      if (!tensor || !dtypeFor(tensor.getElementType()))
        return makeError("function '" + sig.name +
                         "' returns something other than a ranked tensor");
      sig.results.push_back(tensor);
    }
    func->setAttr("llvm.emit_c_interface", UnitAttr::get(ctx));
    result->signatures.push_back(std::move(sig));
  }

  // External functions declared before lowering are hooks a caller binds
  // with registerSymbol after compile (wq_calib_record); without any, the
  // code is generated eagerly below.
  bool hasHooks = llvm::any_of(module->getOps<func::FuncOp>(),
                               [](func::FuncOp f) { return f.isExternal(); });

  // The vector family's micro-kernel is generated and JIT-compiled for the
  // host once per process, before any module that calls it.
  if (compileOptions.lowering.kernels == CPUKernels::Vector)
    if (auto target = initVectorKernels(); !target)
      return target.takeError();

  PassManager lower(ctx);
  buildCPULoweringPipeline(lower, compileOptions.lowering);
  if (failed(lower.run(*module)))
    return makeError("lowering to the LLVM dialect failed");

  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  DialectRegistry registry;
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  ctx->appendDialectRegistry(registry);

  if (compileOptions.tuneAllocator)
    kernels::configureAllocator();
  // The IR optimizer gets the host's target machine so that its cost
  // models (loop vectorizer, SLP) see the host's vector ISA; without one
  // the elementwise loops stay scalar. (ExecutionEngine's code generator
  // always targets the host: JITTargetMachineBuilder::detectHost.)
  std::unique_ptr<llvm::TargetMachine> hostMachine;
  if (compileOptions.hostTarget) {
    auto builder = llvm::orc::JITTargetMachineBuilder::detectHost();
    if (builder) {
      builder->setCodeGenOptLevel(static_cast<llvm::CodeGenOptLevel>(optLevel));
      if (auto machine = builder->createTargetMachine())
        hostMachine = std::move(*machine);
      else
        llvm::consumeError(machine.takeError());
    } else {
      llvm::consumeError(builder.takeError());
    }
  }
  // With a target machine, -O3's IR pipeline costs 3-4x the compile time of
  // -O2 for no measured gain on these modules (docs/performance-cpu.md).
  unsigned irOptLevel = compileOptions.irOptLevel.value_or(
      hostMachine ? std::min(optLevel, 2u) : optLevel);
  auto transformer = makeOptimizingTransformer(irOptLevel, /*sizeLevel=*/0,
                                               hostMachine.get());
  ExecutionEngineOptions options;
  options.transformer = transformer;
  SmallVector<StringRef, 1> libs = {QUANT_MLIR_C_RUNNER_UTILS};
  options.sharedLibPaths = libs;
  options.jitCodeGenOptLevel = static_cast<llvm::CodeGenOptLevel>(optLevel);
  auto engine = ExecutionEngine::create(*module, options);
  if (!engine)
    return engine.takeError();
  result->engine = std::move(*engine);
  // Kernels the lowering calls (convert-linalg-to-blas,
  // convert-wq-to-cpu-kernels), bound explicitly rather than found in the
  // process so a tool need not export them.
  for (auto [name, address] :
       {std::pair<StringRef, void *>{"quant_contract_f32",
                                     reinterpret_cast<void *>(
                                         &quant_contract_f32)},
        {"quant_vcontract_f32",
         reinterpret_cast<void *>(&quant_vcontract_f32)},
        {"quant_qlinear_f32",
         reinterpret_cast<void *>(&quant_qlinear_f32)}})
    if (llvm::Error err = result->registerSymbol(name, address))
      return std::move(err);
  // Generate machine code now (ORC materializes on first lookup), so that
  // compile time is not charged to the first run.
  for (const FunctionSignature &sig : result->signatures) {
    if (hasHooks)
      break;
    auto fn = result->engine->lookupPacked("_mlir_ciface_" + sig.name);
    if (!fn)
      return fn.takeError();
  }
  return result;
}

llvm::Expected<std::vector<HostTensor>>
CPUModule::run(StringRef func, ArrayRef<HostTensor> inputs,
               const WeightOverlay *overlay) const {
  SmallVector<const HostTensor *> refs;
  for (const HostTensor &t : inputs)
    refs.push_back(&t);
  return run(func, refs, overlay);
}

llvm::Expected<std::vector<HostTensor>>
CPUModule::run(StringRef func, ArrayRef<const HostTensor *> inputRefs,
               const WeightOverlay *overlay) const {
  return run(func, inputRefs, {}, overlay);
}

llvm::Expected<std::vector<HostTensor>>
CPUModule::run(StringRef func, ArrayRef<const HostTensor *> inputRefs,
               ArrayRef<HostTensor *> buffers,
               const WeightOverlay *overlay) const {
  const FunctionSignature *sig = lookup(func);
  if (!sig)
    return makeError("no public function '" + func + "' in the module");
  size_t numBuffers = llvm::count(sig->inOut, true);
  if (inputRefs.size() + numBuffers != sig->inputs.size() ||
      buffers.size() != numBuffers)
    return makeError("function '" + func + "' takes " +
                     Twine(sig->inputs.size() - numBuffers) + " inputs and " +
                     Twine(numBuffers) + " in/out buffers, got " +
                     Twine(inputRefs.size()) + " and " + Twine(buffers.size()));

  std::vector<Descriptor> descriptors;
  size_t nextInput = 0, nextBuffer = 0;
  for (auto [i, type] : llvm::enumerate(sig->inputs)) {
    const HostTensor &input = sig->inOut[i] ? *buffers[nextBuffer++]
                                            : *inputRefs[nextInput++];
    bool shapeOk = input.shape.size() == size_t(type.getRank());
    for (int64_t d = 0; shapeOk && d < type.getRank(); ++d)
      shapeOk = type.isDynamicDim(d) || type.getDimSize(d) == input.shape[d];
    if (!shapeOk || input.dtype != *dtypeFor(type.getElementType()))
      return makeError("input #" + Twine(i) + " of '" + func + "' is " +
                       safetensors::dtypeName(input.dtype) + " " +
                       shapeStr(input.shape) + ", expected " +
                       safetensors::dtypeName(*dtypeFor(type.getElementType())) +
                       " " + shapeStr(type.getShape()));
    if (input.data.size() !=
        size_t(input.numElements()) * safetensors::dtypeSize(input.dtype))
      return makeError("input #" + Twine(i) + " of '" + func +
                       "' holds the wrong number of bytes");
    descriptors.emplace_back(input.data.data(), input.shape);
  }
  for (const std::string &name : sig->weights) {
    const safetensors::TensorInfo *info = weights->lookup(name);
    const uint8_t *data = weights->bytes(*info).data();
    if (overlay) {
      auto it = overlay->find(name);
      if (it != overlay->end()) {
        if (it->second.size() != info->numBytes())
          return makeError("replacement of weight '" + name + "' holds " +
                           Twine(it->second.size()) + " bytes, expected " +
                           Twine(info->numBytes()));
        data = it->second.data();
      }
    }
    descriptors.emplace_back(data, info->shape);
  }

  // Results come back through one pointer to a struct of descriptors.
  std::vector<size_t> resultOffsets;
  size_t resultWords = 0;
  for (RankedTensorType type : sig->results) {
    resultOffsets.push_back(resultWords);
    resultWords += 3 + 2 * type.getRank();
  }
  std::vector<int64_t> resultStorage(std::max<size_t>(resultWords, 1), 0);

  SmallVector<void *> descPtrs;
  void *resultPtr = resultStorage.data();
  SmallVector<void *> packed;
  if (!sig->results.empty())
    packed.push_back(&resultPtr);
  for (Descriptor &d : descriptors)
    descPtrs.push_back(d.words.data());
  for (void *&p : descPtrs)
    packed.push_back(&p);
  if (llvm::Error err = engine->invokePacked(("_mlir_ciface_" + func).str(),
                                             packed))
    return std::move(err);

  std::vector<HostTensor> outputs;
  llvm::DenseSet<intptr_t> freed;
  for (auto [type, offset] : llvm::zip(sig->results, resultOffsets)) {
    const int64_t *words = resultStorage.data() + offset;
    outputs.push_back(
        readResult(words, type.getRank(), *dtypeFor(type.getElementType())));
    // The callee mallocs its results; free each allocation once, never an
    // input or archive buffer it may have returned as-is.
    intptr_t allocated = words[0];
    bool borrowed = llvm::any_of(descriptors, [&](const Descriptor &d) {
      return d.words[0] == allocated;
    });
    if (!borrowed && allocated && freed.insert(allocated).second)
      std::free(reinterpret_cast<void *>(allocated));
  }
  return outputs;
}
