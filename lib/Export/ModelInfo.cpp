//===- ModelInfo.cpp - architecture of a quantized module, from its IR ----===//
// The importer keeps no config: sizes come from the weights, the rest from
// the few constants and reshapes that carry them (see ModelInfo.h).
//===----------------------------------------------------------------------===//

#include "ModelInfo.h"

#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Matchers.h"

#include "llvm/Support/FormatVariadic.h"

#include <cmath>
#include <map>

using namespace mlir;
namespace json = llvm::json;

namespace quant_mlir::hf {

static llvm::Error fail(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 msg + " (pass the model's own config.json "
                                       "with --hf-config)");
}

std::string findNamePrefix(ModuleOp module) {
  std::string prefix;
  module.walk([&](wq::WeightOp op) {
    for (llvm::StringRef tail :
         {"model.embed_tokens.weight", "transformer.wte.weight"})
      if (op.getName().ends_with(tail)) {
        prefix = op.getName().drop_back(tail.size()).str();
        return WalkResult::interrupt();
      }
    return WalkResult::advance();
  });
  return prefix;
}

std::string stripPrefix(llvm::StringRef name, llvm::StringRef prefix) {
  name.consume_front(prefix);
  return name.str();
}

namespace {
/// A linear layer of either kind: name, N, bias, weight-op name.
struct Layer {
  int64_t n = 0;
  bool bias = false;
  std::string weightName; // float layers only
  Operation *op = nullptr;
};
} // namespace

/// The number of heads the output of `op` is reshaped into ([.., H, D]).
static std::optional<int64_t> headsAfter(Operation *op) {
  SmallVector<Operation *> work{op};
  for (int depth = 0; depth < 3 && !work.empty(); ++depth) {
    SmallVector<Operation *> next;
    for (Operation *o : work)
      for (Operation *user : o->getUsers()) {
        RankedTensorType type;
        if (auto e = dyn_cast<tensor::ExpandShapeOp>(user))
          type = e.getResultType();
        else if (auto r = dyn_cast<tensor::ReshapeOp>(user))
          type = dyn_cast<RankedTensorType>(r.getResult().getType());
        if (type && type.getRank() == 4 && !type.isDynamicDim(2) &&
            !type.isDynamicDim(3))
          return type.getDimSize(2);
        next.push_back(user);
      }
    work = std::move(next);
  }
  return std::nullopt;
}

/// The float constant added in `body` (arith.addf x, cst), if any.
static std::optional<double> addedConstant(Block &body) {
  std::optional<double> found;
  for (Operation &o : body)
    if (auto add = dyn_cast<arith::AddFOp>(o)) {
      llvm::APFloat v(0.0);
      for (Value operand : add->getOperands())
        if (matchPattern(operand, m_ConstantFloat(&v)))
          found = v.convertToDouble();
    }
  return found;
}

/// RMSNorm's eps: the constant added to mean(x^2) right before its sqrt.
static std::optional<double> findEps(ModuleOp module) {
  std::optional<double> eps;
  module.walk([&](Operation *op) {
    if (!isa<math::SqrtOp, math::RsqrtOp>(op))
      return WalkResult::advance();
    auto generic = op->getParentOfType<linalg::GenericOp>();
    if (!generic)
      return WalkResult::advance();
    if ((eps = addedConstant(*generic.getBody())))
      return WalkResult::interrupt();
    if (generic.getNumDpsInputs() == 0)
      return WalkResult::advance();
    if (auto producer =
            generic.getDpsInputs()[0].getDefiningOp<linalg::GenericOp>())
      if ((eps = addedConstant(*producer.getBody())))
        return WalkResult::interrupt();
    return WalkResult::advance();
  });
  return eps;
}

/// Rounds the f32-derived theta to 5 significant digits (10000, 1e6, 5e5).
static double roundTheta(double t) {
  double mag = std::pow(10.0, std::floor(std::log10(t)) - 4);
  return std::round(t / mag) * mag;
}

