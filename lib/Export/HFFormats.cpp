//===- HFFormats.cpp - byte layouts of the Hugging Face quantized formats -===//
// Each layout is written as its consumer reads it; the consumer's file and
// function are named where the layout is produced.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Export/HFFormats.h"
#include "quant-mlir/Quant/Packing.h"

#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/FormatVariadic.h"

#include <cstring>

using namespace llvm;
namespace st = quant_mlir::safetensors;

namespace quant_mlir::hf {

std::optional<Format> parseFormat(StringRef name) {
  return StringSwitch<std::optional<Format>>(name)
      .Case("gptq", Format::GPTQ)
      .Case("gptq_v2", Format::GPTQv2)
      .Case("awq", Format::AWQ)
      .Case("compressed-tensors", Format::CompressedTensors)
      .Default(std::nullopt);
}

StringRef formatName(Format format) {
  switch (format) {
  case Format::GPTQ:
    return "gptq";
  case Format::GPTQv2:
    return "gptq_v2";
  case Format::AWQ:
    return "awq";
  case Format::CompressedTensors:
    return "compressed-tensors";
  }
  return "";
}

// AutoAWQ awq/modules/linear/gemm.py WQLinear_GEMM.from_linear: nibble i of
// each word holds column kAWQOrder[i] of its group of 8 (its dequantization,
// awq/utils/packing_utils.py unpack_awq + reverse_awq_order, undoes it with
// AWQ_REVERSE_ORDER 0,4,1,5,2,6,3,7).
static constexpr int kAWQOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};

/// compressed-tensors packs 32 / bits whole codes per word (3 bits: 10 codes
/// and two unused bits), not a bit stream: compressors/quantized_compressors/
/// pack_quantized.py pack_to_int32.
static unsigned ctPackFactor(unsigned bits) { return 32 / bits; }

namespace {
template <typename T> std::vector<uint8_t> toBytes(const std::vector<T> &v) {
  std::vector<uint8_t> out(v.size() * sizeof(T));
  if (!v.empty())
    std::memcpy(out.data(), v.data(), out.size());
  return out;
}
template <typename T> std::vector<T> fromBytes(ArrayRef<uint8_t> b) {
  std::vector<T> out(b.size() / sizeof(T));
  if (!out.empty())
    std::memcpy(out.data(), b.data(), out.size() * sizeof(T));
  return out;
}
} // namespace

static bool isIdentityGrouping(const QuantLayer &l) {
  for (int64_t c = 0; c < l.k; ++c)
    if (l.gIdx[c] != (l.groupSize == -1 ? 0 : c / l.groupSize))
      return false;
  return true;
}

std::string checkFormat(Format format, const QuantLayer &l) {
  std::string what = "layer '" + l.name + "' (" + std::to_string(l.bits) +
                     "-bit, group " + std::to_string(l.groupSize) +
                     (l.symmetric ? ", symmetric" : ", zero-point") +
                     (l.actOrder ? ", act-order" : "") + ")";
  switch (format) {
  case Format::GPTQ:
  case Format::GPTQv2:
    // qweight packs K and qzeros packs N as whole int32 streams.
    if ((l.k * l.bits) % 32 || (l.n * l.bits) % 32)
      return what + ": GPTQ needs K*bits and N*bits to be multiples of 32 (K " +
             std::to_string(l.k) + ", N " + std::to_string(l.n) + ")";
    if (format == Format::GPTQ) {
      // v1 stores zero - 1 in `bits` bits: a zero of 0 would be stored as
      // 2^bits - 1 and read back as 2^bits.
      for (size_t i = 0; i < l.zeros.size(); ++i)
        if (l.zeros[i] == 0)
          return what + ": zero point 0 (group " +
                 std::to_string(int64_t(i) / l.n) + ", column " +
                 std::to_string(int64_t(i) % l.n) +
                 ") cannot be stored by GPTQ v1, which stores zero - 1; use "
                 "--format gptq_v2";
    }
    return "";
  case Format::AWQ:
    if (l.bits != 4)
      return what + ": AutoAWQ GEMM holds 4-bit codes only";
    if (l.symmetric)
      return what + ": AutoAWQ GEMM holds zero-point schemes only (quantize with "
                    "--zero-point, or use --format gptq / compressed-tensors)";
    if (l.actOrder && !isIdentityGrouping(l))
      return what + ": AutoAWQ GEMM has no g_idx, so it cannot hold act-order "
                    "groups (use --format gptq or compressed-tensors)";
    if (l.n % 8)
      return what + ": AutoAWQ GEMM packs 8 output columns per word (N " +
             std::to_string(l.n) + ")";
    return "";
  case Format::CompressedTensors:
    if (l.bits > 8)
      return what + ": compressed-tensors packs at most 8 bits";
    return "";
  }
  return "";
}

