//===- ControlFlowOps.cpp - ONNX If ----------------------------------------===//
// An If whose condition is known at import time is inlined: the taken
// branch's initializers and nodes are imported in place (they may read any
// outer value by name) and its outputs become the If's. optimum's merged
// decoders select their branch with a graph input; the driver imports one
// entry per value of such an input (Importer::run), which makes it a
// constant here.
//===----------------------------------------------------------------------===//

#include "Importer.h"

using namespace mlir;
using namespace llvm;

namespace quant_mlir::onnx_import {

/// The prefix a graph's producer put before every node and initializer
/// name ("with_past_" in `with_past_/model/layers.0/...`), so that layer and
/// weight names inside a branch are the same as outside; empty if none.
static std::string branchNamePrefix(const onnx::GraphProto &g) {
  std::optional<std::string> prefix;
  for (const auto &n : g.node()) {
    StringRef name = n.name();
    size_t slash = name.find('/');
    if (slash == StringRef::npos || slash == 0)
      continue;
    StringRef p = name.take_front(slash);
    if (!prefix)
      prefix = p.str();
    else if (*prefix != p)
      return "";
  }
  if (!prefix)
    return "";
  for (const auto &t : g.initializer())
    if (!StringRef(t.name()).starts_with(*prefix))
      return "";
  return *prefix;
}

LogicalResult Importer::onIf() {
  FailureOr<OValue *> c = input(0);
  if (failed(c))
    return failure();
  const onnx::GraphProto *thenG = attrGraph("then_branch");
  const onnx::GraphProto *elseG = attrGraph("else_branch");
  if (!error.empty())
    return failure();
  if (!thenG || !elseG)
    return fail("needs then_branch and else_branch graphs");
  if (!(*c)->sym || (*c)->sym->size() != 1 || !(*c)->sym->front().isConst())
    return fail("the condition must be known at import time (a constant, "
                "shape arithmetic, or a graph input fixed with "
                "--set-input NAME=VALUE)");
  const onnx::GraphProto &g = (*c)->sym->front().c ? *thenG : *elseG;
  if (g.output_size() != node->output_size())
    return fail("branch '" + g.name() + "' has " + Twine(g.output_size()) +
                " outputs, the If has " + Twine(node->output_size()));
  if (++depth > 16)
    return fail("If nested more than 16 deep");

  std::string savedPrefix = namePrefix;
  std::string prefix = branchNamePrefix(g);
  namePrefix = prefix;
  for (const auto &t : g.initializer()) {
    storage.tensors.emplace_back();
    TensorData &data = storage.tensors.back();
    if (Error err = decodeTensor(t, storage, data, /*allowBoolAndDouble=*/false,
                                 "initializer '" + t.name() + "'"))
      return fail(toString(std::move(err)));
    data.name = StringRef(data.name).drop_front(prefix.size()).str();
    values[t.name()] = valueFromTensorData(data, /*isInitializer=*/true);
  }
  const onnx::NodeProto *ifNode = node;
  int begin = int(nodes.size());
  for (const auto &n : g.node())
    nodes.push_back(&n);
  int end = int(nodes.size());
  for (int i = begin; i < end; ++i)
    for (const std::string &in : nodes[i]->input())
      if (!in.empty())
        consumers[in].push_back(i);
  for (const auto &out : g.output())
    graphOutputs.insert(out.name());
  LogicalResult r = convertNodes(begin, end);
  namePrefix = savedPrefix;
  --depth;
  if (failed(r))
    return failure();
  node = ifNode;
  for (auto [i, out] : llvm::enumerate(g.output())) {
    auto it = values.find(out.name());
    if (it == values.end())
      return fail("branch output '" + out.name() + "' is never computed");
    setOutput(unsigned(i), it->second);
  }
  return success();
}

void registerControlFlowOps(OpRegistry &r) {
  r.onOp("If", 13, {1, 1, 1, -1}, &Importer::onIf);
}

} // namespace quant_mlir::onnx_import