/// rope_theta from the inverse frequencies theta^(-2i/d), i < d/2: either
/// one [d/2] constant (exports that compute cos/sin in the graph) or the
/// sin table [positions, d] of exports that cache it (row p holds
/// sin(p * inv), row 0 zeros); the table also gives max_position_embeddings.
static std::optional<double> findRopeTheta(ModuleOp module, int64_t headDim,
                                           std::optional<int64_t> &positions) {
  std::optional<double> theta;
  int64_t half = headDim / 2;
  if (half < 2)
    return std::nullopt;
  double expo = -double(headDim) / (2.0 * double(half - 1));
  module.walk([&](arith::ConstantOp op) {
    auto dense = dyn_cast<DenseFPElementsAttr>(op.getValue());
    if (!dense || dense.isSplat())
      return WalkResult::advance();
    SmallVector<double> v;
    auto shape = dense.getType().getShape();
    if (dense.getNumElements() == half) {
      for (llvm::APFloat f : dense.getValues<llvm::APFloat>())
        v.push_back(f.convertToDouble());
      if (v[0] != 1.0)
        return WalkResult::advance();
      for (int64_t i = 1; i < half; ++i)
        if (!(v[i] < v[i - 1] && v[i] > 0))
          return WalkResult::advance();
      theta = roundTheta(std::pow(v[half - 1], expo));
      return WalkResult::interrupt();
    }
    if (shape.size() == 2 && shape[1] == headDim && shape[0] >= 2) {
      for (llvm::APFloat f : dense.getValues<llvm::APFloat>()) {
        v.push_back(f.convertToDouble());
        if (int64_t(v.size()) == 2 * headDim)
          break;
      }
      // Row 0 all zero, row 1 = sin(inv) decreasing from sin(1).
      for (int64_t i = 0; i < headDim; ++i)
        if (v[i] != 0.0)
          return WalkResult::advance();
      if (std::abs(v[headDim] - std::sin(1.0)) > 1e-6)
        return WalkResult::advance();
      theta = roundTheta(std::pow(std::asin(v[headDim + half - 1]), expo));
      positions = shape[0];
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  return theta;
}

std::vector<std::pair<std::string, Operation *>>
normWeights(ModuleOp module, llvm::StringRef prefix) {
  RankedTensorType embed;
  int64_t numLayers = 0;
  module.walk([&](Operation *op) {
    if (auto w = dyn_cast<wq::WeightOp>(op)) {
      if (w.getName() == prefix.str() + "model.embed_tokens.weight")
        embed = w.getType();
      return;
    }
    std::optional<llvm::StringRef> name;
    if (auto l = dyn_cast<wq::LinearOp>(op))
      name = l.getName();
    else if (auto q = dyn_cast<wq::QuantizedLinearOp>(op))
      name = q.getName();
    if (!name)
      return;
    llvm::StringRef rest = *name;
    int64_t idx;
    if (rest.consume_front(prefix) && rest.consume_front("model.layers.") &&
        !rest.consumeInteger(10, idx))
      numLayers = std::max(numLayers, idx + 1);
  });
  if (!embed || numLayers == 0)
    return {};
  int64_t hidden = embed.getDimSize(1);
  // The [hidden] weights the non-linear ops read, in program order.
  std::vector<Operation *> uses;
  module.walk([&](Operation *op) {
    if (isa<wq::LinearOp, wq::QuantizedLinearOp>(op))
      return;
    for (Value v : op->getOperands())
      if (auto w = v.getDefiningOp<wq::WeightOp>())
        if (w.getType().getRank() == 1 && w.getType().getDimSize(0) == hidden &&
            isa<FloatType>(w.getType().getElementType()))
          uses.push_back(w);
  });
  if (int64_t(uses.size()) != 2 * numLayers + 1)
    return {};
  std::vector<std::pair<std::string, Operation *>> out;
  for (int64_t i = 0; i < numLayers; ++i) {
    std::string p = "model.layers." + std::to_string(i) + ".";
    out.push_back({p + "input_layernorm.weight", uses[2 * i]});
    out.push_back({p + "post_attention_layernorm.weight", uses[2 * i + 1]});
  }
  out.push_back({"model.norm.weight", uses.back()});
  return out;
}

llvm::Expected<json::Object> deriveConfig(ModuleOp module,
                                          llvm::StringRef prefix) {
  std::map<std::string, Layer> layers;
  module.walk([&](Operation *op) {
    if (auto lin = dyn_cast<wq::LinearOp>(op)) {
      Layer l{lin.getWeight().getType().getDimSize(0), bool(lin.getBias()), "", op};
      if (auto w = lin.getWeight().getDefiningOp<wq::WeightOp>())
        l.weightName = w.getName().str();
      layers[stripPrefix(lin.getName().value_or(""), prefix)] = l;
    } else if (auto q = dyn_cast<wq::QuantizedLinearOp>(op)) {
      Layer l{q.getType().getShape().back(), bool(q.getBias()), "", op};
      layers[stripPrefix(q.getName().value_or(""), prefix)] = l;
    }
  });
  RankedTensorType embed;
  module.walk([&](wq::WeightOp op) {
    if (op.getName() == prefix.str() + "model.embed_tokens.weight")
      embed = op.getType();
  });
  if (!embed || !layers.count("model.layers.0.self_attn.q_proj") ||
      !layers.count("model.layers.0.mlp.gate_proj"))
    return fail("config.json can be derived for Llama and Qwen2 decoders "
                "(model.embed_tokens, model.layers.N.self_attn.q_proj, "
                "mlp.gate_proj) only");
  int64_t numLayers = 0;
  for (auto &[name, l] : layers) {
    llvm::StringRef rest(name);
    if (!rest.consume_front("model.layers."))
      continue;
    int64_t idx;
    if (!rest.consumeInteger(10, idx))
      numLayers = std::max(numLayers, idx + 1);
  }
  const Layer &q = layers["model.layers.0.self_attn.q_proj"];
  const Layer &kProj = layers["model.layers.0.self_attn.k_proj"];
  int64_t hidden = embed.getDimSize(1), vocab = embed.getDimSize(0);
  std::optional<int64_t> heads = headsAfter(q.op);
  if (!heads || *heads <= 0 || q.n % *heads)
    return fail("cannot find the attention head count (no [.., heads, "
                "head_dim] reshape after model.layers.0.self_attn.q_proj)");
  int64_t headDim = q.n / *heads;
  if (kProj.n == 0 || kProj.n % headDim)
    return fail("cannot derive num_key_value_heads from k_proj");
  std::optional<double> eps = findEps(module);
  if (!eps)
    return fail("cannot find the RMSNorm eps");
  std::optional<int64_t> positions;
  std::optional<double> theta = findRopeTheta(module, headDim, positions);
  if (!theta)
    return fail("cannot find the rotary inverse frequencies (rope_theta)");
  bool tied = false;
  auto head = layers.find("lm_head");
  if (head != layers.end())
    tied = head->second.weightName ==
           prefix.str() + "model.embed_tokens.weight";
  bool qwen2 = q.bias; // Qwen2: q/k/v biases, Llama: none.
  json::Object cfg{
      {"architectures",
       json::Array{qwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM"}},
      {"model_type", qwen2 ? "qwen2" : "llama"},
      {"hidden_size", hidden},
      {"intermediate_size", layers["model.layers.0.mlp.gate_proj"].n},
      {"num_hidden_layers", numLayers},
      {"num_attention_heads", *heads},
      {"num_key_value_heads", kProj.n / headDim},
      {"vocab_size", vocab},
      {"hidden_act", "silu"},
      // The constant is f32 (1e-5 reads 9.99999975e-06): 6 digits.
      {"rms_norm_eps", std::stod(llvm::formatv("{0:e5}", *eps).str())},
      {"rope_theta", *theta},
      {"rope_scaling", nullptr},
      // A cached rotary table's length, else (the graph's sequence axis is
      // dynamic) transformers' default.
      {"max_position_embeddings", positions.value_or(2048)},
      {"tie_word_embeddings", tied},
      {"torch_dtype", "float16"},
      {"use_cache", true},
      {"initializer_range", 0.02},
      {"transformers_version", "4.40.2"},
  };
  if (qwen2) {
    cfg["use_sliding_window"] = false;
    cfg["sliding_window"] = nullptr;
    cfg["max_window_layers"] = numLayers;
  } else {
    cfg["attention_bias"] = false;
    cfg["bos_token_id"] = 1;
    cfg["eos_token_id"] = 2;
  }
  return cfg;
}

} // namespace quant_mlir::hf