static OutTensor make(std::string name, st::DType dtype,
                      ArrayRef<int64_t> shape, std::vector<uint8_t> bytes) {
  return OutTensor{std::move(name), dtype, SmallVector<int64_t>(shape),
                   std::move(bytes)};
}

/// AutoGPTQ auto_gptq/nn_modules/qlinear/qlinear_cuda_old.py QuantLinear.pack
/// (the layout every AutoGPTQ/GPTQModel kernel and vLLM's gptq/gptq_marlin
/// read): qweight int32 [K*bits/32, N], codes least significant first down
/// K (3 bits: a bit stream, fields straddle words); qzeros int32
/// [G, N*bits/32] along N, v1 storing zero - 1 (dequantized with
/// `zeros + 1` in QuantLinear.forward), v2 (GPTQModel) the zero itself;
/// scales f16 [G, N]; g_idx int32 [K] (always written, i // group_size
/// without act-order).
static std::vector<OutTensor> encodeGPTQ(const QuantLayer &l, bool v2) {
  int64_t g = l.numGroups();
  std::vector<uint32_t> codes(l.codes.begin(), l.codes.end());
  std::vector<uint32_t> zeros(l.zeros.size());
  for (size_t i = 0; i < zeros.size(); ++i)
    zeros[i] = uint32_t(l.zeros[i] - (v2 ? 0 : 1));
  std::vector<int32_t> qweight =
      quant::packBitStream(codes, l.k, l.n, l.bits, /*axis=*/0);
  std::vector<int32_t> qzeros =
      quant::packBitStream(zeros, g, l.n, l.bits, /*axis=*/1);
  std::vector<int32_t> gIdx(size_t(l.k));
  for (int64_t c = 0; c < l.k; ++c)
    gIdx[c] = int32_t(l.groupOf(c));
  std::vector<OutTensor> out;
  out.push_back(make(l.name + ".qweight", st::DType::I32,
                     {l.k * l.bits / 32, l.n}, toBytes(qweight)));
  out.push_back(make(l.name + ".qzeros", st::DType::I32,
                     {g, l.n * l.bits / 32}, toBytes(qzeros)));
  out.push_back(make(l.name + ".scales", st::DType::F16, {g, l.n},
                     toBytes(l.scales)));
  out.push_back(make(l.name + ".g_idx", st::DType::I32, {l.k}, toBytes(gIdx)));
  return out;
}

/// Packs [rows][cols] 4-bit values along each row in the AWQ order.
static std::vector<int32_t> packAWQ(ArrayRef<uint32_t> v, int64_t rows,
                                    int64_t cols) {
  std::vector<int32_t> out(size_t(rows * cols / 8), 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t w = 0; w < cols / 8; ++w) {
      uint32_t word = 0;
      for (int i = 0; i < 8; ++i)
        word |= (v[size_t(r * cols + w * 8 + kAWQOrder[i])] & 0xF) << (4 * i);
      out[size_t(r * (cols / 8) + w)] = int32_t(word);
    }
  return out;
}

static std::vector<uint32_t> unpackAWQ(ArrayRef<int32_t> words, int64_t rows,
                                       int64_t cols) {
  std::vector<uint32_t> out(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t w = 0; w < cols / 8; ++w) {
      uint32_t word = uint32_t(words[size_t(r * (cols / 8) + w)]);
      for (int i = 0; i < 8; ++i)
        out[size_t(r * cols + w * 8 + kAWQOrder[i])] = (word >> (4 * i)) & 0xF;
    }
  return out;
}

