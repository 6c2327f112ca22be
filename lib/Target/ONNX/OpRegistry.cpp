//===- OpRegistry.cpp - the ONNX operator table and node dispatch ---------===//
// Operators are registered with the opset range their handler implements and
// their arity; dispatch checks both before a handler runs, so malformed nodes
// are errors naming the node rather than out-of-range reads. Attribute
// readers check the attribute's type.
//===----------------------------------------------------------------------===//

#include "Importer.h"

#include "mlir/IR/Matchers.h"
#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace llvm;

namespace quant_mlir::onnx_import {

//===----------------------------------------------------------------------===//
// Registry
//===----------------------------------------------------------------------===//

void OpRegistry::onOp(StringRef name, int64_t since, Arity arity,
                      LogicalResult (Importer::*fn)(), int64_t until) {
  table[name].push_back(OpHandler{name.str(), since, until, arity.minInputs,
                                  arity.maxInputs, arity.minOutputs,
                                  arity.maxOutputs, fn});
}

const OpHandler *OpRegistry::lookup(StringRef name, int64_t opset) const {
  auto it = table.find(name);
  if (it == table.end())
    return nullptr;
  for (const OpHandler &h : it->second)
    if (opset >= h.sinceOpset && opset <= h.untilOpset)
      return &h;
  return nullptr;
}

std::vector<std::string> OpRegistry::names() const {
  std::vector<std::string> out;
  for (const auto &e : table)
    out.push_back(e.getKey().str());
  llvm::sort(out);
  return out;
}

const OpRegistry &OpRegistry::get() {
  static const OpRegistry registry = [] {
    OpRegistry r;
    registerElementwiseOps(r);
    registerShapeOps(r);
    registerTensorOps(r);
    registerReductionOps(r);
    registerLinearOps(r);
    registerControlFlowOps(r);
    return r;
  }();
  return registry;
}

std::vector<std::string> supportedOperators() {
  return OpRegistry::get().names();
}

//===----------------------------------------------------------------------===//
// Dispatch
//===----------------------------------------------------------------------===//

LogicalResult Importer::convertNode(int index) {
  nodeIndex = index;
  StringRef op = node->op_type();
  if (!node->domain().empty() && node->domain() != "ai.onnx")
    return fail("unsupported operator (domain '" + node->domain() + "')");
  const OpRegistry &registry = OpRegistry::get();
  const OpHandler *h = registry.lookup(op, opset);
  if (!h) {
    auto all = registry.names();
    if (llvm::is_contained(all, op.str()))
      return fail("not supported at opset " + Twine(opset));
    return fail("unsupported operator");
  }
  int nIn = node->input_size(), nOut = node->output_size();
  // Trailing empty names are absent optional inputs/outputs.
  while (nIn > 0 && node->input(nIn - 1).empty())
    --nIn;
  auto range = [](int lo, int hi) {
    if (hi < 0)
      return ("at least " + Twine(lo)).str();
    return lo == hi ? Twine(lo).str() : (Twine(lo) + ".." + Twine(hi)).str();
  };
  if (nIn < h->minInputs || (h->maxInputs >= 0 && nIn > h->maxInputs))
    return fail("has " + Twine(nIn) + " inputs, expected " +
                range(h->minInputs, h->maxInputs));
  for (int i = 0; i < h->minInputs; ++i)
    if (node->input(i).empty())
      return fail("required input #" + Twine(i) + " is empty");
  if (nOut < h->minOutputs || (h->maxOutputs >= 0 && nOut > h->maxOutputs))
    return fail("has " + Twine(nOut) + " outputs, expected " +
                range(h->minOutputs, h->maxOutputs));
  if (h->minOutputs > 0 && node->output(0).empty())
    return fail("output #0 has no name");
  if (failed((this->*(h->fn))()) || !error.empty())
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// Attributes
//===----------------------------------------------------------------------===//

static StringRef attrTypeName(int type) {
  using A = onnx::AttributeProto;
  switch (type) {
  case A::FLOAT:
    return "FLOAT";
  case A::INT:
    return "INT";
  case A::STRING:
    return "STRING";
  case A::TENSOR:
    return "TENSOR";
  case A::GRAPH:
    return "GRAPH";
  case A::FLOATS:
    return "FLOATS";
  case A::INTS:
    return "INTS";
  case A::STRINGS:
    return "STRINGS";
  default:
    return "UNDEFINED";
  }
}

const onnx::AttributeProto *Importer::findAttr(StringRef name) {
  for (const auto &a : node->attribute())
    if (a.name() == name)
      return &a;
  return nullptr;
}

/// The attribute `name` if it is present with type `type`; records an
/// error (and returns null) if it has another type.
static const onnx::AttributeProto *
typedAttr(Importer &im, StringRef name, onnx::AttributeProto::AttributeType type) {
  const onnx::AttributeProto *a = im.findAttr(name);
  if (!a)
    return nullptr;
  // Old writers leave `type` unset; accept those when the payload matches.
  int t = a->type();
  if (t == onnx::AttributeProto::UNDEFINED) {
    using A = onnx::AttributeProto;
    if (a->has_i() && type == A::INT)
      return a;
    if (a->has_f() && type == A::FLOAT)
      return a;
    if (a->has_s() && type == A::STRING)
      return a;
    if (a->ints_size() && type == A::INTS)
      return a;
  }
  if (t != type) {
    (void)im.fail("attribute '" + name + "' must be " + attrTypeName(type) +
                  ", got " + attrTypeName(t));
    return nullptr;
  }
  return a;
}

int64_t Importer::attrInt(StringRef name, int64_t def) {
  const auto *a = typedAttr(*this, name, onnx::AttributeProto::INT);
  return a ? a->i() : def;
}

float Importer::attrFloat(StringRef name, float def) {
  const auto *a = typedAttr(*this, name, onnx::AttributeProto::FLOAT);
  return a ? a->f() : def;
}

std::optional<SmallVector<int64_t>> Importer::attrInts(StringRef name) {
  const auto *a = typedAttr(*this, name, onnx::AttributeProto::INTS);
  if (!a)
    return std::nullopt;
  return SmallVector<int64_t>(a->ints().begin(), a->ints().end());
}

std::string Importer::attrString(StringRef name, StringRef def) {
  const auto *a = typedAttr(*this, name, onnx::AttributeProto::STRING);
  return a ? a->s() : def.str();
}

const onnx::TensorProto *Importer::attrTensor(StringRef name) {
  const auto *a = typedAttr(*this, name, onnx::AttributeProto::TENSOR);
  return a ? &a->t() : nullptr;
}

const onnx::GraphProto *Importer::attrGraph(StringRef name) {
  const auto *a = typedAttr(*this, name, onnx::AttributeProto::GRAPH);
  return a ? &a->g() : nullptr;
}

//===----------------------------------------------------------------------===//
// Handler helpers
//===----------------------------------------------------------------------===//

std::optional<double> splatFloat(Value v) {
  DenseElementsAttr dense;
  if (!matchPattern(v, m_Constant(&dense)) || !dense.isSplat())
    return std::nullopt;
  if (auto f = dyn_cast<FloatAttr>(dense.getSplatValue<Attribute>()))
    return f.getValueAsDouble();
  if (auto i = dyn_cast<IntegerAttr>(dense.getSplatValue<Attribute>()))
    return double(i.getValue().getSExtValue());
  return std::nullopt;
}

LogicalResult Importer::done(FailureOr<Value> r) {
  if (failed(r))
    return failure();
  setOutputTensor(0, *r);
  return success();
}

FailureOr<Value> Importer::floatInput(unsigned i) {
  FailureOr<Value> x = inputTensor(i);
  if (failed(x))
    return failure();
  if (!isa<FloatType>(elemOf(*x)))
    return fail("expects a float tensor, got " + shapeStr(x->getType()));
  return *x;
}

LogicalResult Importer::binaryOperands(Value &x, Value &y) {
  FailureOr<Value> xv = inputTensor(0), yv = inputTensor(1);
  if (failed(xv) || failed(yv))
    return failure();
  x = *xv;
  y = *yv;
  if (elemOf(x) != elemOf(y))
    return fail("operand element types differ: " + shapeStr(x.getType()) +
                " vs " + shapeStr(y.getType()));
  return success();
}

FailureOr<std::optional<int64_t>> Importer::constScalarInt(unsigned i) {
  if (!hasInput(i))
    return std::optional<int64_t>();
  FailureOr<OValue *> v = input(i);
  if (failed(v))
    return failure();
  if (!(*v)->sym || (*v)->sym->size() != 1 || !(*v)->sym->front().isConst())
    return std::optional<int64_t>();
  return std::optional<int64_t>((*v)->sym->front().c);
}

std::optional<SmallVector<Importer::SymArg>> Importer::symbolicArgs() {
  SmallVector<SymArg> args;
  bool any = false;
  for (int i = 0; i < node->input_size(); ++i) {
    if (node->input(i).empty()) {
      args.push_back({});
      continue;
    }
    auto it = values.find(node->input(i));
    if (it == values.end() || !it->second.sym)
      return std::nullopt;
    args.push_back({*it->second.sym, it->second.type.getRank() == 0,
                    it->second.type.getElementType(), true});
    any = true;
  }
  if (!any)
    return std::nullopt;
  return args;
}

LogicalResult
Importer::symElementwise(ArrayRef<SymArg> args, ArrayRef<unsigned> which,
                         Type outElem,
                         llvm::function_ref<SymInt(ArrayRef<SymInt>)> fn) {
  size_t n = 1;
  bool rank0 = true;
  for (unsigned i : which) {
    size_t m = args[i].elems.size();
    rank0 &= args[i].rank0;
    if (m != 1) {
      if (n != 1 && n != m)
        return fail("operands are not broadcast-compatible");
      n = m;
    }
    if (m == 0)
      n = 0;
  }
  SmallVector<SymInt> out;
  for (size_t k = 0; k < n; ++k) {
    SmallVector<SymInt> ops;
    for (unsigned i : which)
      ops.push_back(args[i].elems.size() == 1 ? args[i].elems[0]
                                              : args[i].elems[k]);
    out.push_back(fn(ops));
  }
  setOutputSym(0, out, rank0, outElem);
  return success();
}

LogicalResult Importer::convertNodes(int begin, int end) {
  for (int i = begin; i < end; ++i) {
    if (skipNodes.contains(i))
      continue;
    const onnx::NodeProto *saved = node;
    Location savedLoc = loc;
    node = nodes[i];
    loc = NameLoc::get(b.getStringAttr(
        node->name().empty() ? node->op_type() : node->name()));
    LogicalResult r = convertNode(i);
    node = saved;
    loc = savedLoc;
    if (failed(r))
      return failure();
  }
  return success();
}

} // namespace quant_mlir::onnx_import
