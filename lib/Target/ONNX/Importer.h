//===- Importer.h - internals of the ONNX importer --------------*- C++ -*-===//
// Declarations shared by the importer's files: ONNXModel.cpp (protobuf,
// initializers, external data), Importer.cpp (values, driver), Symbolic.cpp,
// Emitters.cpp, Weights.cpp, OpRegistry.cpp (operator table, attributes) and
// the per-family operator handlers (*Ops.cpp).
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_LIB_TARGET_ONNX_IMPORTER_H
#define QUANT_MLIR_LIB_TARGET_ONNX_IMPORTER_H

#include "quant-mlir/Target/ONNX/ImportONNX.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Value.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/MemoryBuffer.h"

// Debian's libonnx only ships the ONNX-ML flavour of the generated header.
#ifndef ONNX_ML
#define ONNX_ML 1
#endif
#ifndef ONNX_NAMESPACE
#define ONNX_NAMESPACE onnx
#endif
#include <onnx/onnx_pb.h>

#include <deque>
#include <map>
#include <optional>

namespace quant_mlir::onnx_import {

/// The payload of an initializer or Constant tensor: a little-endian view of
/// numElements() * dtypeSize(dtype) bytes (into the protobuf, an mmapped
/// external-data file, or `owned`).
struct TensorData {
  std::string name;
  int32_t dtype = 0;
  llvm::SmallVector<int64_t> shape;
  llvm::ArrayRef<uint8_t> bytes;
  std::vector<uint8_t> owned;
  /// `bytes` lies in a read-only file mapping (mmapped external data), which
  /// the archive writer may page out behind itself.
  bool mapped = false;

  int64_t numElements() const;
};

/// "float32", "complex64", ...: how errors spell an ONNX dtype.
std::string dtypeName(int32_t dtype);
/// Element size in bytes of the dtypes the importer reads; 0 otherwise.
size_t dtypeSize(int32_t dtype);
/// Compute (signless) element type; null for unsupported dtypes.
mlir::Type dtypeToType(int32_t dtype, mlir::MLIRContext *ctx);
/// Archive dtype of the weight dtypes (f32, f16, bf16, i64, i32, i8, u8).
std::optional<safetensors::DType> dtypeToArchive(int32_t dtype);

struct ImportedModel::Storage {
  onnx::ModelProto proto;
  std::string modelDir;
  llvm::StringMap<std::unique_ptr<llvm::MemoryBuffer>> dataFiles;
  std::deque<TensorData> tensors; // stable addresses
};

/// Parses the protobuf (models up to 2 GB).
llvm::Error loadModelProto(llvm::StringRef path, onnx::ModelProto &proto);
/// Decodes `t` into `out` (raw_data, typed fields or external data, which is
/// mmapped through `storage`). `what` prefixes errors ("initializer 'w'").
llvm::Error decodeTensor(const onnx::TensorProto &t,
                         ImportedModel::Storage &storage, TensorData &out,
                         bool allowBoolAndDouble, llvm::StringRef what);

/// A symbolic integer: a constant or an SSA value (`index`, or `i1` for
/// booleans). Shape arithmetic is evaluated on these at import time.
struct SymInt {
  int64_t c = 0;
  mlir::Value v;
  bool nonNeg = false; // known >= 0 (tensor dims and their sums/products)
  bool fromData = false; // read at run time from a tensor (not shape math)
  bool isConst() const { return !v; }
  static SymInt cst(int64_t c) { return SymInt{c, {}, c >= 0}; }
};

/// What an ONNX value name is bound to during import.
struct OValue {
  /// Compute type (signless elements; dims static where known).
  mlir::RankedTensorType type;
  /// The materialized tensor (may be null until needed).
  mlir::Value tensor;
  /// Small int/bool tensors of rank <= 1, element by element.
  std::optional<llvm::SmallVector<SymInt>> sym;
  /// A weight not yet referenced: materialized as wq.weight on demand, so a
  /// MatMul can consume it as a wq.linear weight without a transpose op.
  const TensorData *init = nullptr;
  bool initTransposed = false; // lazily Transpose(perm=[1,0])'d
};

class Importer;

/// One operator handler: the ONNX opsets whose semantics it implements and
/// the arity it accepts, checked before it runs (so a handler may index its
/// inputs and outputs freely within those bounds).
struct OpHandler {
  std::string name;
  int64_t sinceOpset = 1, untilOpset = 21;
  int minInputs = 0, maxInputs = 0, minOutputs = 1, maxOutputs = 1;
  mlir::LogicalResult (Importer::*fn)() = nullptr;
};

/// The operator table (torch-mlir's onOp registration): name -> handlers,
/// each for an opset range.
class OpRegistry {
public:
  struct Arity {
    int minInputs, maxInputs, minOutputs = 1, maxOutputs = 1;
  };
  void onOp(llvm::StringRef name, int64_t since, Arity arity,
            mlir::LogicalResult (Importer::*fn)(), int64_t until = 21);
  /// The handler of `name` for `opset`, or null.
  const OpHandler *lookup(llvm::StringRef name, int64_t opset) const;
  /// Every registered operator, sorted.
  std::vector<std::string> names() const;
  static const OpRegistry &get();

private:
  llvm::StringMap<std::vector<OpHandler>> table;
};

// Per-family registration (each *Ops.cpp).
void registerElementwiseOps(OpRegistry &r);
void registerShapeOps(OpRegistry &r);
void registerTensorOps(OpRegistry &r);
void registerReductionOps(OpRegistry &r);
void registerLinearOps(OpRegistry &r);
void registerControlFlowOps(OpRegistry &r);

/// How errors print a type.
std::string shapeStr(mlir::Type t);

inline mlir::Type elemOf(mlir::Value v) {
  return mlir::cast<mlir::RankedTensorType>(v.getType()).getElementType();
}
inline int64_t rankOf(mlir::Value v) {
  return mlir::cast<mlir::RankedTensorType>(v.getType()).getRank();
}
/// Normalizes `axis` into [0, rank).
inline std::optional<int64_t> normAxis(int64_t axis, int64_t rank) {
  if (axis < 0)
    axis += rank;
  if (axis < 0 || axis >= rank)
    return std::nullopt;
  return axis;
}
/// The value of a splat constant, if `v` is one.
std::optional<double> splatFloat(mlir::Value v);

class Importer {
public:
  Importer(ImportedModel &result, mlir::MLIRContext *ctx,
           const ImportOptions &options);
  llvm::Error run(llvm::StringRef path);
  /// Imports the graph as function `name`, the inputs in `fixed` replaced by
  /// constants (an If on them folds to one branch).
  llvm::Error buildFunction(llvm::StringRef name,
                            const std::map<std::string, int64_t> &fixed,
                            bool dropUnusedArgs);

