//===- Calibration.cpp - per-layer activation statistics --------------------===//
// The Hessian of GPTQ (arXiv 2210.17323, eq. 1: H = 2 X X^T) is accumulated
// with BLAS dsyrk in float64; AWQ reads mean |x| and the sampled rows.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Runtime/Calibration.h"
#include "CalibrationInternal.h"
#include "quant-mlir/Data/TokenData.h"
#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"
#include "quant-mlir/Dialect/WQ/Transforms/Passes.h"
#include "quant-mlir/Runtime/Blockwise.h"
#include "quant-mlir/Runtime/CPURunner.h"
#include "quant-mlir/Runtime/LanguageModel.h"
#include "quant-mlir/Support/Progress.h"
#include "quant-mlir/Support/SafeTensors.h"

#include "mlir/Pass/PassManager.h"
#include "llvm/Support/Path.h"

#include <cblas.h>

#include <cmath>
#include <cstring>

using namespace quant_mlir;

static llvm::Error makeError(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

namespace {
/// The descriptor of a memref<?x?xf32> with identity layout, as passed to
/// `_mlir_ciface_` functions.
struct MemRef2D {
  float *allocated, *aligned;
  int64_t offset, sizes[2], strides[2];
};

CalibrationRecorder *activeRecorder = nullptr;
llvm::Error pendingError = llvm::Error::success();

extern "C" void wqCalibRecordHook(int64_t layer, MemRef2D *x) {
  if (!activeRecorder)
    return;
  if (llvm::Error err = activeRecorder->record(
          layer, x->aligned + x->offset, x->sizes[0], x->sizes[1],
          x->strides[0])) {
    if (!pendingError)
      pendingError = std::move(err);
    else
      llvm::consumeError(std::move(err));
  }
}
} // namespace

CalibrationRecorder::CalibrationRecorder(llvm::ArrayRef<std::string> layers,
                                         int64_t sampleRows, uint64_t seed)
    : names(layers.begin(), layers.end()), stats(layers.size()),
      sampleRows(std::max<int64_t>(sampleRows, 0)) {
  for (auto [i, s] : llvm::enumerate(stats))
    s.rng.seed(seed * 0x9E3779B97F4A7C15ull + i);
}

CalibrationRecorder::~CalibrationRecorder() {
  if (activeRecorder == this)
    activeRecorder = nullptr;
}

llvm::Error CalibrationRecorder::attach(CPUModule &module) {
  if (activeRecorder && activeRecorder != this)
    return makeError("another calibration recorder is active");
  activeRecorder = this;
  return module.registerSymbol("_mlir_ciface_wq_calib_record",
                               reinterpret_cast<void *>(&wqCalibRecordHook));
}

void CalibrationRecorder::setActive(llvm::ArrayRef<int64_t> layers) {
  active.assign(stats.size(), false);
  for (int64_t l : layers)
    active[l] = true;
}

int64_t CalibrationRecorder::indexOf(llvm::StringRef name) const {
  for (auto [i, n] : llvm::enumerate(names))
    if (n == name)
      return i;
  return -1;
}

llvm::Error CalibrationRecorder::record(int64_t layer, const float *rows,
                                        int64_t m, int64_t k,
                                        int64_t rowStride) {
  if (layer < 0 || layer >= int64_t(stats.size()))
    return makeError("calibration hook called for unknown layer #" +
                     llvm::Twine(layer));
  if (!active.empty() && !active[layer])
    return llvm::Error::success();
  LayerStats &s = stats[layer];
  if (s.final)
    return makeError("layer '" + names[layer] +
                     "' recorded after its statistics were finalized");
  if (s.k < 0) {
    s.k = k;
    s.xtx.assign(k * k, 0.0);
    s.absSum.assign(k, 0.0);
  } else if (s.k != k) {
    return makeError("layer '" + names[layer] + "' saw " + llvm::Twine(k) +
                     " input features after " + llvm::Twine(s.k));
  }
  scratch.resize(m * k);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t c = 0; c < k; ++c) {
      double v = rows[r * rowStride + c];
      if (!std::isfinite(v))
        return makeError("layer '" + names[layer] +
                         "' received a non-finite activation");
      scratch[r * k + c] = v;
      s.absSum[c] += std::abs(v);
    }
  // sum x x^T over the rows: X^T X, upper triangle.
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, k, m, 1.0, scratch.data(),
              k, 1.0, s.xtx.data(), k);
  // Reservoir sampling (Algorithm R) keeps a uniform, seeded sample.
  for (int64_t r = 0; r < m; ++r, ++s.seen) {
    int64_t slot = s.seen;
    if (slot >= sampleRows) {
      slot = static_cast<int64_t>(s.rng() % uint64_t(s.seen + 1));
      if (slot >= sampleRows)
        continue;
    }
    if (int64_t(s.samples.size()) < (slot + 1) * k)
      s.samples.resize((slot + 1) * k);
    std::memcpy(s.samples.data() + slot * k, rows + r * rowStride,
                k * sizeof(float));
  }
  s.n += m;
  return llvm::Error::success();
}