/// AutoAWQ GEMM (WQLinear_GEMM.from_linear): qweight int32 [K, N/8] and
/// qzeros int32 [G, N/8] (the zero itself) packed along N in kAWQOrder;
/// scales f16 [G, N]; no g_idx.
static std::vector<OutTensor> encodeAWQ(const QuantLayer &l) {
  int64_t g = l.numGroups();
  std::vector<uint32_t> codes(l.codes.begin(), l.codes.end());
  std::vector<uint32_t> zeros(l.zeros.begin(), l.zeros.end());
  std::vector<OutTensor> out;
  out.push_back(make(l.name + ".qweight", st::DType::I32, {l.k, l.n / 8},
                     toBytes(packAWQ(codes, l.k, l.n))));
  out.push_back(make(l.name + ".qzeros", st::DType::I32, {g, l.n / 8},
                     toBytes(packAWQ(zeros, g, l.n))));
  out.push_back(make(l.name + ".scales", st::DType::F16, {g, l.n},
                     toBytes(l.scales)));
  return out;
}

/// Packs `pf` whole values per word along `axis` of [rows][cols]
/// (pack_to_int32; the last word is zero-padded).
static std::vector<int32_t> packCT(ArrayRef<uint32_t> v, int64_t rows,
                                   int64_t cols, unsigned bits, int axis) {
  int64_t pf = ctPackFactor(bits);
  int64_t len = axis == 1 ? cols : rows, streams = axis == 1 ? rows : cols;
  int64_t words = (len + pf - 1) / pf;
  std::vector<int32_t> out(size_t(words * streams), 0);
  for (int64_t s = 0; s < streams; ++s)
    for (int64_t i = 0; i < len; ++i) {
      uint32_t x = axis == 1 ? v[size_t(s * cols + i)] : v[size_t(i * cols + s)];
      size_t at = axis == 1 ? size_t(s * words + i / pf)
                            : size_t((i / pf) * streams + s);
      out[at] = int32_t(uint32_t(out[at]) | (x << (bits * (i % pf))));
    }
  return out;
}

static std::vector<uint32_t> unpackCT(ArrayRef<int32_t> w, int64_t rows,
                                      int64_t cols, unsigned bits, int axis) {
  int64_t pf = ctPackFactor(bits);
  int64_t len = axis == 1 ? cols : rows, streams = axis == 1 ? rows : cols;
  int64_t words = (len + pf - 1) / pf;
  uint32_t mask = (1u << bits) - 1;
  std::vector<uint32_t> out(size_t(rows * cols));
  for (int64_t s = 0; s < streams; ++s)
    for (int64_t i = 0; i < len; ++i) {
      size_t at = axis == 1 ? size_t(s * words + i / pf)
                            : size_t((i / pf) * streams + s);
      uint32_t x = (uint32_t(w[at]) >> (bits * (i % pf))) & mask;
      (axis == 1 ? out[size_t(s * cols + i)] : out[size_t(i * cols + s)]) = x;
    }
  return out;
}