  // ---- errors -------------------------------------------------------------
  /// Records a node-level error; always returns failure().
  mlir::LogicalResult fail(const llvm::Twine &msg);
  std::string error;

  // ---- values -------------------------------------------------------------
  mlir::FailureOr<OValue *> input(unsigned i);
  bool hasInput(unsigned i) const;
  mlir::FailureOr<mlir::Value> inputTensor(unsigned i);
  /// The constant elements of a sym input (all must be constant).
  mlir::FailureOr<llvm::SmallVector<int64_t>> constInts(unsigned i);
  mlir::FailureOr<llvm::SmallVector<SymInt>> symInts(unsigned i);
  void setOutput(unsigned i, OValue v);
  void setOutputTensor(unsigned i, mlir::Value v);
  void setOutputSym(unsigned i, llvm::SmallVector<SymInt> elems, bool rank0,
                    mlir::Type elemType);
  mlir::FailureOr<mlir::Value> materialize(OValue &v);
  OValue valueFromTensorData(const TensorData &t, bool isInitializer);

  // ---- shapes -------------------------------------------------------------
  mlir::Value indexConst(int64_t c);
  mlir::Value toIndex(const SymInt &s);
  mlir::Value toInt(const SymInt &s, mlir::Type intType);
  SymInt dimOf(mlir::Value t, unsigned i);
  llvm::SmallVector<SymInt> dimsOf(mlir::Value t);
  llvm::SmallVector<SymInt> dimsOf(OValue &v);
  void setDims(mlir::Value t, llvm::ArrayRef<SymInt> dims);
  mlir::RankedTensorType typeFor(llvm::ArrayRef<SymInt> dims, mlir::Type elem);
  mlir::Value emptyTensor(llvm::ArrayRef<SymInt> dims, mlir::Type elem);
  llvm::SmallVector<mlir::OpFoldResult> foldResults(llvm::ArrayRef<SymInt> s);
  static bool sameSym(const SymInt &a, const SymInt &b);

  SymInt sAdd(SymInt a, SymInt b);
  SymInt sSub(SymInt a, SymInt b);
  SymInt sMul(SymInt a, SymInt b);
  SymInt sDiv(SymInt a, SymInt b); // truncating, like ONNX integer Div
  SymInt sMod(SymInt a, SymInt b);
  SymInt sCeilDiv(SymInt a, SymInt b);
  SymInt sMax(SymInt a, SymInt b);
  SymInt sMin(SymInt a, SymInt b);
  SymInt sCmp(mlir::arith::CmpIPredicate pred, SymInt a, SymInt b);
  SymInt sSelect(SymInt c, SymInt a, SymInt b);

