//===- LanguageModel.cpp - scoring form of a decoder entry ----------------===//
// See LanguageModel.h. The specialization is IR surgery on a clone: the
// past arguments become tensor.empty with a zero past length, unused
// results are dropped, and canonicalization removes what they fed.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Runtime/LanguageModel.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/ADT/BitVector.h"
#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using llvm::StringRef;

namespace quant_mlir {

static llvm::Error makeError(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

std::optional<InputRole> inputRole(StringRef name) {
  if (name == "input_ids")
    return InputRole::InputIds;
  if (name == "attention_mask")
    return InputRole::AttentionMask;
  if (name == "position_ids")
    return InputRole::PositionIds;
  if (name == "token_type_ids")
    return InputRole::TokenTypeIds;
  if (name.starts_with("past_key_values.") &&
      (name.ends_with(".key") || name.ends_with(".value")))
    return InputRole::PastKeyValue;
  return std::nullopt;
}

static StringRef argName(func::FuncOp f, unsigned i) {
  if (auto a = f.getArgAttrOfType<StringAttr>(i, "onnx.name"))
    return a.getValue();
  return "";
}

static bool hasPast(func::FuncOp f) {
  for (unsigned i = 0; i < f.getNumArguments(); ++i)
    if (inputRole(argName(f, i)) == InputRole::PastKeyValue)
      return true;
  return false;
}

static std::string typeStr(Type t) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << t;
  return s;
}

llvm::Expected<OwningOpRef<ModuleOp>>
specializeForScoring(ModuleOp module, StringRef funcName,
                     LanguageModelEntry &entry) {
  OwningOpRef<ModuleOp> clone = module.clone();
  ModuleOp m = *clone;
  SmallVector<func::FuncOp> publics;
  for (auto f : m.getOps<func::FuncOp>())
    if (f.isPublic() && !f.isExternal())
      publics.push_back(f);
  func::FuncOp fn;
  if (!funcName.empty()) {
    fn = m.lookupSymbol<func::FuncOp>(funcName);
    if (!fn || fn.isExternal()) {
      std::string names;
      for (auto f : publics)
        names += (names.empty() ? "" : ", ") + f.getSymName().str();
      return makeError("no function '" + funcName + "' (the model has: " +
                       names + ")");
    }
  } else if (publics.size() == 1) {
    fn = publics.front();
  } else {
    SmallVector<func::FuncOp> noPast;
    for (auto f : publics)
      if (!hasPast(f))
        noPast.push_back(f);
    if (noPast.size() != 1)
      return makeError("the model has " + llvm::Twine(publics.size()) +
                       " public functions; pick one with --func");
    fn = noPast.front();
  }
  for (auto f : publics)
    if (f != fn)
      f.erase();

  // Results: the logits only.
  auto ret = cast<func::ReturnOp>(fn.getBody().back().getTerminator());
  int logits = -1;
  for (unsigned i = 0; i < fn.getNumResults(); ++i)
    if (auto a = fn.getResultAttrOfType<StringAttr>(i, "onnx.name"))
      if (a.getValue() == "logits")
        logits = int(i);
  if (logits < 0) {
    for (unsigned i = 0; i < fn.getNumResults(); ++i) {
      auto t = dyn_cast<RankedTensorType>(fn.getResultTypes()[i]);
      if (t && t.getRank() == 3 && t.getElementType().isF32() &&
          !t.isDynamicDim(2)) {
        if (logits >= 0)
          return makeError("function '" + fn.getSymName() +
                           "' has several results that could be logits; "
                           "name one 'logits'");
        logits = int(i);
      }
    }
  }
  if (logits < 0)
    return makeError("function '" + fn.getSymName() +
                     "' returns no logits tensor<BxSxVxf32> with a static "
                     "vocabulary V");
  auto logitsType = cast<RankedTensorType>(fn.getResultTypes()[logits]);
  if (logitsType.getRank() != 3 || !logitsType.getElementType().isF32() ||
      logitsType.isDynamicDim(2))
    return makeError("function '" + fn.getSymName() + "' result 'logits' is " +
                     typeStr(logitsType) + ", not tensor<BxSxVxf32> with a "
                     "static vocabulary V");
  Value logitsValue = ret.getOperand(unsigned(logits));
  OpBuilder b(ret);
  func::ReturnOp::create(b, ret.getLoc(), ValueRange{logitsValue});
  ret.erase();

  // Inputs: roles by name; the past becomes an empty tensor.
  Block &body = fn.getBody().front();
  int ids = -1;
  for (unsigned i = 0; i < fn.getNumArguments(); ++i) {
    std::optional<InputRole> role = inputRole(argName(fn, i));
    auto t = dyn_cast<RankedTensorType>(fn.getArgumentTypes()[i]);
    if (!role && fn.getNumArguments() == 1 && t && t.getRank() == 2 &&
        t.getElementType().isInteger(64))
      role = InputRole::InputIds; // a graph whose only input is the ids
    if (!role)
      return makeError("function '" + fn.getSymName() + "' input '" +
                       argName(fn, i) + "' (" + typeStr(fn.getArgumentTypes()[i]) +
                       ") has no role the runtime can fill (input_ids, "
                       "attention_mask, position_ids, token_type_ids, "
                       "past_key_values.N.key/value)");
    if (*role == InputRole::InputIds)
      ids = int(i);
  }
  if (ids < 0)
    return makeError("function '" + fn.getSymName() + "' has no input_ids");
  llvm::BitVector erase(fn.getNumArguments());
  b.setInsertionPointToStart(&body);
  for (unsigned i = 0; i < fn.getNumArguments(); ++i) {
    if (inputRole(argName(fn, i)) != InputRole::PastKeyValue)
      continue;
    auto t = cast<RankedTensorType>(fn.getArgumentTypes()[i]);
    if (t.getRank() != 4)
      return makeError("past input '" + argName(fn, i) + "' is " +
                       typeStr(t) + ", expected [batch, heads, past, head_dim]");
    SmallVector<OpFoldResult> sizes;
    for (int64_t d = 0; d < 4; ++d) {
      if (d == 2)
        sizes.push_back(b.getIndexAttr(0));
      else if (!t.isDynamicDim(d))
        sizes.push_back(b.getIndexAttr(t.getDimSize(d)));
      else if (d == 0)
        sizes.push_back(tensor::DimOp::create(b, fn.getLoc(),
                                              body.getArgument(ids), 0)
                            .getResult());
      else
        return makeError("past input '" + argName(fn, i) + "' (" +
                         typeStr(t) + ") has a dynamic dim " + llvm::Twine(d));
    }
    Value empty = tensor::EmptyOp::create(b, fn.getLoc(), sizes,
                                          t.getElementType());
    if (empty.getType() != t)
      empty = tensor::CastOp::create(b, fn.getLoc(), t, empty);
    body.getArgument(i).replaceAllUsesWith(empty);
    erase.set(i);
  }
  SmallVector<Type> argTypes;
  entry = LanguageModelEntry();
  entry.name = fn.getSymName().str();
  for (unsigned i = 0; i < fn.getNumArguments(); ++i) {
    if (erase.test(i))
      continue;
    argTypes.push_back(fn.getArgumentTypes()[i]);
    entry.inputNames.push_back(argName(fn, i).str());
    entry.roles.push_back(fn.getNumArguments() == 1
                              ? InputRole::InputIds
                              : *inputRole(argName(fn, i)));
  }
  if (failed(fn.eraseArguments(erase)))
    return makeError("cannot drop the past inputs of '" + entry.name + "'");
  fn.setType(FunctionType::get(m.getContext(), argTypes,
                               {logitsValue.getType()}));
  fn.setAllResultAttrs(ArrayRef<DictionaryAttr>{});
  entry.vocab = logitsType.getDimSize(2);

  // Drop what only the removed results and the empty past fed.
  PassManager pm(m.getContext());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  if (failed(pm.run(m)))
    return makeError("cannot simplify the scoring form of '" + entry.name +
                     "'");
  return clone;
}

std::vector<HostTensor> LanguageModelEntry::inputs(ArrayRef<int64_t> ids,
                                                   int64_t batch, int64_t seq,
                                                   ArrayRef<int64_t> padLeft,
                                                   int64_t past) const {
  int64_t maskLen = past + seq;
  std::vector<int64_t> mask(batch * maskLen, 1), pos(batch * seq),
      zeros(batch * seq, 0);
  for (int64_t r = 0; r < batch; ++r) {
    int64_t pad = r < int64_t(padLeft.size()) ? padLeft[r] : 0;
    int64_t running = past;
    for (int64_t s = 0; s < seq; ++s) {
      bool real = s >= pad;
      mask[r * maskLen + past + s] = real;
      running += real;
      // transformers: position_ids = cumsum(mask) - 1, masked to 1.
      pos[r * seq + s] = real ? running - 1 : 1;
    }
  }
  auto i64 = [](ArrayRef<int64_t> shape, ArrayRef<int64_t> v) {
    return HostTensor::from<int64_t>(safetensors::DType::I64, shape, v);
  };
  std::vector<HostTensor> out;
  for (InputRole role : roles) {
    switch (role) {
    case InputRole::InputIds:
      out.push_back(i64({batch, seq}, ids));
      break;
    case InputRole::AttentionMask:
      out.push_back(i64({batch, maskLen}, mask));
      break;
    case InputRole::PositionIds:
      out.push_back(i64({batch, seq}, pos));
      break;
    case InputRole::TokenTypeIds:
      out.push_back(i64({batch, seq}, zeros));
      break;
    case InputRole::PastKeyValue:
      out.emplace_back();
      break;
    }
  }
  return out;
}

} // namespace quant_mlir
