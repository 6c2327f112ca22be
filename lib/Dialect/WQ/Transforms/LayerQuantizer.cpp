//===- LayerQuantizer.cpp - the layer quantizer wq-rtn/gptq/awq share -------===//
// Rewrites float linear layers into packed quantized layers: reads weights
// (and Hessians) from the archives, quantizes with the QuantMLIRQuant
// numerics, and writes one new archive atomically once every layer succeeded.
// The passes (RTN.cpp, GPTQ.cpp, AWQ.cpp) only build its configuration.
//===----------------------------------------------------------------------===//

#include "QuantizeCommon.h"

#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h"
#include "quant-mlir/Dialect/WQ/Transforms/LayerQuantizer.h"
#include "quant-mlir/Dialect/WQ/Transforms/SchemeSelection.h"
#include "quant-mlir/Quant/AWQ.h"
#include "quant-mlir/Quant/CustomQuantizer.h"
#include "quant-mlir/Quant/GPTQ.h"
#include "quant-mlir/Quant/LayerError.h"
#include "quant-mlir/Quant/Packing.h"
#include "quant-mlir/Quant/Quantizer.h"
#include "quant-mlir/Support/CheckedMath.h"
#include "quant-mlir/Support/Progress.h"
#include "quant-mlir/Support/SafeTensors.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"

#include <map>

using namespace mlir;
using namespace quant_mlir;
using namespace quant_mlir::wq;
using namespace quant_mlir::wq::detail;
using safetensors::DType;

std::string QuantizeConfig::fingerprint() const {
    // No skip list means the default one: both spell the same selection (the
    // driver passes the default explicitly, quant-opt leaves it out).
    std::string skipText =
        llvm::join(select.skip.value_or(SchemeSelector::defaultSkip()), ",");
    std::string text =
        llvm::formatv("method={0} bits={1} group-size={2} zero-point={3} "
                      "desc-act={4} skip={5} overrides={6} fake-quant={7} "
                      "scale-dtype={8}",
                      gptq             ? std::string("gptq")
                      : custom.empty() ? std::string("rtn")
                                       : "custom:" + custom,
                      select.bits, select.groupSize,
                      int(select.zeroPoint), int(select.actOrder), skipText,
                      llvm::join(select.overrides, ","), int(fakeQuant),
                      scaleType)
            .str();
    if (gptq)
      text += llvm::formatv(" damp-percent={0:e6} block-size={1} "
                            "static-groups={2}",
                            gptqOptions.dampPercent, gptqOptions.blockSize,
                            int(gptqOptions.staticGroups))
                  .str();
    return text;
}

