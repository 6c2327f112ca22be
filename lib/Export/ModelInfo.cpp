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
#include "mlir/Analysis/SliceAnalysis.h"
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

/// The token embeddings of the families config.json is derived for.
static constexpr llvm::StringLiteral kEmbeddings[] = {
    "model.embed_tokens.weight", "transformer.wte.weight",
    "gpt_neox.embed_in.weight"};

std::string findNamePrefix(ModuleOp module) {
  std::string prefix;
  module.walk([&](wq::WeightOp op) {
    for (llvm::StringRef tail : kEmbeddings)
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

std::string embeddingName(ModuleOp module, llvm::StringRef prefix) {
  std::string found;
  module.walk([&](wq::WeightOp op) {
    for (llvm::StringRef tail : kEmbeddings)
      if (op.getName() == prefix.str() + tail.str()) {
        found = tail.str();
        return WalkResult::interrupt();
      }
    return WalkResult::advance();
  });
  return found;
}

bool isHeadLayer(llvm::StringRef name) {
  return name == "lm_head" || name == "embed_out";
}

bool isConv1D(llvm::StringRef name) {
  // transformers' GPT-2 (modeling_gpt2.py): c_attn, c_proj, c_fc are
  // pytorch_utils.Conv1D, whose weight is [in, out].
  return name.starts_with("transformer.h.") &&
         (name.contains(".attn.") || name.contains(".mlp."));
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

/// rope_theta from the inverse frequencies theta^(-2i/r), i < r/2, of the
/// `r` rotary dimensions (r = headDim, or fewer with partial rotary): either
/// one [headDim/2] constant (exports that compute cos/sin in the graph) or
/// the sin table [positions, r] of exports that cache it (row p holds
/// sin(p * inv), row 0 zeros); the table also gives max_position_embeddings
/// and r.
static std::optional<double> findRopeTheta(ModuleOp module, int64_t headDim,
                                           std::optional<int64_t> &positions,
                                           int64_t *rotaryDim = nullptr) {
  std::optional<double> theta;
  if (headDim / 2 < 2)
    return std::nullopt;
  auto thetaOf = [](double lastInv, int64_t r) {
    int64_t half = r / 2;
    return roundTheta(std::pow(lastInv, -double(r) / (2.0 * double(half - 1))));
  };
  module.walk([&](arith::ConstantOp op) {
    auto dense = dyn_cast<DenseFPElementsAttr>(op.getValue());
    if (!dense || dense.isSplat())
      return WalkResult::advance();
    SmallVector<double> v;
    auto shape = dense.getType().getShape();
    if (dense.getNumElements() == headDim / 2) {
      int64_t half = headDim / 2;
      for (llvm::APFloat f : dense.getValues<llvm::APFloat>())
        v.push_back(f.convertToDouble());
      if (v[0] != 1.0)
        return WalkResult::advance();
      for (int64_t i = 1; i < half; ++i)
        if (!(v[i] < v[i - 1] && v[i] > 0))
          return WalkResult::advance();
      theta = thetaOf(v[half - 1], headDim);
      if (rotaryDim)
        *rotaryDim = headDim;
      return WalkResult::interrupt();
    }
    int64_t r = shape.size() == 2 ? shape[1] : 0;
    if (r >= 4 && r <= headDim && r % 2 == 0 && shape[0] >= 2) {
      for (llvm::APFloat f : dense.getValues<llvm::APFloat>()) {
        v.push_back(f.convertToDouble());
        if (int64_t(v.size()) == 2 * r)
          break;
      }
      // Row 0 all zero, row 1 = sin(inv) decreasing from sin(1).
      for (int64_t i = 0; i < r; ++i)
        if (v[i] != 0.0)
          return WalkResult::advance();
      if (std::abs(v[r] - std::sin(1.0)) > 1e-6)
        return WalkResult::advance();
      theta = thetaOf(std::asin(v[r + r / 2 - 1]), r);
      positions = shape[0];
      if (rotaryDim)
        *rotaryDim = r;
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  return theta;
}

/// Whether `op` reads, through any chain of ops, the result of `producer`.
static bool dependsOn(Operation *op, Operation *producer) {
  SetVector<Operation *> slice;
  BackwardSliceOptions options;
  options.omitUsesFromAbove = false;
  (void)getBackwardSlice(op, &slice, options);
  return slice.contains(producer);
}

/// The Hugging Face name of the activation between an MLP's up and down
/// projections: the tanh approximation of GELU ("gelu_new", as GPT-2's
/// NewGELUActivation), erf GELU ("gelu"), or nullopt.
static std::optional<std::string> activationBetween(Operation *up,
                                                    Operation *down) {
  SetVector<Operation *> after, before;
  getForwardSlice(up, &after);
  BackwardSliceOptions options;
  options.omitUsesFromAbove = false;
  (void)getBackwardSlice(down, &before, options);
  bool tanh = false, erf = false;
  for (Operation *op : after) {
    if (!before.contains(op))
      continue;
    op->walk([&](Operation *inner) {
      tanh |= isa<math::TanhOp>(inner);
      erf |= isa<math::ErfOp>(inner);
    });
  }
  if (tanh == erf)
    return std::nullopt;
  return std::string(tanh ? "gelu_new" : "gelu");
}

/// eps as the f32 constant's 6 significant digits (1e-5 reads
/// 9.99999975e-06).
static double roundEps(double eps) {
  return std::stod(llvm::formatv("{0:e5}", eps).str());
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

using LayerMap = std::map<std::string, Layer>;

/// Every linear layer by its Hugging Face name.
static LayerMap collectLayers(ModuleOp module, llvm::StringRef prefix) {
  LayerMap layers;
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
  return layers;
}

/// 1 + the largest N of the layers named `blocks`N.*.
static int64_t countBlocks(const LayerMap &layers, llvm::StringRef blocks) {
  int64_t numLayers = 0;
  for (auto &[name, l] : layers) {
    llvm::StringRef rest(name);
    if (!rest.consume_front(blocks))
      continue;
    int64_t idx;
    if (!rest.consumeInteger(10, idx))
      numLayers = std::max(numLayers, idx + 1);
  }
  return numLayers;
}

static RankedTensorType weightType(ModuleOp module, const std::string &name) {
  RankedTensorType type;
  module.walk([&](wq::WeightOp op) {
    if (op.getName() == name)
      type = op.getType();
  });
  return type;
}

/// GPT-2 (transformers modeling_gpt2.py, GPT2Config): wte/wpe give vocab,
/// n_embd and n_positions; c_attn's reshape the heads; the tanh or erf
/// between c_fc and mlp.c_proj the activation.
static llvm::Expected<json::Object> deriveGPT2(ModuleOp module,
                                               llvm::StringRef prefix,
                                               LayerMap &layers) {
  RankedTensorType wte = weightType(module, prefix.str() + "transformer.wte.weight");
  RankedTensorType wpe = weightType(module, prefix.str() + "transformer.wpe.weight");
  const char *attn = "transformer.h.0.attn.c_attn";
  if (!wte || !wpe || !layers.count(attn) ||
      !layers.count("transformer.h.0.mlp.c_fc") ||
      !layers.count("transformer.h.0.mlp.c_proj"))
    return fail("GPT-2 config.json needs transformer.wte, transformer.wpe and "
                "transformer.h.0.attn.c_attn, mlp.c_fc, mlp.c_proj");
  int64_t hidden = wte.getDimSize(1);
  std::optional<int64_t> heads = headsAfter(layers[attn].op);
  if (!heads || *heads <= 0 || hidden % *heads)
    return fail("cannot find the attention head count (no [.., heads, "
                "head_dim] reshape after transformer.h.0.attn.c_attn)");
  std::optional<double> eps = findEps(module);
  if (!eps)
    return fail("cannot find the LayerNorm eps");
  std::optional<std::string> act =
      activationBetween(layers["transformer.h.0.mlp.c_fc"].op,
                        layers["transformer.h.0.mlp.c_proj"].op);
  if (!act)
    return fail("cannot tell the MLP activation (no tanh or erf GELU "
                "between mlp.c_fc and mlp.c_proj)");
  return json::Object{
      {"architectures", json::Array{"GPT2LMHeadModel"}},
      {"model_type", "gpt2"},
      {"vocab_size", wte.getDimSize(0)},
      {"n_embd", hidden},
      {"n_head", *heads},
      {"n_layer", countBlocks(layers, "transformer.h.")},
      {"n_positions", wpe.getDimSize(0)},
      {"n_inner", layers["transformer.h.0.mlp.c_fc"].n},
      {"activation_function", *act},
      {"layer_norm_epsilon", roundEps(*eps)},
      {"scale_attn_weights", true},
      {"scale_attn_by_inverse_layer_idx", false},
      {"reorder_and_upcast_attn", false},
      {"initializer_range", 0.02},
      {"torch_dtype", "float16"},
      {"use_cache", true},
      {"transformers_version", "4.40.2"},
  };
}

/// GPT-NeoX (modeling_gpt_neox.py, GPTNeoXConfig): the fused
/// query_key_value's reshape to [.., heads, 3 * head_dim] gives the heads,
/// the cached rotary table rotary_pct (its width / head_dim),
/// rotary_emb_base and max_position_embeddings; use_parallel_residual is
/// whether the MLP reads the attention's output or only the block input.
static llvm::Expected<json::Object> deriveGPTNeoX(ModuleOp module,
                                                  llvm::StringRef prefix,
                                                  LayerMap &layers) {
  RankedTensorType embed =
      weightType(module, prefix.str() + "gpt_neox.embed_in.weight");
  std::string p = "gpt_neox.layers.0.";
  std::string qkvName = p + "attention.query_key_value";
  std::string dense = p + "attention.dense", up = p + "mlp.dense_h_to_4h",
              down = p + "mlp.dense_4h_to_h";
  if (!embed || !layers.count(qkvName) || !layers.count(dense) ||
      !layers.count(up) || !layers.count(down))
    return fail("GPT-NeoX config.json needs gpt_neox.embed_in and "
                "gpt_neox.layers.0.attention.query_key_value, "
                "attention.dense, mlp.dense_h_to_4h, mlp.dense_4h_to_h");
  const Layer &qkv = layers[qkvName];
  int64_t hidden = embed.getDimSize(1);
  std::optional<int64_t> heads = headsAfter(qkv.op);
  if (!heads || *heads <= 0 || hidden % *heads || qkv.n != 3 * hidden)
    return fail("cannot find the attention head count (no [.., heads, "
                "3 * head_dim] reshape after " + qkvName + ")");
  int64_t headDim = hidden / *heads;
  std::optional<double> eps = findEps(module);
  if (!eps)
    return fail("cannot find the LayerNorm eps");
  std::optional<int64_t> positions;
  int64_t rotary = 0;
  std::optional<double> theta =
      findRopeTheta(module, headDim, positions, &rotary);
  if (!theta)
    return fail("cannot find the rotary inverse frequencies "
                "(rotary_emb_base)");
  std::optional<std::string> act =
      activationBetween(layers[up].op, layers[down].op);
  if (!act)
    return fail("cannot tell the MLP activation (no tanh or erf GELU "
                "between mlp.dense_h_to_4h and mlp.dense_4h_to_h)");
  bool parallel = !dependsOn(layers[up].op, layers[dense].op);
  return json::Object{
      {"architectures", json::Array{"GPTNeoXForCausalLM"}},
      {"model_type", "gpt_neox"},
      {"vocab_size", embed.getDimSize(0)},
      {"hidden_size", hidden},
      {"intermediate_size", layers[up].n},
      {"num_hidden_layers", countBlocks(layers, "gpt_neox.layers.")},
      {"num_attention_heads", *heads},
      {"hidden_act", *act},
      {"rotary_pct", double(rotary) / double(headDim)},
      {"rotary_emb_base", *theta},
      {"rope_scaling", nullptr},
      {"use_parallel_residual", parallel},
      {"attention_bias", qkv.bias},
      {"layer_norm_eps", roundEps(*eps)},
      // A cached rotary table's length, else transformers' default.
      {"max_position_embeddings", positions.value_or(2048)},
      {"attention_dropout", 0.0},
      {"hidden_dropout", 0.0},
      {"classifier_dropout", 0.1},
      {"initializer_range", 0.02},
      // GPTNeoXConfig's defaults (the graph holds no token ids).
      {"bos_token_id", 0},
      {"eos_token_id", 2},
      {"torch_dtype", "float16"},
      {"use_cache", true},
      {"transformers_version", "4.40.2"},
  };
}

/// Llama / Qwen2 (modeling_llama.py, modeling_qwen2.py).
static llvm::Expected<json::Object> deriveLlama(ModuleOp module,
                                                llvm::StringRef prefix,
                                                LayerMap &layers) {
  RankedTensorType embed =
      weightType(module, prefix.str() + "model.embed_tokens.weight");
  if (!embed || !layers.count("model.layers.0.self_attn.q_proj") ||
      !layers.count("model.layers.0.mlp.gate_proj"))
    return fail("config.json can be derived for Llama, Qwen2 (model.embed_tokens, "
                "model.layers.N.self_attn.q_proj, mlp.gate_proj), GPT-2 "
                "(transformer.wte) and GPT-NeoX (gpt_neox.embed_in) decoders "
                "only");
  int64_t numLayers = countBlocks(layers, "model.layers.");
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
      {"rms_norm_eps", roundEps(*eps)},
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
    // sliding_window / max_window_layers keep Qwen2Config's defaults: with
    // the window off they change nothing, and the graph does not hold them.
    cfg["use_sliding_window"] = false;
  } else {
    cfg["attention_bias"] = false;
    cfg["bos_token_id"] = 1;
    cfg["eos_token_id"] = 2;
  }
  return cfg;
}

llvm::Expected<json::Object> deriveConfig(ModuleOp module,
                                          llvm::StringRef prefix) {
  LayerMap layers = collectLayers(module, prefix);
  std::string embed = embeddingName(module, prefix);
  if (embed == "transformer.wte.weight")
    return deriveGPT2(module, prefix, layers);
  if (embed == "gpt_neox.embed_in.weight")
    return deriveGPTNeoX(module, prefix, layers);
  return deriveLlama(module, prefix, layers);
}

} // namespace quant_mlir::hf