/// compressed-tensors pack-quantized (PackedQuantizationCompressor
/// .compress_weight): weight_packed int32 [N, ceil(K / (32/bits))] holds
/// u = q_signed + 2^(bits-1) -- which is our unsigned code -- along K;
/// weight_scale [N, G]; weight_zero_point (asymmetric only) int32
/// [ceil(N / (32/bits)), G] packed along N the same way (u = zp_signed +
/// 2^(bits-1), our zero); weight_shape int64 [2] = {N, K}; weight_g_idx
/// int32 [K] with act-order (actorder "group"). Dequantization
/// (quantization/lifecycle/forward.py dequantize) is (q - zp) * scale.
static std::vector<OutTensor> encodeCT(const QuantLayer &l) {
  int64_t g = l.numGroups(), pf = ctPackFactor(l.bits);
  std::vector<uint32_t> codesNK(size_t(l.n * l.k));
  for (int64_t c = 0; c < l.k; ++c)
    for (int64_t r = 0; r < l.n; ++r)
      codesNK[size_t(r * l.k + c)] = l.codes[size_t(c * l.n + r)];
  std::vector<uint16_t> scalesNG(size_t(l.n * g));
  std::vector<uint32_t> zerosNG(size_t(l.n * g));
  for (int64_t j = 0; j < g; ++j)
    for (int64_t r = 0; r < l.n; ++r) {
      scalesNG[size_t(r * g + j)] = l.scales[size_t(j * l.n + r)];
      zerosNG[size_t(r * g + j)] = uint32_t(l.zeros[size_t(j * l.n + r)]);
    }
  std::vector<OutTensor> out;
  out.push_back(make(l.name + ".weight_packed", st::DType::I32,
                     {l.n, (l.k + pf - 1) / pf},
                     toBytes(packCT(codesNK, l.n, l.k, l.bits, 1))));
  out.push_back(make(l.name + ".weight_scale", st::DType::F16, {l.n, g},
                     toBytes(scalesNG)));
  if (!l.symmetric)
    out.push_back(make(l.name + ".weight_zero_point", st::DType::I32,
                       {(l.n + pf - 1) / pf, g},
                       toBytes(packCT(zerosNG, l.n, g, l.bits, 0))));
  out.push_back(make(l.name + ".weight_shape", st::DType::I64, {2},
                     toBytes(std::vector<int64_t>{l.n, l.k})));
  if (l.actOrder)
    out.push_back(make(l.name + ".weight_g_idx", st::DType::I32, {l.k},
                       toBytes(l.gIdx)));
  return out;
}

std::vector<OutTensor> encodeLayer(Format format, const QuantLayer &l) {
  std::vector<OutTensor> out;
  switch (format) {
  case Format::GPTQ:
  case Format::GPTQv2:
    out = encodeGPTQ(l, format == Format::GPTQv2);
    break;
  case Format::AWQ:
    out = encodeAWQ(l);
    break;
  case Format::CompressedTensors:
    out = encodeCT(l);
    break;
  }
  if (!l.bias.empty())
    out.push_back(make(l.name + ".bias", st::DType::F16, {l.n}, toBytes(l.bias)));
  return out;
}

//===----------------------------------------------------------------------===//
// Reading back
//===----------------------------------------------------------------------===//

static Error tensorError(const Twine &msg) {
  return createStringError(inconvertibleErrorCode(), msg);
}