std::vector<double> CalibrationRecorder::hessian(int64_t layer) const {
  const LayerStats &s = stats[layer];
  std::vector<double> h(s.xtx.size());
  double scale = s.n > 0 ? 2.0 / double(s.n) : 0.0;
  for (int64_t i = 0; i < s.k; ++i)
    for (int64_t j = i; j < s.k; ++j)
      h[i * s.k + j] = h[j * s.k + i] = s.xtx[i * s.k + j] * scale;
  return h;
}

std::vector<float> CalibrationRecorder::absMean(int64_t layer) const {
  const LayerStats &s = stats[layer];
  std::vector<float> out(std::max<int64_t>(s.k, 0));
  for (int64_t c = 0; c < s.k; ++c)
    out[c] = static_cast<float>(s.absSum[c] / double(s.n));
  return out;
}

llvm::ArrayRef<double> CalibrationRecorder::finalHessian(int64_t layer) {
  LayerStats &s = stats[layer];
  if (!s.final) {
    // The same products as hessian(), written over the upper triangle they
    // are read from (each (i, j >= i) is read once, before its mirror).
    double scale = s.n > 0 ? 2.0 / double(s.n) : 0.0;
    for (int64_t i = 0; i < s.k; ++i)
      for (int64_t j = i; j < s.k; ++j)
        s.xtx[i * s.k + j] = s.xtx[j * s.k + i] = s.xtx[i * s.k + j] * scale;
    s.final = true;
  }
  return s.xtx;
}

llvm::Error CalibrationRecorder::commitLayers(
    llvm::StringRef path, llvm::ArrayRef<int64_t> layers,
    const std::map<std::string, std::string> &metadata) {
  if (llvm::Error err = std::move(pendingError))
    return err;
  safetensors::Writer writer;
  std::vector<std::vector<float>> absMeans;
  absMeans.reserve(layers.size());
  std::vector<std::pair<int64_t, llvm::ArrayRef<double>>> hessians;
  auto asBytes = [](const auto *p, size_t n) {
    return llvm::ArrayRef<uint8_t>(reinterpret_cast<const uint8_t *>(p),
                                   n * sizeof(*p));
  };
  for (int64_t i : layers) {
    LayerStats &s = stats[i];
    if (s.n == 0)
      return makeError("layer '" + names[i] +
                       "' saw no calibration data (is it reachable from the "
                       "entry function?)");
    llvm::ArrayRef<double> h = finalHessian(i);
    std::vector<float> &absMean = absMeans.emplace_back(s.k);
    for (int64_t c = 0; c < s.k; ++c)
      absMean[c] = static_cast<float>(s.absSum[c] / double(s.n));
    int64_t rows = std::min<int64_t>(s.seen, sampleRows);
    // Layers that read the same activations (q/k/v, gate/up) have the same
    // Hessian bit for bit: stored once, the others are aliases of it.
    auto same = llvm::find_if(hessians, [&](const auto &earlier) {
      return earlier.second.size() == h.size() &&
             std::memcmp(earlier.second.data(), h.data(),
                         h.size() * sizeof(double)) == 0;
    });
    if (llvm::Error err =
            same != hessians.end()
                ? writer.addAlias(names[i] + ".hessian",
                                  names[same->first] + ".hessian")
                : writer.add(names[i] + ".hessian", safetensors::DType::F64,
                             {s.k, s.k}, asBytes(h.data(), h.size())))
      return err;
    if (same == hessians.end())
      hessians.emplace_back(i, h);
    if (llvm::Error err =
            writer.add(names[i] + ".absmean", safetensors::DType::F32, {s.k},
                       asBytes(absMean.data(), absMean.size())))
      return err;
    if (rows > 0)
      if (llvm::Error err = writer.add(names[i] + ".inputs",
                                       safetensors::DType::F32, {rows, s.k},
                                       asBytes(s.samples.data(), rows * s.k)))
        return err;
    writer.setMetadata("tokens." + names[i], std::to_string(s.n));
  }
  for (const auto &[name, values] : extra)
    if (llvm::Error err = writer.add(name, safetensors::DType::F64,
                                     {int64_t(values.size())},
                                     asBytes(values.data(), values.size())))
      return err;
  for (const auto &[key, value] : metadata)
    writer.setMetadata(key, value);
  if (llvm::Error err = writer.write(path))
    return err;
  extra.clear();
  for (int64_t i : layers) {
    LayerStats &s = stats[i];
    std::vector<double>().swap(s.xtx);
    std::vector<double>().swap(s.absSum);
    std::vector<float>().swap(s.samples);
  }
  return llvm::Error::success();
}

