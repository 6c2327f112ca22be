//===- Importer.cpp - ONNX graph to MLIR: values, shapes, weights ---------===//
// The importer's infrastructure: symbolic shape integers, tensor emitters
// with ONNX broadcasting, the weight archive, and the driver.
//===----------------------------------------------------------------------===//

#include "Importer.h"

#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/ADT/BitVector.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Path.h"

#include <cstring>

using namespace mlir;
using namespace llvm;

namespace quant_mlir::onnx_import {

//===----------------------------------------------------------------------===//
// Names
//===----------------------------------------------------------------------===//

std::string modulePathFromNodeName(StringRef nodeName) {
  // torch.onnx names nodes after the module scope that emitted them.
  if (!nodeName.consume_front("/"))
    return "";
  SmallVector<StringRef> parts;
  nodeName.split(parts, '/');
  if (parts.size() < 2)
    return "";
  parts.pop_back();
  return join(parts, ".");
}

bool isParameterName(StringRef name) {
  return !name.empty() && !name.contains("::") && !name.contains('/') &&
         !name.starts_with("_");
}

//===----------------------------------------------------------------------===//
// Errors and values
//===----------------------------------------------------------------------===//

Importer::Importer(ImportedModel &result, MLIRContext *ctx,
                   const ImportOptions &options)
    : result(result), storage(*result.storage), ctx(ctx), options(options),
      b(ctx), loc(UnknownLoc::get(ctx)) {}

LogicalResult Importer::fail(const Twine &msg) {
  if (!error.empty())
    return failure();
  if (!node) {
    error = msg.str();
    return failure();
  }
  std::string name = node->name();
  if (name.empty() && node->output_size())
    name = node->output(0);
  error = ("node '" + name + "' (" + node->op_type() + "): " + msg).str();
  return failure();
}

bool Importer::hasInput(unsigned i) const {
  return int(i) < node->input_size() && !node->input(int(i)).empty();
}

FailureOr<OValue *> Importer::input(unsigned i) {
  if (!hasInput(i))
    return fail("missing input #" + Twine(i));
  auto it = values.find(node->input(int(i)));
  if (it == values.end())
    return fail("input '" + node->input(int(i)) +
                "' is not defined before use");
  return &it->second;
}

FailureOr<Value> Importer::inputTensor(unsigned i) {
  FailureOr<OValue *> v = input(i);
  if (failed(v))
    return failure();
  return materialize(**v);
}

FailureOr<SmallVector<SymInt>> Importer::symInts(unsigned i) {
  FailureOr<OValue *> v = input(i);
  if (failed(v))
    return failure();
  // A small integer tensor computed from data: its elements are read at run
  // time (Slice/Range/Reshape bounds that shape arithmetic cannot fold).
  if (!(*v)->sym && (*v)->tensor && isa<IntegerType>((*v)->type.getElementType()) &&
      (*v)->type.hasStaticShape() && (*v)->type.getRank() <= 1 &&
      (*v)->type.getNumElements() <= 64) {
    SmallVector<SymInt> elems;
    int64_t n = (*v)->type.getNumElements();
    for (int64_t k = 0; k < n; ++k) {
      SmallVector<Value> at;
      if ((*v)->type.getRank() == 1)
        at.push_back(indexConst(k));
      Value e = tensor::ExtractOp::create(b, loc, (*v)->tensor, at);
      Value idx = (*v)->type.getElementType().isInteger(1)
                      ? Value(arith::IndexCastUIOp::create(
                            b, loc, b.getIndexType(), e))
                      : Value(arith::IndexCastOp::create(
                            b, loc, b.getIndexType(), e));
      elems.push_back(SymInt{0, idx, false, true});
    }
    return elems;
  }
  if (!(*v)->sym)
    return fail("input '" + node->input(int(i)) +
                "' must be a small integer tensor known at import time "
                "(shape arithmetic)");
  return *(*v)->sym;
}

FailureOr<SmallVector<int64_t>> Importer::constInts(unsigned i) {
  FailureOr<SmallVector<SymInt>> s = symInts(i);
  if (failed(s))
    return failure();
  SmallVector<int64_t> out;
  for (const SymInt &e : *s) {
    if (!e.isConst())
      return fail("input '" + node->input(int(i)) +
                  "' must be a constant at import time");
    out.push_back(e.c);
  }
  return out;
}

void Importer::setOutput(unsigned i, OValue v) {
  if (int(i) >= node->output_size() || node->output(int(i)).empty())
    return;
  values[node->output(int(i))] = std::move(v);
}

void Importer::setOutputTensor(unsigned i, Value v) {
  OValue o;
  o.type = cast<RankedTensorType>(v.getType());
  o.tensor = v;
  setOutput(i, std::move(o));
}

void Importer::setOutputSym(unsigned i, SmallVector<SymInt> elems, bool rank0,
                            Type elemType) {
  OValue o;
  SmallVector<int64_t> shape;
  if (!rank0)
    shape.push_back(int64_t(elems.size()));
  o.type = RankedTensorType::get(shape, elemType);
  o.sym = std::move(elems);
  setOutput(i, std::move(o));
}

/// Reads element `i` of an integer payload as int64.
static int64_t readInt(const TensorData &t, int64_t i) {
  const uint8_t *p = t.bytes.data() + i * dtypeSize(t.dtype);
  switch (t.dtype) {
  case onnx::TensorProto::INT64: {
    int64_t v;
    std::memcpy(&v, p, 8);
    return v;
  }
  case onnx::TensorProto::INT32: {
    int32_t v;
    std::memcpy(&v, p, 4);
    return v;
  }
  case onnx::TensorProto::INT8:
    return int8_t(*p);
  default: // uint8, bool
    return *p;
  }
}

OValue Importer::valueFromTensorData(const TensorData &t, bool isInitializer) {
  OValue v;
  Type elem = dtypeToType(t.dtype, ctx);
  v.type = RankedTensorType::get(t.shape, elem);
  int64_t numel = t.numElements();
  bool isInt = isa<IntegerType>(elem);
  // Shape-like integers are evaluated at import time.
  if (isInt && t.shape.size() <= 1 && numel <= 64) {
    SmallVector<SymInt> elems;
    for (int64_t i = 0; i < numel; ++i)
      elems.push_back(SymInt::cst(readInt(t, i)));
    v.sym = std::move(elems);
    return v;
  }
  // Parameters go to the archive; only scalars and small integer tensors
  // are inlined.
  if (isInitializer && !t.shape.empty() && !(isInt && numel < 64)) {
    v.init = &t;
    return v;
  }
  DenseElementsAttr attr;
  if (elem.isInteger(1)) {
    SmallVector<bool> bits;
    for (int64_t i = 0; i < numel; ++i)
      bits.push_back(t.bytes[i] != 0);
    attr = DenseElementsAttr::get(v.type, bits);
  } else {
    size_t es = dtypeSize(t.dtype);
    bool splat = numel > 0;
    for (int64_t i = 1; splat && i < numel; ++i)
      splat = std::memcmp(t.bytes.data(), t.bytes.data() + i * es, es) == 0;
    // A one-element buffer is read as a splat.
    ArrayRef<char> raw(reinterpret_cast<const char *>(t.bytes.data()),
                       splat ? es : t.bytes.size());
    attr = DenseElementsAttr::getFromRawBuffer(v.type, raw);
  }
  v.tensor = arith::ConstantOp::create(b, loc, attr);
  return v;
}

FailureOr<Value> Importer::materialize(OValue &v) {
  // torch.onnx folds identical parameters into one initializer (every
  // RMSNorm weight of a fresh model is ones): a vector parameter read by
  // another module is archived under that module's name, so per-layer
  // weights stay per layer (block splitting, AWQ folding, checkpoints).
  if (v.init && !v.initTransposed) {
    StringRef initName = v.init->name;
    std::string module = node ? modulePathFromNodeName(stripNamePrefix(node->name()))
                              : std::string();
    if (v.init->shape.size() == 1 && isParameterName(initName) &&
        !module.empty() && initName.contains('.') &&
        initName.rsplit('.').first != module) {
      return weightRef(v.init, /*transposed=*/false,
                       module + "." + initName.rsplit('.').second.str());
    }
    if (v.init->shape.size() == 1 && isParameterName(initName))
      return weightRef(v.init, /*transposed=*/false, initName); // uncached
  }
  if (v.tensor)
    return v.tensor;
  if (v.init) {
    Value w = weightRef(v.init, /*transposed=*/false, v.init->name);
    if (v.initTransposed) {
      FailureOr<Value> t = emitTranspose(w, {1, 0});
      if (failed(t))
        return failure();
      w = *t;
    }
    v.tensor = w;
    return w;
  }
  if (v.sym) {
    Type elem = v.type.getElementType();
    bool allConst = llvm::all_of(*v.sym, [](const SymInt &s) { return s.isConst(); });
    if (allConst) {
      SmallVector<APInt> ints;
      for (const SymInt &s : *v.sym)
        ints.push_back(APInt(elem.getIntOrFloatBitWidth(), uint64_t(s.c),
                             /*isSigned=*/true, /*implicitTrunc=*/true));
      v.tensor = arith::ConstantOp::create(
          b, loc, DenseElementsAttr::get(v.type, ints));
    } else {
      SmallVector<Value> elems;
      for (const SymInt &s : *v.sym)
        elems.push_back(toInt(s, elem));
      v.tensor = tensor::FromElementsOp::create(b, loc, v.type, elems);
    }
    return v.tensor;
  }
  return fail("value has no definition");
}

//===----------------------------------------------------------------------===//
// Driver
//===----------------------------------------------------------------------===//

/// The graph inputs that select an If branch: scalar bools read only as
/// the condition of top-level If nodes (optimum's `use_cache_branch`).
static SmallVector<std::string>
branchSelectors(const onnx::GraphProto &g, const llvm::StringSet<> &inits) {
  SmallVector<std::string> out;
  for (const auto &in : g.input()) {
    if (inits.contains(in.name()) || !in.type().has_tensor_type())
      continue;
    const auto &tt = in.type().tensor_type();
    if (tt.elem_type() != onnx::TensorProto::BOOL || !tt.has_shape() ||
        tt.shape().dim_size() > 1 ||
        (tt.shape().dim_size() == 1 && tt.shape().dim(0).dim_value() != 1))
      continue;
    bool onlyIf = true, any = false;
    for (const auto &n : g.node())
      for (int i = 0; i < n.input_size(); ++i)
        if (n.input(i) == in.name()) {
          any = true;
          onlyIf &= n.op_type() == "If" && i == 0;
        }
    if (any && onlyIf)
      out.push_back(in.name());
  }
  return out;
}

Error Importer::buildFunction(StringRef name,
                              const std::map<std::string, int64_t> &fixed,
                              bool dropUnusedArgs) {
  const onnx::GraphProto &g = storage.proto.graph();
  ModuleOp module = *result.module;
  values.clear();
  consumers.clear();
  graphOutputs.clear();
  skipNodes.clear();
  nodes.clear();
  dimCache.clear();
  weightOps.clear();
  weightAnchor = nullptr;
  linearNames.clear();
  loc = NameLoc::get(b.getStringAttr(g.name().empty() ? "graph" : g.name()));

  llvm::StringSet<> initNames;
  for (const auto &t : g.initializer())
    initNames.insert(t.name());
  // Graph inputs become function arguments; batch and sequence stay
  // dynamic. Fixed inputs become import-time constants.
  SmallVector<Type> argTypes;
  SmallVector<std::string> argNames;
  SmallVector<std::pair<std::string, RankedTensorType>> fixedArgs;
  for (const auto &in : g.input()) {
    if (initNames.contains(in.name()))
      continue;
    if (!in.type().has_tensor_type())
      return createStringError("graph input '" + in.name() +
                               "' is not a tensor");
    const auto &tt = in.type().tensor_type();
    Type elem = dtypeToType(tt.elem_type(), ctx);
    if (!elem)
      return createStringError("graph input '" + in.name() +
                               "': unsupported dtype " +
                               dtypeName(tt.elem_type()));
    if (!tt.has_shape())
      return createStringError("graph input '" + in.name() +
                               "' has no rank");
    SmallVector<int64_t> shape;
    for (const auto &d : tt.shape().dim())
      shape.push_back(d.has_dim_value() ? d.dim_value() : ShapedType::kDynamic);
    auto type = RankedTensorType::get(shape, elem);
    if (fixed.count(in.name())) {
      if (!isa<IntegerType>(elem) || type.getNumElements() != 1 ||
          !type.hasStaticShape())
        return createStringError("--set-input: graph input '" + in.name() +
                                 "' is not a one-element integer or bool");
      fixedArgs.push_back({in.name(), type});
      continue;
    }
    argTypes.push_back(type);
    argNames.push_back(in.name());
  }
  b.setInsertionPointToEnd(module.getBody());
  auto func = func::FuncOp::create(b, loc, name,
                                   b.getFunctionType(argTypes, {}));
  Block *entry = func.addEntryBlock();
  b.setInsertionPointToStart(entry);
  for (auto [i, argName] : llvm::enumerate(argNames)) {
    OValue v;
    v.type = cast<RankedTensorType>(argTypes[i]);
    v.tensor = entry->getArgument(unsigned(i));
    values[argName] = v;
  }
  for (const auto &[argName, type] : fixedArgs) {
    OValue v;
    v.type = type;
    v.sym = SmallVector<SymInt>{SymInt::cst(fixed.at(argName))};
    values[argName] = v;
  }
  for (const TensorData *data : topInits)
    values[data->name] = valueFromTensorData(*data, /*isInitializer=*/true);

  for (const auto &n : g.node())
    nodes.push_back(&n);
  for (auto [i, n] : llvm::enumerate(nodes))
    for (const std::string &in : n->input())
      if (!in.empty())
        consumers[in].push_back(int(i));
  for (const auto &out : g.output())
    graphOutputs.insert(out.name());

  if (failed(convertNodes(0, int(nodes.size()))))
    return createStringError(error);
  node = nullptr;

  SmallVector<Value> results;
  SmallVector<Type> resultTypes;
  for (const auto &out : g.output()) {
    auto it = values.find(out.name());
    if (it == values.end())
      return createStringError("graph output '" + out.name() +
                               "' is never computed");
    FailureOr<Value> v = materialize(it->second);
    if (failed(v))
      return createStringError(error);
    results.push_back(*v);
    resultTypes.push_back(v->getType());
  }
  func::ReturnOp::create(b, loc, results);
  func.setType(b.getFunctionType(argTypes, resultTypes));
  for (auto [i, out] : llvm::enumerate(g.output()))
    func.setResultAttr(unsigned(i), "onnx.name", b.getStringAttr(out.name()));

  // An entry of a multi-entry import drops the inputs its branch never
  // reads (the past of the no-cache entry).
  SmallVector<unsigned> keep;
  for (unsigned i = 0; i < entry->getNumArguments(); ++i)
    if (!dropUnusedArgs || !entry->getArgument(i).use_empty())
      keep.push_back(i);
  if (keep.size() != argTypes.size()) {
    llvm::BitVector erase(entry->getNumArguments(), true);
    for (unsigned i : keep)
      erase.reset(i);
    SmallVector<Type> kept;
    SmallVector<std::string> keptNames;
    for (unsigned i : keep) {
      kept.push_back(argTypes[i]);
      keptNames.push_back(argNames[i]);
    }
    entry->eraseArguments(erase);
    argTypes = kept;
    argNames = keptNames;
    func.setType(b.getFunctionType(argTypes, resultTypes));
  }
  for (auto [i, argName] : llvm::enumerate(argNames))
    func.setArgAttr(unsigned(i), "onnx.name", b.getStringAttr(argName));
  return Error::success();
}

Error Importer::run(StringRef path) {
  if (Error err = loadModelProto(path, storage.proto))
    return err;
  StringRef dir = sys::path::parent_path(path);
  storage.modelDir = dir.empty() ? "." : dir.str();
  const onnx::ModelProto &model = storage.proto;

  opset = -1;
  for (const auto &o : model.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") {
      if (opset >= 0)
        return createStringError("'" + path +
                                 "' imports the default ONNX domain twice");
      opset = o.version();
    }
  if (opset < 0)
    return createStringError("'" + path + "' imports no default ONNX opset");
  if (opset < 13 || opset > 21)
    return createStringError("opset " + Twine(opset) +
                             " is not supported (supported: 13..21)");

  const onnx::GraphProto &g = model.graph();
  if (g.output_size() == 0)
    return createStringError("the graph has no outputs");
  result.module = ModuleOp::create(UnknownLoc::get(ctx));
  ModuleOp module = *result.module;
  module->setAttr(quant_mlir::wq::WQDialect::kArchiveAttrName,
                  b.getStringAttr(options.archiveName));

  llvm::StringSet<> initNames;
  for (const auto &t : g.initializer())
    if (!initNames.insert(t.name()).second)
      return createStringError("initializer '" + t.name() +
                               "' is defined twice");
  llvm::StringSet<> inputNames;
  for (const auto &in : g.input())
    if (!initNames.contains(in.name()) &&
        !inputNames.insert(in.name()).second)
      return createStringError("graph input '" + in.name() +
                               "' is declared twice");
  for (const auto &[name, value] : options.fixedInputs)
    if (!inputNames.contains(name))
      return createStringError("--set-input: the graph has no input '" + name +
                               "'");

  // Initializers are decoded once and shared by every entry.
  for (const auto &t : g.initializer()) {
    storage.tensors.emplace_back();
    TensorData &data = storage.tensors.back();
    if (Error err = decodeTensor(t, storage, data, /*allowBoolAndDouble=*/false,
                                 "initializer '" + t.name() + "'"))
      return err;
    topInits.push_back(&data);
  }

  // One entry, or one per value of a branch-selecting input nobody fixed.
  SmallVector<std::pair<std::string, std::map<std::string, int64_t>>> entries;
  std::map<std::string, int64_t> fixed = options.fixedInputs;
  SmallVector<std::string> selectors;
  for (const std::string &s : branchSelectors(g, initNames))
    if (!fixed.count(s))
      selectors.push_back(s);
  if (selectors.size() > 1)
    return createStringError("the graph has " + Twine(selectors.size()) +
                             " branch-selecting inputs ('" + selectors[0] +
                             "', '" + selectors[1] +
                             "'); fix them with --set-input NAME=VALUE");
  if (selectors.empty()) {
    entries.push_back({"main_graph", fixed});
  } else {
    std::string suffix;
    for (char c : selectors[0])
      suffix += isAlnum(c) ? c : '_';
    auto f0 = fixed, f1 = fixed;
    f0[selectors[0]] = 0;
    f1[selectors[0]] = 1;
    entries.push_back({"main_graph", f0});
    entries.push_back({"main_graph_" + suffix, f1});
  }
  for (const auto &[name, values] : entries)
    if (Error err = buildFunction(name, values, entries.size() > 1))
      return err;

  // Internal errors (a malformed op) surface as verifier diagnostics.
  std::string diag;
  {
    ScopedDiagnosticHandler handler(ctx, [&](Diagnostic &d) {
      raw_string_ostream os(diag);
      os << d << "\n";
      return success();
    });
    if (failed(verify(module)))
      return createStringError("importer produced invalid IR: " + diag);
    if (options.cleanup) {
      PassManager pm(ctx);
      pm.addPass(createCSEPass());
      pm.addPass(createCanonicalizerPass());
      if (failed(pm.run(module)))
        return createStringError("cleanup failed: " + diag);
    }
  }

  // Archive exactly the tensors the IR still references.
  std::set<std::string> referenced;
  int64_t linears = 0;
  module.walk([&](Operation *op) {
    if (auto w = dyn_cast<quant_mlir::wq::WeightOp>(op))
      referenced.insert(w.getName().str());
    else if (isa<quant_mlir::wq::LinearOp>(op))
      ++linears;
  });
  uint64_t bytes = 0;
  for (const std::string &key : referenced) {
    const ArchiveEntry &e = archive.at(key);
    const TensorData &t = *e.src;
    safetensors::DType dt = *dtypeToArchive(t.dtype);
    SmallVector<int64_t> shape(t.shape.begin(), t.shape.end());
    // Mmapped external data is paged out behind the writer, and transposes
    // are computed by it chunk by chunk: peak RSS stays far below the
    // weights' size.
    auto source = t.mapped ? safetensors::Writer::Source::FileMapping
                           : safetensors::Writer::Source::Memory;
    if (e.transposed)
      std::swap(shape[0], shape[1]);
    Error err = e.transposed ? result.archive.addTransposed(key, dt, shape,
                                                            t.bytes, source)
                             : result.archive.add(key, dt, shape, t.bytes,
                                                  source);
    if (err)
      return err;
    bytes += t.bytes.size();
  }
  result.archive.setMetadata("format", "pt");
  result.archive.setMetadata("producer", "quant-import");
  result.stats.nodes = int64_t(nodes.size());
  result.stats.linears = linears;
  result.stats.tensors = int64_t(result.archive.size());
  result.stats.bytes = bytes;
  result.stats.opset = opset;
  return Error::success();
}

//===----------------------------------------------------------------------===//
// Entry points
//===----------------------------------------------------------------------===//

ImportedModel::ImportedModel() : storage(std::make_unique<Storage>()) {}
ImportedModel::~ImportedModel() = default;

void registerImportDialects(DialectRegistry &registry) {
  registry.insert<arith::ArithDialect, func::FuncDialect, linalg::LinalgDialect,
                  math::MathDialect, scf::SCFDialect, tensor::TensorDialect,
                  quant_mlir::wq::WQDialect>();
}

Expected<std::unique_ptr<ImportedModel>>
importONNXModel(StringRef path, MLIRContext *context,
                const ImportOptions &options) {
  DialectRegistry registry;
  registerImportDialects(registry);
  context->appendDialectRegistry(registry);
  context->loadDialect<arith::ArithDialect, func::FuncDialect,
                       linalg::LinalgDialect, math::MathDialect,
                       scf::SCFDialect, tensor::TensorDialect, quant_mlir::wq::WQDialect>();
  std::unique_ptr<ImportedModel> model(new ImportedModel());
  Importer importer(*model, context, options);
  if (Error err = importer.run(path))
    return std::move(err);
  return std::move(model);
}

} // namespace quant_mlir::onnx_import