llvm::Error quant_mlir::wq::detail::fail(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

LogicalResult
quant_mlir::wq::detail::parseScaleType(StringRef text,
                                       std::optional<DType> &out) {
  out.reset();
  if (text == "f16")
    out = DType::F16;
  else if (text == "bf16")
    out = DType::BF16;
  else if (text == "f32")
    out = DType::F32;
  else if (text != "auto")
    return failure();
  return success();
}

std::string quant_mlir::wq::detail::resolve(StringRef baseDir, StringRef path) {
  if (baseDir.empty() || llvm::sys::path::is_absolute(path))
    return path.str();
  SmallString<256> full(baseDir);
  llvm::sys::path::append(full, path);
  return std::string(full);
}

std::vector<float>
quant_mlir::wq::detail::toFloats(const safetensors::Reader &reader,
                                 const safetensors::TensorInfo &info) {
  std::vector<float> out(info.numElements());
  if (info.dtype == DType::F32) {
    auto v = reader.as<float>(info);
    std::copy(v.begin(), v.end(), out.begin());
  } else {
    auto v = reader.as<uint16_t>(info);
    for (size_t i = 0; i < out.size(); ++i)
      out[i] = info.dtype == DType::F16 ? safetensors::halfToFloat(v[i])
                                        : safetensors::bf16ToFloat(v[i]);
  }
  return out;
}

std::vector<uint8_t> quant_mlir::wq::detail::fromFloats(ArrayRef<float> v,
                                                        DType dtype) {
  std::vector<uint8_t> out;
  if (dtype == DType::F32) {
    out.resize(v.size() * 4);
    std::memcpy(out.data(), v.data(), out.size());
    return out;
  }
  out.resize(v.size() * 2);
  for (size_t i = 0; i < v.size(); ++i) {
    uint16_t h = dtype == DType::F16 ? safetensors::floatToHalf(v[i])
                                     : safetensors::floatToBF16(v[i]);
    std::memcpy(out.data() + 2 * i, &h, 2);
  }
  return out;
}

namespace {
template <typename T> std::vector<uint8_t> bytesOf(const std::vector<T> &v) {
  const auto *p = reinterpret_cast<const uint8_t *>(v.data());
  return {p, p + v.size() * sizeof(T)};
}

Type elementTypeOf(Builder &b, DType dtype) {
  switch (dtype) {
  case DType::F16:
    return b.getF16Type();
  case DType::BF16:
    return b.getBF16Type();
  default:
    return b.getF32Type();
  }
}

/// One layer's float weight, read from the archive.
struct LayerWeight {
  const safetensors::TensorInfo *info = nullptr;
  std::vector<float> w;
  int64_t n = 0, k = 0;
};

llvm::Expected<LayerWeight> loadWeight(const safetensors::Reader &in,
                                       WeightOp weightOp, StringRef layer) {
  const safetensors::TensorInfo *info = in.lookup(weightOp.getName());
  if (!info || info->shape.size() != 2 ||
      (info->dtype != DType::F32 && info->dtype != DType::F16 &&
       info->dtype != DType::BF16))
    return fail("layer '" + layer + "': weight '" + weightOp.getName() +
                "' is not a 2-D float tensor of the archive");
  // Checked here, before any output is written: the quantized op built from
  // a mismatching archive shape would only fail to verify after the pass
  // had written its archive.
  ArrayRef<int64_t> declared = weightOp.getType().getShape();
  if (ArrayRef<int64_t>(info->shape) != declared)
    return fail("layer '" + layer + "': weight '" + weightOp.getName() +
                "' has shape " + formatDims(info->shape) +
                " in the archive but " + formatDims(declared) + " in the IR");
  LayerWeight lw;
  lw.info = info;
  lw.n = info->shape[0];
  lw.k = info->shape[1];
  lw.w = toFloats(in, *info);
  return lw;
}

quant::Scheme toScheme(SchemeAttr scheme) {
  return {scheme.getBits(), scheme.getGroupSize(), scheme.getSymmetric(),
          scheme.getActOrder()};
}

/// One layer's calibration statistics as views of the statistics archive
/// (empty where absent), for custom quantizers.
struct LayerStatsView {
  ArrayRef<double> hessian;
  ArrayRef<float> xMean, rows;
  int64_t numRows = 0;
};

/// RTN, GPTQ or the custom quantizer of one layer, after the checks every
/// caller needs.
llvm::Expected<quant::QuantizedWeight>
quantizeLayer(const QuantizeConfig &cfg, const quant::Scheme &qs,
              const LayerWeight &lw, ArrayRef<double> hessian, StringRef layer,
              const LayerStatsView &statsView = {},
              quant::GPTQOutputError *outputError = nullptr) {
  if (llvm::Error e = quant::verifyScheme(qs, lw.n, lw.k, layer))
    return std::move(e);
  int64_t n = lw.n, k = lw.k;
  if (!cfg.fakeQuant && ((k * qs.bits) % 32 != 0 ||
                         (!qs.symmetric && (n * qs.bits) % 32 != 0)))
    return fail("layer '" + layer + "': " + llvm::Twine(qs.bits) +
                "-bit gptq packing needs K * bits (" + llvm::Twine(k) + " * " +
                llvm::Twine(qs.bits) + ")" +
                (qs.symmetric ? "" : " and N * bits") +
                " to be a multiple of 32; skip the layer (skip= or "
                "overrides=GLOB:skip)");
  if (!cfg.custom.empty()) {
    quant::CustomQuantizeInput in;
    in.layer = layer;
    in.weight = lw.w;
    in.n = n;
    in.k = k;
    in.scheme = qs;
    in.hessian = statsView.hessian;
    in.xMean = statsView.xMean;
    in.rows = statsView.rows;
    in.numRows = statsView.numRows;
    return quant::runCustomQuantizer(cfg.custom, in);
  }
  if (cfg.gptq)
    return quant::quantizeGPTQ(lw.w, n, k, hessian, qs, cfg.gptqOptions, layer,
                               outputError);
  return cfg.awq ? quant::quantizeAWQRTN(lw.w, n, k, qs)
                 : quant::quantizeRTN(lw.w, n, k, qs);
}

/// Rounds `q`'s scales to `type`, the dtype a packed layer stores them in:
/// fake-quant weights are then the packed layer's dequantization exactly.
void roundScales(quant::QuantizedWeight &q, DType type) {
  if (type != DType::F32)
    for (float &s : q.scales)
      s = type == DType::F16
              ? safetensors::halfToFloat(safetensors::floatToHalf(s))
              : safetensors::bf16ToFloat(safetensors::floatToBF16(s));
}

/// The weight a packed layer whose scales are stored in `type` computes
/// with: (q - z) * s through the rounded scales, the product rounded to
/// `type` too. f16 (bf16) scales dequantize in that type
/// (wq-expand-quantized-linear; AutoGPTQ's and vLLM's f16 kernels alike), up
/// to 2^-11 (2^-8) relative from the exact f32 product: fake-quant weights
/// that skip this rounding give other logits (docs/export.md).
std::vector<float> dequantizeAs(quant::QuantizedWeight &q, DType type) {
  roundScales(q, type);
  std::vector<float> w = q.dequantize();
  if (type == DType::F16)
    for (float &x : w)
      x = safetensors::halfToFloat(safetensors::floatToHalf(x));
  else if (type == DType::BF16)
    for (float &x : w)
      x = safetensors::bf16ToFloat(safetensors::floatToBF16(x));
  return w;
}

/// The float weight the output model computes with (fake-quant or packed),
/// its scales stored in `scaleType` (the archive dtype when unset).
std::vector<float> effectiveWeights(quant::QuantizedWeight q,
                                    std::optional<DType> scaleType,
                                    DType weightType) {
  return dequantizeAs(q, scaleType.value_or(weightType));
}

/// The layer's statistics in `stats` (none: an empty view), checked against
/// its K.
LogicalResult viewStats(LinearOp op, const safetensors::Reader *stats,
                        StringRef layer, int64_t k, LayerStatsView &view) {
  std::optional<StatsAttr> attr = op.getStats();
  if (!attr || !stats)
    return success();
  auto bad = [&](StringRef key, StringRef what) -> LogicalResult {
    return op.emitError() << "layer '" << layer << "': statistics '" << key
                          << "' must be " << what;
  };
  const safetensors::TensorInfo *h = stats->lookup(attr->getHessianKey());
  if (h) {
    if (h->dtype != DType::F64 || h->shape != SmallVector<int64_t>{k, k})
      return bad(attr->getHessianKey(), "an F64 [K, K] Hessian");
    view.hessian = stats->as<double>(*h);
  }
  if (const auto *m = stats->lookup(attr->getAbsMeanKey())) {
    if (m->dtype != DType::F32 || m->shape != SmallVector<int64_t>{k})
      return bad(attr->getAbsMeanKey(), "F32 [K]");
    view.xMean = stats->as<float>(*m);
  }
  if (const auto *r = stats->lookup(attr->getInputsKey())) {
    if (r->dtype != DType::F32 || r->shape.size() != 2 || r->shape[1] != k)
      return bad(attr->getInputsKey(), "F32 [rows, K]");
    view.rows = stats->as<float>(*r);
    view.numRows = r->shape[0];
  }
  return success();
}

} // namespace

quant_mlir::wq::detail::WeightRewriter::~WeightRewriter() = default;

LogicalResult quant_mlir::wq::detail::runQuantize(
    ModuleOp module, const QuantizeConfig &cfg, StringRef passName,
    WeightRewriter *rewriter) {
  MLIRContext *ctx = module.getContext();
  if (cfg.output.empty())
    return module.emitError() << passName
                              << " needs output=<archive> for the quantized "
                                 "weights";
  StringRef archive = getArchivePath(module);
  if (archive.empty())
    return module.emitError() << passName
                              << ": the module names no wq.archive";
  auto in = safetensors::Reader::open(resolve(cfg.baseDir, archive));
  if (!in)
    return module.emitError() << llvm::toString(in.takeError());
  std::unique_ptr<safetensors::Reader> stats;
  if (cfg.gptq || !cfg.custom.empty()) {
    if (auto path = module->getAttrOfType<StringAttr>(
            WQDialect::kStatsArchiveAttrName)) {
      auto reader = safetensors::openArchive(resolve(cfg.baseDir, path));
      if (!reader)
        return module.emitError() << llvm::toString(reader.takeError());
      stats = std::move(*reader);
    }
  }
  std::unique_ptr<safetensors::Reader> precomputed;
  if (cfg.gptq && !cfg.precomputed.empty()) {
    auto reader =
        safetensors::openArchive(resolve(cfg.baseDir, cfg.precomputed));
    if (!reader)
      return module.emitError() << llvm::toString(reader.takeError());
    precomputed = std::move(*reader);
  }
  const std::string fingerprint = cfg.fingerprint();
  std::optional<DType> scaleType;
  if (failed(parseScaleType(cfg.scaleType, scaleType)))
    return module.emitError() << "scale-dtype must be f16, bf16, f32 or auto, "
                                 "got '"
                              << cfg.scaleType << "'";
  if (cfg.trueSequential) {
    if (!stats)
      return module.emitError()
             << passName << " true-sequential=1 needs statistics (the "
                            "module names no wq.stats_archive)";
    auto it = stats->metadata().find("true_sequential");
    const std::string &expected = fingerprint;
    if (it == stats->metadata().end() || it->second != expected)
      return module.emitError()
             << passName
             << " true-sequential=1: the statistics were not recorded with "
                "this quantization in the loop (run quant-compile "
                "--true-sequential); they say '"
             << (it == stats->metadata().end() ? std::string("<none>")
                                               : it->second)
             << "', the pass is '" << expected << "'";
  }
  auto selector = SchemeSelector::create(cfg.select,
                                         [&] { return module.emitError(); });
  if (failed(selector))
    return failure();
  SmallVector<std::pair<LinearOp, SchemeAttr>> work;
  WalkResult walk = module.walk([&](LinearOp op) {
    if (SchemeAttr explicitScheme = op.getSchemeAttr()) {
      work.push_back({op, explicitScheme});
      return WalkResult::advance();
    }
    FailureOr<SchemeAttr> scheme = (*selector)->select(op);
    if (failed(scheme))
      return WalkResult::interrupt();
    if (*scheme)
      work.push_back({op, *scheme});
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return failure();

  // The new tensors wait in an unlinked temporary file, not in memory: the
  // pass holds about one layer at a time.
  std::string outputPath = resolve(cfg.baseDir, cfg.output);
  auto fresh =
      safetensors::SpillArea::create(llvm::sys::path::parent_path(outputPath));
  if (!fresh)
    return module.emitError() << llvm::toString(fresh.takeError());
  std::string spillError;
  llvm::StringSet<> dropped;
  std::string reportText =
      "layer,n,k,bits,group_size,symmetric,act_order,method,"
      "weight_rel_err,output_rel_err\n";
  auto addFresh = [&](const std::string &name, DType dtype,
                      ArrayRef<int64_t> shape, std::vector<uint8_t> bytes) {
    if (llvm::Error e = (*fresh)->add(name, dtype, shape, bytes)) {
      if (spillError.empty())
        spillError = llvm::toString(std::move(e));
      else
        llvm::consumeError(std::move(e));
    }
  };

  auto emitFresh = [&](StringRef name, DType dtype, ArrayRef<int64_t> shape,
                       ArrayRef<float> values) {
    addFresh(name.str(), dtype, shape, fromFloats(values, dtype));
  };
  if (rewriter && rewriter->floatOnly)
    work.clear();
  Progress progress(passName, work.size());
  progress.setDetail("layers");
  for (auto [op, scheme] : work) {
    StringRef layer = op.getName().value_or("");
    auto weightOp = op.getWeight().getDefiningOp<WeightOp>();
    if (!weightOp)
      return op.emitError() << "layer '" << layer
                            << "': the weight is not a wq.weight archive "
                               "reference";
    if (layer.empty())
      layer = weightOp.getName();
    // Before the archive is read: the rewrite reports its own failures
    // (missing statistics, a weight it cannot scale) first.
    std::optional<WeightRewriter::Layer> rewritten;
    if (rewriter) {
      FailureOr<std::optional<WeightRewriter::Layer>> taken =
          rewriter->take(layer, emitFresh);
      if (failed(taken))
        return failure();
      rewritten = std::move(*taken);
    }
    auto loaded = loadWeight(**in, weightOp, layer);
    if (!loaded)
      return op.emitError() << llvm::toString(loaded.takeError());
    const safetensors::TensorInfo *info = loaded->info;
    (*in)->releasePages(*info); // converted to floats: not read again
    int64_t n = loaded->n, k = loaded->k;
    // The error is measured against the weight the float model computes
    // with (after wq-awq's scaling, before its clipping).
    std::vector<float> w = loaded->w;
    const std::vector<double> *inputScale = nullptr;
    // GPTQ's own output error is that of the weight and Hessian it
    // quantized: the report's only when neither was rewritten.
    if (rewritten) {
      if (rewritten->weight.size() != size_t(n * k) ||
          (!rewritten->reference.empty() &&
           rewritten->reference.size() != size_t(n * k)) ||
          (!rewritten->inputScale.empty() &&
           rewritten->inputScale.size() != size_t(k)))
        return op.emitError() << "layer '" << layer
                              << "': rewritten weight has the wrong size";
      // Scaled, not clipped: its own reference.
      w = rewritten->reference.empty() ? rewritten->weight
                                       : std::move(rewritten->reference);
      loaded->w = std::move(rewritten->weight);
      if (!rewritten->inputScale.empty())
        inputScale = &rewritten->inputScale;
    }
    quant::Scheme qs = toScheme(scheme);
    std::vector<double> hessian;
    if (cfg.gptq) {
      std::optional<StatsAttr> statsAttr = op.getStats();
      if (!statsAttr || !stats)
        return op.emitError() << "layer '" << layer
                              << "' has no calibration statistics; run "
                                 "quant-run --calibrate first";
      const safetensors::TensorInfo *h =
          stats->lookup(statsAttr->getHessianKey());
      if (!h || h->dtype != DType::F64 ||
          h->shape != SmallVector<int64_t>{k, k})
        return op.emitError() << "layer '" << layer << "': statistics '"
                              << statsAttr->getHessianKey()
                              << "' must be an F64 [" << k << ", " << k
                              << "] Hessian";
      auto hv = stats->as<double>(*h);
      hessian.assign(hv.begin(), hv.end());
      stats->releasePages(*h);
      // The input is x / s after scaling: H' = diag(1/s) H diag(1/s).
      if (inputScale)
        for (int64_t i = 0; i < k; ++i)
          for (int64_t j = 0; j < k; ++j)
            hessian[i * k + j] /= (*inputScale)[i] * (*inputScale)[j];
    }
    LayerStatsView statsView;
    if (!cfg.custom.empty()) {
      // Optional for a custom quantizer: it gets what calibration recorded.
      if (failed(viewStats(op, stats.get(), layer, k, statsView)))
        return failure();
      hessian.assign(statsView.hessian.begin(), statsView.hessian.end());
    }
    quant::GPTQOutputError gptqError;
    bool ownError = cfg.gptq && cfg.custom.empty() && !rewritten;
    // The calibration loop's result for the same inputs, else GPTQ now.
    std::optional<std::pair<quant::QuantizedWeight, quant::GPTQOutputError>>
        found;
    if (ownError && precomputed) {
      if (llvm::Error e = quant::verifyScheme(qs, n, k, layer))
        return op.emitError() << llvm::toString(std::move(e));
      found =
          findResult(*precomputed, layer,
                     resultKey(fingerprint, qs, hessian, loaded->w), n, k, qs);
    }
    llvm::Expected<quant::QuantizedWeight> quantized =
        found ? llvm::Expected<quant::QuantizedWeight>(std::move(found->first))
              : quantizeLayer(cfg, qs, *loaded, hessian, layer, statsView,
                              ownError ? &gptqError : nullptr);
    if (found)
      gptqError = found->second;
    if (!quantized)
      return op.emitError() << llvm::toString(quantized.takeError());
    std::vector<float> deq =
        dequantizeAs(*quantized, scaleType.value_or(info->dtype));
    // GPTQ's error is that of its float64 grid, not of the stored scales
    // and products dequantizeAs gives. On the Shakespeare model (GPTQ 4-bit
    // g128, 16 x 128 tokens, 28 layers) the report's output_rel_err moved by
    // a median 4.0e-5 and at most 2.5e-4 relative with f16 scales (the f16
    // rounding of the products), and not in its 7 printed digits with f32
    // scales (bench/scale/README.md). The direct measure costs 4 N K^2
    // flops (a dsymm of [W - Q; W]), about twice GPTQ itself.
    quant::LayerError err;
    if (gptqError.valid) {
      err = quant::measureLayerError(w, deq, n, k, {});
      err.output =
          quant::relativeOutputError(gptqError.error, gptqError.reference);
    } else {
      err = quant::measureLayerError(w, deq, n, k, hessian);
    }
    reportText += (llvm::Twine(layer) + "," + llvm::Twine(n) + "," +
                   llvm::Twine(k) + "," + llvm::Twine(qs.bits) + "," +
                   llvm::Twine(qs.groupSize) + "," +
                   llvm::Twine(int(qs.symmetric)) + "," +
                   llvm::Twine(int(qs.actOrder)) + "," +
                   (rewriter && !rewriter->method.empty()
                        ? StringRef(rewriter->method)
                        : StringRef(cfg.gptq             ? "gptq"
                                    : cfg.custom.empty() ? "rtn"
                                                         : cfg.custom.c_str())) +
                   ",")
                      .str() +
                  llvm::formatv("{0:e6},{1:e6}\n", err.weight, err.output).str();

    if (cfg.fakeQuant) {
      addFresh(weightOp.getName().str(), info->dtype, info->shape,
               fromFloats(deq, info->dtype));
      op.setSchemeAttr(scheme);
      progress.advance();
      continue;
    }

    DType sType = scaleType.value_or(info->dtype);
    std::string prefix = layer.str();
    OpBuilder b(op);
    auto ref = [&](const std::string &name, Type elem,
                   ArrayRef<int64_t> shape) -> Value {
      return WeightOp::create(b, op.getLoc(), RankedTensorType::get(shape, elem),
                              name);
    };
    int64_t groups = quantized->numGroups();
    // #wq.packing<awq> holds 4-bit codes without g_idx, N % 8 == 0 (AutoAWQ's
    // GEMM layout); other layers of an AWQ model are written in gptq packing.
    bool awq = rewriter && rewriter->awqPacking && qs.bits == 4 &&
               !qs.actOrder && n % 8 == 0;
    std::vector<int32_t> codes = awq ? quant::packCodesAWQ(*quantized)
                                     : quant::packCodesGPTQ(*quantized);
    SmallVector<int64_t> codesShape{k * qs.bits / 32, n};
    if (awq)
      codesShape = {k, n / 8};
    addFresh(prefix + ".qweight", DType::I32, codesShape, bytesOf(codes));
    Value codesV = ref(prefix + ".qweight", b.getI32Type(), codesShape);
    addFresh(prefix + ".scales", sType, {groups, n},
             fromFloats(quantized->scales, sType));
    Value scalesV = ref(prefix + ".scales", elementTypeOf(b, sType), {groups, n});
    Value zerosV, gIdxV;
    if (!qs.symmetric) {
      std::vector<int32_t> zeros = awq ? quant::packZerosAWQ(*quantized)
                                       : quant::packZerosGPTQ(*quantized);
      SmallVector<int64_t> shape{groups, n * qs.bits / 32};
      addFresh(prefix + ".qzeros", DType::I32, shape, bytesOf(zeros));
      zerosV = ref(prefix + ".qzeros", b.getI32Type(), shape);
    }
    if (qs.actOrder) {
      addFresh(prefix + ".g_idx", DType::I32, {k}, bytesOf(quantized->gIdx));
      gIdxV = ref(prefix + ".g_idx", b.getI32Type(), {k});
    }
    auto qop = QuantizedLinearOp::create(
        b, op.getLoc(), op.getType(), op.getInput(), codesV, scalesV, zerosV,
        gIdxV, op.getBias(), scheme,
        PackingAttr::get(ctx, awq ? Packing::awq : Packing::gptq),
        op.getNameAttr());
    op.replaceAllUsesWith(qop.getResult());
    op.erase();
    if (weightOp->use_empty()) {
      dropped.insert(weightOp.getName());
      weightOp.erase();
    }
    progress.advance();
  }
  progress.finish();
  if (rewriter && failed(rewriter->finish(emitFresh)))
    return failure();

  // Float weights still referenced elsewhere (tied embeddings) are kept.
  module.walk([&](WeightOp op) { dropped.erase(op.getName()); });
  safetensors::Writer out;
  for (const safetensors::TensorInfo &t : (*in)->tensors()) {
    if (dropped.contains(t.name) || (*fresh)->contains(t.name))
      continue;
    if (llvm::Error e = out.add(
            t.name, t.dtype, t.shape, (*in)->bytes(t),
            (*in)->isMapped(t) ? safetensors::Writer::Source::FileMapping
                               : safetensors::Writer::Source::Memory))
      return module.emitError() << llvm::toString(std::move(e));
  }
  if (!spillError.empty())
    return module.emitError() << spillError;
  if (llvm::Error e = (*fresh)->addTo(out))
    return module.emitError() << llvm::toString(std::move(e));
  for (const auto &[key, value] : (*in)->metadata())
    out.setMetadata(key, value);
  if (llvm::Error e = out.write(resolve(cfg.baseDir, cfg.output),
                                "write " + cfg.output))
    return module.emitError() << llvm::toString(std::move(e));
  module->setAttr(WQDialect::kArchiveAttrName,
                  StringAttr::get(ctx, cfg.output));
  if (!cfg.report.empty()) {
    if (llvm::Error e = llvm::writeToOutput(
            resolve(cfg.baseDir, cfg.report), [&](llvm::raw_ostream &os) {
              os << reportText;
              return llvm::Error::success();
            }))
      return module.emitError() << llvm::toString(std::move(e));
  }
  return success();
}

struct LayerQuantizer::Impl {
  QuantizeConfig cfg;
  std::optional<DType> scaleType;
  std::unique_ptr<safetensors::Reader> archive;
  /// Layer name -> (its weight reference, its scheme; null when skipped).
  std::map<std::string, std::pair<WeightOp, SchemeAttr>> layers;
  std::string fingerprint;
};

LayerQuantizer::LayerQuantizer(std::unique_ptr<Impl> impl)
    : impl(std::move(impl)) {}
LayerQuantizer::~LayerQuantizer() = default;

llvm::Expected<std::unique_ptr<LayerQuantizer>>
LayerQuantizer::create(ModuleOp module, const WQGPTQOptions &options) {
  return create(module, configFromOptions(options), "wq-gptq");
}

llvm::Expected<std::unique_ptr<LayerQuantizer>>
LayerQuantizer::create(ModuleOp module, const WQRTNOptions &options) {
  return create(module, configFromOptions(options), "wq-rtn");
}

llvm::Expected<std::unique_ptr<LayerQuantizer>>
LayerQuantizer::create(ModuleOp module, QuantizeConfig config,
                       StringRef passName) {
  auto impl = std::make_unique<Impl>();
  impl->cfg = std::move(config);
  const QuantizeConfig &cfg = impl->cfg;
  if (failed(parseScaleType(cfg.scaleType, impl->scaleType)))
    return fail("scale-dtype must be f16, bf16, f32 or auto, got '" +
                cfg.scaleType + "'");
  StringRef archive = getArchivePath(module);
  if (archive.empty())
    return fail(passName + ": the module names no wq.archive");
  auto reader = safetensors::Reader::open(resolve(cfg.baseDir, archive));
  if (!reader)
    return reader.takeError();
  impl->archive = std::move(*reader);

  std::string diagnostic;
  ScopedDiagnosticHandler capture(module.getContext(), [&](Diagnostic &d) {
    if (diagnostic.empty())
      diagnostic = d.str();
    return success();
  });
  auto selector = SchemeSelector::create(cfg.select,
                                         [&] { return module.emitError(); });
  if (failed(selector))
    return fail(diagnostic);
  WalkResult walk = module.walk([&](LinearOp op) {
    SchemeAttr scheme = op.getSchemeAttr();
    if (!scheme) {
      FailureOr<SchemeAttr> selected = (*selector)->select(op);
      if (failed(selected))
        return WalkResult::interrupt();
      scheme = *selected;
    }
    auto weightOp = op.getWeight().getDefiningOp<WeightOp>();
    if (!weightOp) {
      op.emitError() << "the weight is not a wq.weight archive reference";
      return WalkResult::interrupt();
    }
    impl->layers[op.getName().value_or(weightOp.getName()).str()] = {weightOp,
                                                                      scheme};
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return fail(diagnostic);
  impl->fingerprint = cfg.fingerprint();
  return std::unique_ptr<LayerQuantizer>(new LayerQuantizer(std::move(impl)));
}

bool LayerQuantizer::selects(StringRef name) const {
  auto it = impl->layers.find(name.str());
  return it != impl->layers.end() && it->second.second;
}

llvm::Expected<std::pair<std::string, std::vector<uint8_t>>>
LayerQuantizer::quantize(StringRef name, ArrayRef<double> hessian,
                         safetensors::Writer *results) const {
  auto it = impl->layers.find(name.str());
  if (it == impl->layers.end() || !it->second.second)
    return fail("layer '" + name + "' is not quantized");
  auto [weightOp, scheme] = it->second;
  auto loaded = loadWeight(*impl->archive, weightOp, name);
  if (!loaded)
    return loaded.takeError();
  impl->archive->releasePages(*loaded->info);
  if (impl->cfg.gptq &&
      hessian.size() != size_t(loaded->k) * size_t(loaded->k))
    return fail("layer '" + name + "': the Hessian is not [K, K]");
  quant::Scheme qs = toScheme(scheme);
  const bool keep = results && impl->cfg.gptq && impl->cfg.custom.empty();
  quant::GPTQOutputError own;
  auto quantized = quantizeLayer(impl->cfg, qs, *loaded, hessian, name, {},
                                 keep ? &own : nullptr);
  if (!quantized)
    return quantized.takeError();
  if (keep)
    if (llvm::Error e =
            addResult(*results, name, *quantized, own,
                      resultKey(impl->fingerprint, qs, hessian, loaded->w)))
      return std::move(e);
  std::vector<float> w = effectiveWeights(std::move(*quantized),
                                          impl->scaleType, loaded->info->dtype);
  return std::make_pair(weightOp.getName().str(),
                        fromFloats(w, loaded->info->dtype));
}

const std::string &LayerQuantizer::fingerprint() const {
  return impl->fingerprint;
}