static std::string shapeString(ArrayRef<int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

/// The tensor `name`, checked to be `dtype` [shape].
static Expected<const TensorRef *> need(TensorLookup lookup, StringRef name,
                                        st::DType dtype,
                                        ArrayRef<int64_t> shape) {
  const TensorRef *t = lookup(name);
  if (!t)
    return tensorError("checkpoint has no tensor '" + name + "'");
  if (t->dtype != dtype)
    return tensorError("checkpoint tensor '" + name + "' is " +
                       st::dtypeName(t->dtype) + ", expected " +
                       st::dtypeName(dtype));
  if (t->shape != shape)
    return tensorError("checkpoint tensor '" + name + "' has shape " +
                       shapeString(t->shape) + ", but the graph's layer needs " +
                       shapeString(shape));
  return t;
}

/// f16 scales; f32/bf16 ones (some tools write them) are rounded to f16.
static Expected<std::vector<uint16_t>> readScales(TensorLookup lookup,
                                                  StringRef name,
                                                  ArrayRef<int64_t> shape) {
  const TensorRef *t = lookup(name);
  if (t && t->dtype != st::DType::F16) {
    if (t->shape != shape)
      return need(lookup, name, st::DType::F16, shape).takeError();
    std::vector<uint16_t> out(t->bytes.size() / st::dtypeSize(t->dtype));
    for (size_t i = 0; i < out.size(); ++i) {
      if (t->dtype == st::DType::F32) {
        float f;
        std::memcpy(&f, t->bytes.data() + 4 * i, 4);
        out[i] = st::floatToHalf(f);
      } else if (t->dtype == st::DType::BF16) {
        uint16_t b;
        std::memcpy(&b, t->bytes.data() + 2 * i, 2);
        out[i] = st::floatToHalf(st::bf16ToFloat(b));
      } else {
        return need(lookup, name, st::DType::F16, shape).takeError();
      }
    }
    return out;
  }
  auto ref = need(lookup, name, st::DType::F16, shape);
  if (!ref)
    return ref.takeError();
  return fromBytes<uint16_t>((*ref)->bytes);
}

static Error checkCodes(const QuantLayer &l, StringRef what) {
  for (int32_t g : l.gIdx)
    if (g < 0 || g >= l.numGroups())
      return tensorError("checkpoint tensor '" + what + "' holds group " +
                         Twine(g) + ", outside [0, " + Twine(l.numGroups()) +
                         ")");
  return Error::success();
}

Expected<QuantLayer> decodeLayer(Format format, const LayerConfig &cfg,
                                 StringRef name, int64_t n, int64_t k,
                                 TensorLookup lookup) {
  QuantLayer l;
  l.name = name.str();
  l.n = n;
  l.k = k;
  l.bits = cfg.bits;
  l.groupSize = cfg.groupSize == k ? -1 : cfg.groupSize;
  l.symmetric = cfg.symmetric;
  l.actOrder = cfg.actOrder;
  std::string base = name.str();
  if (l.groupSize != -1 && (l.groupSize <= 0 || k % l.groupSize))
    return tensorError("layer '" + name + "': group size " +
                       Twine(cfg.groupSize) + " does not divide K = " +
                       Twine(k));
  int64_t g = l.numGroups();
  std::vector<uint32_t> zeros;
  switch (format) {
  case Format::GPTQ:
  case Format::GPTQv2: {
    if ((k * l.bits) % 32 || (n * l.bits) % 32)
      return tensorError("layer '" + name + "': K*bits and N*bits must be multiples of 32 for GPTQ");
    auto qw = need(lookup, base + ".qweight", st::DType::I32, {k * l.bits / 32, n});
    if (!qw)
      return qw.takeError();
    auto qz = need(lookup, base + ".qzeros", st::DType::I32, {g, n * l.bits / 32});
    if (!qz)
      return qz.takeError();
    std::vector<uint32_t> codes = quant::unpackBitStream(
        fromBytes<int32_t>((*qw)->bytes), k, n, l.bits, 0);
    l.codes.assign(codes.begin(), codes.end());
    zeros = quant::unpackBitStream(fromBytes<int32_t>((*qz)->bytes), g, n,
                                   l.bits, 1);
    uint32_t mask = (1u << l.bits) - 1;
    if (format == Format::GPTQ)
      for (uint32_t &z : zeros)
        z = (z + 1) & (mask * 2 + 1); // may reach 2^bits: caught below
    auto s = readScales(lookup, base + ".scales", {g, n});
    if (!s)
      return s.takeError();
    l.scales = std::move(*s);
    if (l.actOrder) {
      auto gi = need(lookup, base + ".g_idx", st::DType::I32, {k});
      if (!gi)
        return gi.takeError();
      l.gIdx = fromBytes<int32_t>((*gi)->bytes);
    } else if (const TensorRef *gi = lookup(base + ".g_idx")) {
      // desc_act false: g_idx must be the plain grouping, which is implied.
      auto checked = need(lookup, base + ".g_idx", st::DType::I32, {k});
      if (!checked)
        return checked.takeError();
      std::vector<int32_t> v = fromBytes<int32_t>(gi->bytes);
      for (int64_t c = 0; c < k; ++c)
        if (v[c] != (l.groupSize == -1 ? 0 : c / l.groupSize))
          return tensorError("checkpoint tensor '" + base +
                             ".g_idx' is not the plain grouping k / " +
                             Twine(cfg.groupSize) + " but desc_act is false");
    }
    break;
  }
  case Format::AWQ: {
    if (l.bits != 4 || n % 8)
      return tensorError("layer '" + name + "': AutoAWQ GEMM needs 4 bits and N % 8 == 0");
    auto qw = need(lookup, base + ".qweight", st::DType::I32, {k, n / 8});
    if (!qw)
      return qw.takeError();
    auto qz = need(lookup, base + ".qzeros", st::DType::I32, {g, n / 8});
    if (!qz)
      return qz.takeError();
    std::vector<uint32_t> codes = unpackAWQ(fromBytes<int32_t>((*qw)->bytes), k, n);
    l.codes.assign(codes.begin(), codes.end());
    zeros = unpackAWQ(fromBytes<int32_t>((*qz)->bytes), g, n);
    auto s = readScales(lookup, base + ".scales", {g, n});
    if (!s)
      return s.takeError();
    l.scales = std::move(*s);
    l.actOrder = false;
    break;
  }
  case Format::CompressedTensors: {
    int64_t pf = ctPackFactor(l.bits);
    auto shape = need(lookup, base + ".weight_shape", st::DType::I64, {2});
    if (!shape) {
      // Some writers store weight_shape as int32.
      consumeError(shape.takeError());
      shape = need(lookup, base + ".weight_shape", st::DType::I32, {2});
      if (!shape)
        return shape.takeError();
      std::vector<int32_t> v = fromBytes<int32_t>((*shape)->bytes);
      if (v[0] != n || v[1] != k)
        return tensorError("checkpoint tensor '" + base + ".weight_shape' is [" +
                           Twine(v[0]) + ", " + Twine(v[1]) +
                           "], but the graph's layer is [" + Twine(n) + ", " +
                           Twine(k) + "]");
    } else {
      std::vector<int64_t> v = fromBytes<int64_t>((*shape)->bytes);
      if (v[0] != n || v[1] != k)
        return tensorError("checkpoint tensor '" + base + ".weight_shape' is [" +
                           Twine(v[0]) + ", " + Twine(v[1]) +
                           "], but the graph's layer is [" + Twine(n) + ", " +
                           Twine(k) + "]");
    }
    auto qw = need(lookup, base + ".weight_packed", st::DType::I32,
                   {n, (k + pf - 1) / pf});
    if (!qw)
      return qw.takeError();
    std::vector<uint32_t> nk =
        unpackCT(fromBytes<int32_t>((*qw)->bytes), n, k, l.bits, 1);
    l.codes.resize(size_t(k * n));
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < k; ++c)
        l.codes[size_t(c * n + r)] = uint8_t(nk[size_t(r * k + c)]);
    auto s = readScales(lookup, base + ".weight_scale", {n, g});
    if (!s)
      return s.takeError();
    l.scales.resize(size_t(g * n));
    zeros.assign(size_t(g * n), 1u << (l.bits - 1));
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < g; ++j)
        l.scales[size_t(j * n + r)] = (*s)[size_t(r * g + j)];
    if (!l.symmetric) {
      auto zp = need(lookup, base + ".weight_zero_point", st::DType::I32,
                     {(n + pf - 1) / pf, g});
      if (!zp)
        return zp.takeError();
      std::vector<uint32_t> zng =
          unpackCT(fromBytes<int32_t>((*zp)->bytes), n, g, l.bits, 0);
      for (int64_t r = 0; r < n; ++r)
        for (int64_t j = 0; j < g; ++j)
          zeros[size_t(j * n + r)] = zng[size_t(r * g + j)];
    }
    if (l.actOrder) {
      auto gi = need(lookup, base + ".weight_g_idx", st::DType::I32, {k});
      if (!gi)
        return gi.takeError();
      l.gIdx = fromBytes<int32_t>((*gi)->bytes);
    }
    break;
  }
  }
  uint32_t maxq = (1u << l.bits) - 1;
  l.zeros.resize(zeros.size());
  bool allMid = true;
  for (size_t i = 0; i < zeros.size(); ++i) {
    if (zeros[i] > maxq)
      return tensorError("layer '" + name + "': zero point " + Twine(zeros[i]) +
                         " does not fit in " + Twine(l.bits) + " bits");
    l.zeros[i] = int32_t(zeros[i]);
    allMid &= zeros[i] == (1u << (l.bits - 1));
  }
  // A checkpoint that says sym but stores other zeros is read as what it
  // stores.
  l.symmetric = l.symmetric && allMid;
  if (Error err = checkCodes(l, base + ".g_idx"))
    return std::move(err);
  if (const TensorRef *b = lookup(base + ".bias")) {
    auto checked = readScales(lookup, base + ".bias", {n});
    if (!checked)
      return checked.takeError();
    l.bias = std::move(*checked);
    (void)b;
  }
  return l;
}