llvm::Error CalibrationRecorder::write(
    llvm::StringRef path,
    const std::map<std::string, std::string> &metadata) const {
  if (llvm::Error err = std::move(pendingError))
    return err;
  safetensors::Writer writer;
  for (auto [i, s] : llvm::enumerate(stats)) {
    if (s.n == 0)
      return makeError("layer '" + names[i] +
                       "' saw no calibration data (is it reachable from the "
                       "entry function?)");
    auto asBytes = [](const auto &v) {
      const auto *p = reinterpret_cast<const uint8_t *>(v.data());
      return std::vector<uint8_t>(p, p + v.size() * sizeof(v[0]));
    };
    std::vector<float> absMean = this->absMean(i);
    int64_t rows = std::min<int64_t>(s.seen, sampleRows);
    std::vector<float> samples(s.samples.begin(), s.samples.begin() + rows * s.k);
    if (llvm::Error err = writer.addOwned(names[i] + ".hessian",
                                          safetensors::DType::F64, {s.k, s.k},
                                          asBytes(hessian(i))))
      return err;
    if (llvm::Error err = writer.addOwned(names[i] + ".absmean",
                                          safetensors::DType::F32, {s.k},
                                          asBytes(absMean)))
      return err;
    if (rows > 0)
      if (llvm::Error err = writer.addOwned(names[i] + ".inputs",
                                            safetensors::DType::F32,
                                            {rows, s.k}, asBytes(samples)))
        return err;
  }
  for (const auto &[name, values] : extra) {
    const auto *p = reinterpret_cast<const uint8_t *>(values.data());
    if (llvm::Error err = writer.addOwned(
            name, safetensors::DType::F64, {int64_t(values.size())},
            std::vector<uint8_t>(p, p + values.size() * sizeof(double))))
      return err;
  }
  for (const auto &[key, value] : metadata)
    writer.setMetadata(key, value);
  return writer.write(path);
}

std::map<std::string, std::string>
quant_mlir::detail::archiveMetadata(const CalibrateOptions &options,
                                    llvm::ArrayRef<int64_t> starts) {
  std::string startList;
  for (auto [i, s] : llvm::enumerate(starts))
    startList += (i ? "," : "") + std::to_string(s);
  return {{"calib_data", options.dataName},
          {"seed", std::to_string(options.seed)},
          {"seq_len", std::to_string(options.seqLen)},
          {"samples", std::to_string(options.samples)},
          {"sample_starts", startList},
          {"sample_rows", std::to_string(options.sampleRows)}};
}