  // ---- emitters (all register result dims) --------------------------------
  using BodyFn = llvm::function_ref<mlir::Value(
      mlir::OpBuilder &, mlir::Location, llvm::ArrayRef<mlir::Value>)>;
  /// Multidirectional-broadcasting elementwise op; `outDims` overrides the
  /// broadcast result shape (Expand).
  mlir::FailureOr<mlir::Value>
  emitElementwise(llvm::ArrayRef<mlir::Value> operands, mlir::Type outElem,
                  BodyFn body,
                  std::optional<llvm::ArrayRef<SymInt>> outDims = {});
  enum class ReduceKind { Sum, Max };
  /// Reduces over sorted, normalized `axes`; keepDims re-inserts size-1 dims.
  mlir::FailureOr<mlir::Value> emitReduce(mlir::Value x,
                                          llvm::ArrayRef<int64_t> axes,
                                          ReduceKind kind, bool keepDims);
  mlir::FailureOr<mlir::Value> emitMean(mlir::Value x,
                                        llvm::ArrayRef<int64_t> axes,
                                        bool keepDims);
  mlir::FailureOr<mlir::Value> emitReshape(mlir::Value x,
                                           llvm::ArrayRef<SymInt> outDims);
  mlir::FailureOr<mlir::Value> emitTranspose(mlir::Value x,
                                             llvm::ArrayRef<int64_t> perm);
  mlir::FailureOr<mlir::Value> emitMatMul(mlir::Value a, mlir::Value b);
  mlir::FailureOr<mlir::Value> emitCast(mlir::Value x, mlir::Type to);
  mlir::FailureOr<mlir::Value> emitSlice(mlir::Value x,
                                         llvm::ArrayRef<SymInt> offsets,
                                         llvm::ArrayRef<SymInt> sizes,
                                         llvm::ArrayRef<SymInt> strides);
  mlir::FailureOr<mlir::Value> emitSoftmax(mlir::Value x, int64_t axis);
  mlir::Value emitFill(llvm::ArrayRef<SymInt> dims, mlir::TypedAttr value);
  static mlir::Value scalarConst(mlir::OpBuilder &b, mlir::Location loc,
                          mlir::Type elem, double value);
  mlir::Value tensorConst(mlir::Type elem, double value); // rank-0 tensor

  // ---- weights ------------------------------------------------------------
  mlir::Value weightRef(const TensorData *t, bool transposed,
                        llvm::StringRef preferredKey);
  std::string archiveKey(const TensorData *t, bool transposed,
                         llvm::StringRef preferredKey);
  mlir::FailureOr<mlir::Value> emitLinear(mlir::Value x, const OValue &w,
                                          const TensorData *bias,
                                          llvm::StringRef moduleName);
  std::string linearName(llvm::StringRef module);

  // ---- nodes (OpRegistry.cpp) ----------------------------------------------
  /// Checks the node against the operator table (domain, opset, arity) and
  /// runs its handler.
  mlir::LogicalResult convertNode(int index);
  /// Converts nodes [begin, end) of `nodes` in order.
  mlir::LogicalResult convertNodes(int begin, int end);

  // Attributes: a present attribute of the wrong type records an error
  // naming it (the handler's result is then discarded), never a default.
  const onnx::AttributeProto *findAttr(llvm::StringRef name);
  int64_t attrInt(llvm::StringRef name, int64_t def);
  float attrFloat(llvm::StringRef name, float def);
  std::optional<llvm::SmallVector<int64_t>> attrInts(llvm::StringRef name);
  std::string attrString(llvm::StringRef name, llvm::StringRef def);
  const onnx::TensorProto *attrTensor(llvm::StringRef name);
  const onnx::GraphProto *attrGraph(llvm::StringRef name);

  // Handler helpers.
  mlir::LogicalResult done(mlir::FailureOr<mlir::Value> r);
  mlir::FailureOr<mlir::Value> floatInput(unsigned i);
  mlir::LogicalResult binaryOperands(mlir::Value &x, mlir::Value &y);
  mlir::FailureOr<std::optional<int64_t>> constScalarInt(unsigned i);

  /// Shape arithmetic: when every present input is a symbolic integer
  /// vector, handlers compute on SymInts at import time instead of tensors.
  struct SymArg {
    llvm::SmallVector<SymInt> elems;
    bool rank0 = false;
    mlir::Type elem;
    bool present = false;
  };
  /// The inputs as SymArgs, or nullopt if some present input is a tensor.
  std::optional<llvm::SmallVector<SymArg>> symbolicArgs();
  mlir::LogicalResult
  symElementwise(llvm::ArrayRef<SymArg> args, llvm::ArrayRef<unsigned> which,
                 mlir::Type outElem,
                 llvm::function_ref<SymInt(llvm::ArrayRef<SymInt>)> fn);