//===----------------------------------------------------------------------===//
// vLLM kernel selection
//===----------------------------------------------------------------------===//

/// vllm/model_executor/layers/quantization/utils/marlin_utils.py:
/// check_marlin_supports_shape (N % GPTQ_MARLIN_MIN_THREAD_N = 64,
/// K % GPTQ_MARLIN_MIN_THREAD_K = 128, group dividing K) and
/// MARLIN_SUPPORTED_GROUP_SIZES (-1, 32, 64, 128). Empty if Marlin fits.
static std::string marlinShapeProblem(const QuantLayer &l) {
  if (l.groupSize != -1 && l.groupSize != 32 && l.groupSize != 64 &&
      l.groupSize != 128)
    return "group size " + std::to_string(l.groupSize) +
           " is not one of Marlin's -1/32/64/128";
  if (l.n % 64)
    return "N = " + std::to_string(l.n) + " is not a multiple of 64";
  if (l.k % 128)
    return "K = " + std::to_string(l.k) + " is not a multiple of 128";
  return "";
}

std::string vllmKernel(Format format, const QuantLayer &l) {
  std::string shape = marlinShapeProblem(l);
  switch (format) {
  case Format::GPTQ: {
    // gptq_marlin.py GPTQMarlinConfig.TYPE_MAP: (4, sym) uint4b8 and
    // (8, sym) uint8b128 only; anything else goes to gptq.py's exllama kernel.
    std::string why;
    if (l.bits != 4 && l.bits != 8)
      why = std::to_string(l.bits) + "-bit";
    else if (!l.symmetric)
      why = "asymmetric (Marlin takes symmetric GPTQ only)";
    else
      why = shape;
    if (why.empty())
      return "gptq_marlin (Ampere sm_80+; older GPUs fall back to gptq)";
    return "gptq (exllama fallback, slower than Marlin): " + why;
  }
  case Format::GPTQv2:
    return "none reliable: vLLM releases read every GPTQ checkpoint as v1 "
           "(zero + 1), so a gptq_v2 one decodes wrongly there; use --format "
           "gptq for vLLM (transformers/GPTQModel read v2)";
  case Format::AWQ:
    if (shape.empty())
      return "awq_marlin (Ampere sm_80+; older GPUs fall back to the awq GEMM "
             "kernel, sm_75+)";
    if (l.groupSize == -1)
      return "none: " + shape + ", and vLLM's awq GEMM kernel needs a group "
                                "size dividing K";
    return "awq (GEMM kernel, sm_75+): " + shape;
  case Format::CompressedTensors:
    // compressed_tensors_wNa16.py WNA16_SUPPORTED_BITS = [4, 8]; the kernel
    // comes from choose_mp_linear_kernel (Marlin on sm_80+).
    if (l.bits != 4 && l.bits != 8)
      return "none: vLLM's CompressedTensorsWNA16 takes 4 or 8 bits, not " +
             std::to_string(l.bits);
    if (!shape.empty())
      return "none fast: " + shape + " (MarlinLinearKernel cannot take it)";
    return std::string("CompressedTensorsWNA16 -> MarlinLinearKernel (Ampere "
                       "sm_80+)") +
           (l.symmetric ? "" : "; zero points need a vLLM with asymmetric "
                               "WNA16 support");
  }
  return "";
}

} // namespace quant_mlir::hf
