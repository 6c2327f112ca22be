//===- GPTQResults.cpp - GPTQ results kept for wq-gptq precomputed= ---===//
// The calibration loop's GPTQ results (LayerQuantizer::quantize) as entries
// of a safetensors archive, and their lookup by wq-gptq: an entry is used
// only when its key (options, scheme, Hessian and weight bytes) matches.
//===----------------------------------------------------------------------===//

#include "QuantizeCommon.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/xxhash.h"

using namespace llvm;
using namespace quant_mlir;
using namespace quant_mlir::wq;
using safetensors::DType;

namespace {
template <typename T> std::vector<uint8_t> bytesOf(const std::vector<T> &v) {
  const auto *p = reinterpret_cast<const uint8_t *>(v.data());
  return {p, p + v.size() * sizeof(T)};
}
} // namespace

std::string wq::detail::resultKey(StringRef fingerprint,
                                  const quant::Scheme &qs,
                                  ArrayRef<double> hessian, ArrayRef<float> w) {
  auto hash = [](const auto &v) {
    return llvm::utohexstr(llvm::xxh3_64bits(ArrayRef<uint8_t>(
        reinterpret_cast<const uint8_t *>(v.data()), v.size() * sizeof(v[0]))));
  };
  return llvm::formatv("{0} scheme={1},{2},{3},{4} hessian={5} weight={6}",
                       fingerprint, qs.bits, qs.groupSize, int(qs.symmetric),
                       int(qs.actOrder), hash(hessian), hash(w))
      .str();
}

llvm::Error wq::detail::addResult(safetensors::Writer &out, StringRef layer,
                                  const quant::QuantizedWeight &q,
                                  const quant::GPTQOutputError &own,
                                  StringRef key) {
  std::string prefix = (layer + ".gptq.").str();
  int64_t groups = q.numGroups();
  if (llvm::Error e = out.addOwned(prefix + "q", DType::U8, {q.k, q.n}, q.q))
    return e;
  if (llvm::Error e = out.addOwned(prefix + "scales", DType::F32, {groups, q.n},
                                   bytesOf(q.scales)))
    return e;
  if (llvm::Error e = out.addOwned(prefix + "zeros", DType::I32, {groups, q.n},
                                   bytesOf(q.zeros)))
    return e;
  if (!q.gIdx.empty())
    if (llvm::Error e =
            out.addOwned(prefix + "g_idx", DType::I32, {q.k}, bytesOf(q.gIdx)))
      return e;
  std::vector<double> error{own.valid ? 1.0 : 0.0, own.error, own.reference};
  if (llvm::Error e =
          out.addOwned(prefix + "error", DType::F64, {3}, bytesOf(error)))
    return e;
  out.setMetadata(layer, key);
  return llvm::Error::success();
}

std::optional<std::pair<quant::QuantizedWeight, quant::GPTQOutputError>>
wq::detail::findResult(const safetensors::Reader &in, StringRef layer,
                       StringRef key, int64_t n, int64_t k,
                       const quant::Scheme &qs) {
  auto it = in.metadata().find(layer.str());
  if (it == in.metadata().end() || it->second != key)
    return std::nullopt;
  std::string prefix = (layer + ".gptq.").str();
  auto tensor =
      [&](StringRef name, DType dtype,
          ArrayRef<int64_t> shape) -> const safetensors::TensorInfo * {
    const safetensors::TensorInfo *t = in.lookup(prefix + name.str());
    return t && t->dtype == dtype && ArrayRef<int64_t>(t->shape) == shape
               ? t
               : nullptr;
  };
  int64_t groups = qs.numGroups(k);
  const auto *codes = tensor("q", DType::U8, {k, n});
  const auto *scales = tensor("scales", DType::F32, {groups, n});
  const auto *zeros = tensor("zeros", DType::I32, {groups, n});
  const auto *error = tensor("error", DType::F64, {3});
  const auto *gIdx = qs.actOrder ? tensor("g_idx", DType::I32, {k}) : nullptr;
  if (!codes || !scales || !zeros || !error || (qs.actOrder && !gIdx))
    return std::nullopt;
  std::pair<quant::QuantizedWeight, quant::GPTQOutputError> r;
  quant::QuantizedWeight &q = r.first;
  q.n = n;
  q.k = k;
  q.scheme = qs;
  auto c = in.as<uint8_t>(*codes);
  q.q.assign(c.begin(), c.end());
  auto sc = in.as<float>(*scales);
  q.scales.assign(sc.begin(), sc.end());
  auto z = in.as<int32_t>(*zeros);
  q.zeros.assign(z.begin(), z.end());
  if (gIdx) {
    auto g = in.as<int32_t>(*gIdx);
    q.gIdx.assign(g.begin(), g.end());
  }
  auto e = in.as<double>(*error);
  r.second.valid = e[0] != 0;
  r.second.error = e[1];
  r.second.reference = e[2];
  return r;
}