  // ---- operator handlers (one per operator or operator family) ----------
  // ElementwiseOps.cpp
  mlir::LogicalResult onUnaryMath();
  mlir::LogicalResult onGelu();
  mlir::LogicalResult onNegAbsNot();
  mlir::LogicalResult onBinaryArith();
  mlir::LogicalResult onPow();
  mlir::LogicalResult onVariadic();
  mlir::LogicalResult onCompare();
  mlir::LogicalResult onLogical();
  mlir::LogicalResult onWhere();
  mlir::LogicalResult onCast();
  // ShapeOps.cpp
  mlir::LogicalResult onShape();
  mlir::LogicalResult onTranspose();
  mlir::LogicalResult onReshapeLike();
  mlir::LogicalResult onExpand();
  mlir::LogicalResult onConcat();
  mlir::LogicalResult onSlice();
  mlir::LogicalResult onSplit();
  mlir::LogicalResult onTile();
  // TensorOps.cpp
  mlir::LogicalResult onConstant();
  mlir::LogicalResult onIdentity();
  mlir::LogicalResult onGather();
  mlir::LogicalResult onRange();
  mlir::LogicalResult onConstantOfShape();
  mlir::LogicalResult onTrilu();
  mlir::LogicalResult onScatterND();
  // ReductionOps.cpp
  mlir::LogicalResult onSoftmax();
  mlir::LogicalResult onReduce();
  mlir::LogicalResult onLayerNormalization();
  mlir::LogicalResult onCumSum();
  // LinearOps.cpp
  mlir::LogicalResult onMatMul();
  mlir::LogicalResult onGemm();
  mlir::LogicalResult convertMatMul(bool gemm);
  // ControlFlowOps.cpp
  mlir::LogicalResult onIf();

  // ---- state --------------------------------------------------------------
  ImportedModel &result;
  ImportedModel::Storage &storage;
  mlir::MLIRContext *ctx;
  ImportOptions options;
  mlir::OpBuilder b;
  mlir::Location loc;
  int64_t opset = 0;

  const onnx::NodeProto *node = nullptr;
  int nodeIndex = -1;
  /// Producer prefix of the names inside the If branch being imported.
  std::string namePrefix;
  int depth = 0;
  llvm::StringRef stripNamePrefix(llvm::StringRef name) const {
    return name.starts_with(namePrefix) ? name.drop_front(namePrefix.size())
                                        : name;
  }
  llvm::StringMap<OValue> values;
  llvm::StringMap<llvm::SmallVector<int>> consumers;
  llvm::StringSet<> graphOutputs;
  llvm::DenseSet<int> skipNodes;
  std::vector<const onnx::NodeProto *> nodes;
  std::vector<const TensorData *> topInits; // the main graph's initializers

  llvm::DenseMap<std::pair<mlir::Value, unsigned>, SymInt> dimCache;

  struct ArchiveEntry {
    const TensorData *src;
    bool transposed;
  };
  std::map<std::string, ArchiveEntry> archive;
  std::map<std::pair<const TensorData *, bool>, std::string> keyOf;
  std::map<std::string, mlir::Value> weightOps;
  mlir::Operation *weightAnchor = nullptr; // weights sit at the top, in order
  llvm::StringSet<> linearNames;
  int64_t linearCount = 0;
};

/// "model.layers.0.self_attn.q_proj" from "/model/layers.0/self_attn/q_proj/MatMul".
std::string modulePathFromNodeName(llvm::StringRef nodeName);
/// True for names torch gives parameters (not "onnx::MatMul_12", "/x/y").
bool isParameterName(llvm::StringRef name);

/// Input `i` of a shape-arithmetic node as constants; false when some
/// element is only known at run time.
inline bool symConsts(llvm::ArrayRef<Importer::SymArg> args, unsigned i,
                      llvm::SmallVector<int64_t> &out) {
  if (i >= args.size())
    return false;
  for (const SymInt &s : args[i].elems) {
    if (!s.isConst())
      return false;
    out.push_back(s.c);
  }
  return true;
}

inline bool symPresent(llvm::ArrayRef<Importer::SymArg> args, unsigned i) {
  return i < args.size() && args[i].present;
}

} // namespace quant_mlir::onnx_import

#endif // QUANT_MLIR_LIB_TARGET_ONNX_IMPORTER_H