/// Writes the statistics archive and annotates `module` (calibrateModel).
llvm::Expected<CalibrateResult> quant_mlir::detail::finishCalibration(mlir::ModuleOp module, llvm::StringRef modelDir,
                  const CalibrationRecorder &recorder,
                  llvm::ArrayRef<std::string> layers,
                  llvm::ArrayRef<int64_t> starts,
                  const CalibrateOptions &options, double seconds,
                  std::map<std::string, std::string> extraMetadata) {
  std::map<std::string, std::string> metadata =
      detail::archiveMetadata(options, starts);
  metadata.insert(extraMetadata.begin(), extraMetadata.end());
  CalibrateResult result;
  llvm::SmallString<256> statsPath(modelDir);
  llvm::sys::path::append(statsPath, options.statsArchive);
  if (llvm::Error err = recorder.write(statsPath, metadata))
    return std::move(err);

  mlir::MLIRContext *ctx = module.getContext();
  std::map<std::string, int64_t> index;
  for (auto [i, name] : llvm::enumerate(layers))
    index[name] = i;
  module.walk([&](wq::LinearOp op) {
    auto it = index.find(op.getName().value_or("").str());
    if (it == index.end())
      return;
    op.setStatsAttr(wq::StatsAttr::get(ctx, it->first,
                                       recorder.numTokens(it->second),
                                       recorder.numSampledRows(it->second)));
  });
  module->setAttr(wq::WQDialect::kStatsArchiveAttrName,
                  mlir::StringAttr::get(ctx, options.statsArchive));
  result.layers = layers.size();
  result.samples = starts.size();
  result.seconds = seconds;
  result.statsPath = std::string(statsPath);
  return result;
}

llvm::Expected<CalibrateResult>
quant_mlir::calibrateModel(mlir::ModuleOp module, llvm::StringRef modelDir,
                           llvm::ArrayRef<int64_t> tokens,
                           const CalibrateOptions &options) {
  LanguageModelEntry entry;
  auto scoring = specializeForScoring(module, options.func, entry);
  if (!scoring)
    return scoring.takeError();
  mlir::OwningOpRef<mlir::ModuleOp> instrumented = std::move(*scoring);
  mlir::PassManager pm(module.getContext());
  pm.addPass(wq::createWQInstrumentCalibration());
  if (mlir::failed(pm.run(*instrumented)))
    return makeError("cannot instrument the model for calibration");
  std::vector<std::string> layers;
  if (auto names = (*instrumented)->getAttrOfType<mlir::ArrayAttr>(
          wq::WQDialect::kCalibLayersAttrName))
    for (auto name : names.getAsValueRange<mlir::StringAttr>())
      layers.push_back(name.str());
  if (layers.empty())
    return makeError("the model has no wq.linear layer to calibrate");

  auto compiled = CPUModule::compile(std::move(instrumented), modelDir);
  if (!compiled)
    return compiled.takeError();
  if (llvm::Error err =
          data::checkVocabulary(tokens, entry.vocab, options.dataName))
    return std::move(err);
  auto starts = data::sampleWindows(tokens.size(), options.seqLen,
                                    options.samples, options.seed,
                                    options.dataName);
  if (!starts)
    return starts.takeError();

  CalibrationRecorder recorder(layers, options.sampleRows, options.seed);
  if (llvm::Error err = recorder.attach(**compiled))
    return std::move(err);
  Progress progress("calibration", starts->size(), !options.quiet);
  for (int64_t start : *starts) {
    auto out = (*compiled)->run(
        entry.name, entry.inputs(tokens.slice(start, options.seqLen), 1,
                                 options.seqLen));
    if (!out)
      return out.takeError();
    progress.advance();
  }
  progress.finish();

  return detail::finishCalibration(module, modelDir, recorder, layers, *starts,
                           options, progress.elapsedSeconds(), {});
}

llvm::Expected<detail::CalibrationPlan>
detail::planCalibration(const BlockwiseModel &model,
                        llvm::ArrayRef<int64_t> tokens,
                        const CalibrateOptions &options) {
  auto results = model.resultTypes();
  if (results.size() != 1 || results[0].getRank() != 3 ||
      mlir::ShapedType::isDynamic(results[0].getDimSize(2)))
    return makeError("the entry must map token ids to logits "
                     "tensor<BxSxVxf32> with a static vocabulary V");
  if (llvm::Error err = data::checkVocabulary(
          tokens, results[0].getDimSize(2), options.dataName))
    return std::move(err);
  CalibrationPlan plan;
  plan.layers.assign(model.calibLayers().begin(), model.calibLayers().end());
  if (plan.layers.empty())
    return makeError("the model has no wq.linear layer to calibrate");
  auto starts = data::sampleWindows(tokens.size(), options.seqLen,
                                    options.samples, options.seed,
                                    options.dataName);
  if (!starts)
    return starts.takeError();
  plan.starts = std::move(*starts);
  return plan;
}
