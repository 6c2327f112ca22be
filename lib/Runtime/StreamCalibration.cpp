//===- StreamCalibration.cpp - block by block calibration, resumable --------===//
// Holds one block's statistics and one stage boundary's activations at a
// time. Every stage is committed in three atomic steps: its statistics file
// (block-<s>.safetensors), the activations after it (acts-<s>.bin, when
// they live in a file) and the manifest naming both; a run killed anywhere
// leaves a manifest that names only complete files, so `resume` continues
// after the last committed stage and produces the same bytes. A resumable
// run syncs each file and the directory before the manifest names them, so
// this holds after power loss too. The statistics files are the shards of
// the statistics archive (stats-<i>-of-<n>.safetensors in the model
// directory): at the end an index (stats.safetensors.index.json) names
// them, nothing is copied, so the disk holds each Hessian once. The GPTQ
// results of the layers quantized in the loop go with their block's
// statistics (gptq-<s>.safetensors in the state) under their own index,
// for wq-gptq, which then does not run GPTQ on the same inputs again
// (naming, indexing and merging: StatisticsShards.cpp). AWQ's module-loss
// candidates are scored block by block here too (AWQCalibration.cpp).
//===----------------------------------------------------------------------===//

#include "quant-mlir/Runtime/StreamCalibration.h"
#include "CalibrationInternal.h"
#include "StatisticsShards.h"

#include "quant-mlir/Data/TokenData.h"
#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"
#include "quant-mlir/Dialect/WQ/Transforms/LayerQuantizer.h"
#include "quant-mlir/Runtime/Blockwise.h"
#include "quant-mlir/Runtime/LanguageModel.h"
#include "quant-mlir/Support/OutputPaths.h"
#include "quant-mlir/Support/Progress.h"
#include "quant-mlir/Support/SafeTensors.h"

#include "mlir/IR/Diagnostics.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "llvm/Config/llvm-config.h" // LLVM_ON_UNIX
#if LLVM_ON_UNIX
#include <cerrno>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#endif

using namespace quant_mlir;
namespace fs = llvm::sys::fs;
using safetensors::DType;

static llvm::Error makeError(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

static llvm::Error syncPath(const std::string &path) {
  return syncToDisk(path);
}

namespace {
/// The residual stream of every sample at one stage boundary, in f32 or
/// f16, in memory or in a file written sequentially and then mapped
/// read-only (each sample's pages are dropped once it has been read).
class ActivationStore {
public:
  ActivationStore(bool f16, bool toFile, std::string path)
      : f16(f16), toFile(toFile), path(std::move(path)) {}
  ~ActivationStore() {
    if (os) {
      os.reset();
      fs::remove(path + ".part");
    }
  }

  llvm::Error append(const HostTensor &t) {
    if (t.dtype != DType::F32)
      return makeError("the block stream must be f32");
    if (count == 0) {
      shape = t.shape;
      numel = t.numElements();
    } else if (t.shape != shape) {
      return makeError("the block stream's shape changes between samples");
    }
    std::vector<uint8_t> bytes;
    if (f16) {
      bytes.resize(numel * 2);
      const float *src = reinterpret_cast<const float *>(t.data.data());
      auto *dst = reinterpret_cast<uint16_t *>(bytes.data());
      for (int64_t i = 0; i < numel; ++i)
        dst[i] = safetensors::floatToHalf(src[i]);
    }
    llvm::ArrayRef<uint8_t> raw = f16 ? llvm::ArrayRef<uint8_t>(bytes)
                                      : llvm::ArrayRef<uint8_t>(t.data);
    ++count;
    if (!toFile) {
      memory.emplace_back(raw.begin(), raw.end());
      return llvm::Error::success();
    }
    if (!os) {
      std::error_code ec;
      os = std::make_unique<llvm::raw_fd_ostream>(path + ".part", ec);
      if (ec)
        return makeError("cannot create '" + path + ".part': " + ec.message());
    }
    os->write(reinterpret_cast<const char *>(raw.data()), raw.size());
    return llvm::Error::success();
  }

  /// Completes a file-backed store: renamed into place (synced first when
  /// `durable`), then mapped.
  llvm::Error finish(bool durable) {
    if (!toFile || finished)
      return llvm::Error::success();
    if (!os)
      return makeError("no activations to store");
    os->close();
    bool failed = os->has_error();
    os.reset();
    if (failed)
      return makeError("cannot write '" + path + ".part'");
    if (durable)
      if (llvm::Error err = syncPath(path + ".part"))
        return err;
    if (std::error_code ec = fs::rename(path + ".part", path))
      return makeError("cannot rename '" + path + "': " + ec.message());
    finished = true;
    return map();
  }

  /// A file-backed store committed by an earlier run.
  static llvm::Expected<std::unique_ptr<ActivationStore>>
  open(std::string path, bool f16, llvm::ArrayRef<int64_t> shape,
       int64_t count) {
    auto store = std::make_unique<ActivationStore>(f16, true, path);
    store->shape.assign(shape.begin(), shape.end());
    store->numel = 1;
    for (int64_t d : shape)
      store->numel *= d;
    store->count = count;
    if (llvm::Error err = store->map())
      return std::move(err);
    return std::move(store);
  }

  /// Sample `i` as the f32 tensor the stage takes.
  HostTensor get(int64_t i) {
    HostTensor t{DType::F32, shape, {}};
    t.data.resize(numel * 4);
    const uint8_t *src = toFile ? reinterpret_cast<const uint8_t *>(
                                      region.const_data()) +
                                      uint64_t(i) * sampleBytes()
                                : memory[i].data();
    if (f16) {
      const auto *h = reinterpret_cast<const uint16_t *>(src);
      auto *dst = reinterpret_cast<float *>(t.data.data());
      for (int64_t j = 0; j < numel; ++j)
        dst[j] = safetensors::halfToFloat(h[j]);
    } else {
      std::memcpy(t.data.data(), src, numel * 4);
    }
    if (toFile)
      release(src, sampleBytes());
    return t;
  }

  uint64_t sampleBytes() const { return uint64_t(numel) * (f16 ? 2 : 4); }
  uint64_t bytes() const { return sampleBytes() * count; }
  int64_t size() const { return count; }
  llvm::ArrayRef<int64_t> sampleShape() const { return shape; }
  const std::string &filePath() const { return path; }
  bool inFile() const { return toFile; }

private:
  llvm::Error map() {
    int fd;
    if (std::error_code ec = fs::openFileForRead(path, fd))
      return makeError("cannot open '" + path + "': " + ec.message());
    uint64_t expected = bytes();
    fs::file_status st;
    if (std::error_code ec = fs::status(fd, st); ec || st.getSize() != expected) {
      fs::closeFile(fd);
      return makeError("'" + path + "' holds " + llvm::Twine(st.getSize()) +
                       " bytes, not the " + llvm::Twine(expected) +
                       " its manifest names");
    }
    std::error_code ec;
    region = fs::mapped_file_region(fs::convertFDToNativeFile(fd),
                                    fs::mapped_file_region::readonly, expected,
                                    0, ec);
    fs::closeFile(fd);
    if (ec)
      return makeError("cannot map '" + path + "': " + ec.message());
    return llvm::Error::success();
  }

  static void release(const uint8_t *p, uint64_t n) {
#if LLVM_ON_UNIX
    uintptr_t page = llvm::sys::Process::getPageSizeEstimate();
    uintptr_t lo = llvm::alignTo(reinterpret_cast<uintptr_t>(p), page);
    uintptr_t hi = llvm::alignDown(reinterpret_cast<uintptr_t>(p) + n, page);
    if (lo < hi)
      (void)::madvise(reinterpret_cast<void *>(lo), hi - lo, MADV_DONTNEED);
#else
    (void)p, (void)n;
#endif
  }

  bool f16, toFile, finished = false;
  std::string path;
  llvm::SmallVector<int64_t> shape;
  int64_t numel = 0, count = 0;
  std::vector<std::vector<uint8_t>> memory;
  std::unique_ptr<llvm::raw_fd_ostream> os;
  fs::mapped_file_region region;
};

/// What the manifest records: the stages committed and where their
/// results are.
struct Manifest {
  /// 2: the statistics are shards in the model directory.
  static constexpr int64_t kVersion = 2;
  std::string fingerprint;
  int64_t stages = 0; // committed
  std::string acts;   // the activations after the last committed stage
  bool actsF16 = false;
  std::vector<int64_t> actsShape;
  int64_t samples = 0;
  /// The index (and the tokens) of the complete statistics are written.
  bool indexed = false;
  std::map<std::string, int64_t> tokens;

  /// With `durable`, synced to disk before and after the rename.
  llvm::Error write(llvm::StringRef path, bool durable) const {
    llvm::json::Object tok;
    for (const auto &[k, v] : tokens)
      tok[k] = v;
    llvm::json::Object o{{"fingerprint", fingerprint},
                         {"stages", stages},
                         {"acts", acts},
                         {"acts_f16", actsF16},
                         {"acts_shape", llvm::json::Array(actsShape)},
                         {"samples", samples},
                         {"version", kVersion},
                         {"indexed", indexed},
                         {"tokens", std::move(tok)}};
    // A synced temporary renamed into place, then the directory synced:
    // the manifest on disk is the old one or the complete new one.
    std::string tmp = (path + ".tmp").str();
    {
      std::error_code ec;
      llvm::raw_fd_ostream os(tmp, ec);
      if (ec)
        return makeError("cannot create '" + tmp + "': " + ec.message());
      os << llvm::formatv("{0:2}", llvm::json::Value(std::move(o))) << "\n";
      os.close();
      if (os.has_error()) {
        os.clear_error();
        fs::remove(tmp);
        return makeError("cannot write '" + tmp + "'");
      }
    }
    if (durable)
      if (llvm::Error err = syncPath(tmp))
        return err;
    if (std::error_code ec = fs::rename(tmp, path))
      return makeError("cannot rename '" + tmp + "': " + ec.message());
    return durable ? syncPath(llvm::sys::path::parent_path(path).str())
                   : llvm::Error::success();
  }

  static std::optional<Manifest> read(llvm::StringRef path) {
    auto buf = llvm::MemoryBuffer::getFile(path);
    if (!buf)
      return std::nullopt;
    auto v = llvm::json::parse((*buf)->getBuffer());
    if (!v) {
      llvm::consumeError(v.takeError());
      return std::nullopt;
    }
    const llvm::json::Object *o = v->getAsObject();
    if (!o)
      return std::nullopt;
    Manifest m;
    auto fp = o->getString("fingerprint");
    auto stages = o->getInteger("stages");
    auto acts = o->getString("acts");
    auto samples = o->getInteger("samples");
    if (!fp || !stages || !acts || !samples)
      return std::nullopt;
    m.fingerprint = fp->str();
    m.stages = *stages;
    m.acts = acts->str();
    m.samples = *samples;
    m.actsF16 = o->getBoolean("acts_f16").value_or(false);
    if (o->getInteger("version").value_or(0) != kVersion)
      return std::nullopt; // another layout of the state: start afresh
    m.indexed = o->getBoolean("indexed").value_or(false);
    if (const llvm::json::Array *shape = o->getArray("acts_shape"))
      for (const llvm::json::Value &d : *shape)
        m.actsShape.push_back(d.getAsInteger().value_or(0));
    if (const llvm::json::Object *tok = o->getObject("tokens"))
      for (const auto &[k, val] : *tok)
        m.tokens[k.str()] = val.getAsInteger().value_or(0);
    return m;
  }
};
} // namespace

namespace {
/// The runs of one stage over all samples: each records `record` and then
/// quantizes `quantize`; the last one's outputs are the next stage's inputs.
struct Run {
  std::vector<int64_t> record;
  std::vector<std::string> quantize;
};
} // namespace

llvm::Expected<StreamResult> quant_mlir::calibrateStreaming(
    mlir::ModuleOp module, llvm::StringRef modelDir,
    llvm::ArrayRef<int64_t> tokens, const CalibrateOptions &options,
    const StreamOptions &stream, const wq::LayerQuantizer *quantizer) {
  if ((stream.quantizedInputs || stream.trueSequential) && !quantizer)
    return makeError("quantized block inputs need a layer quantizer");
  LanguageModelEntry entry;
  auto scoring = specializeForScoring(module, options.func, entry);
  if (!scoring)
    return scoring.takeError();
  std::string splitDiagnostics;
  auto model = [&] {
    // A graph that does not split is calibrated whole (below); its
    // diagnostics become the reason given, not errors on stderr.
    mlir::ScopedDiagnosticHandler capture(
        module.getContext(), [&](mlir::Diagnostic &d) {
          splitDiagnostics += (splitDiagnostics.empty() ? "" : "; ") + d.str();
          return mlir::success();
        });
    return BlockwiseModel::create(**scoring, modelDir, entry.name,
                                  /*instrument=*/true);
  }();
  if (!model) {
    std::string reason = llvm::toString(model.takeError());
    if (!splitDiagnostics.empty())
      reason += ": " + splitDiagnostics;
    if (stream.trueSequential || stream.awqPlan || !stream.wholeModelFallback)
      return makeError(reason);
    auto whole = calibrateModel(module, modelDir, tokens, options);
    if (!whole)
      return whole.takeError();
    StreamResult result;
    static_cast<CalibrateResult &>(result) = *whole;
    result.wholeModelReason = reason;
    return result;
  }
  auto drawn = detail::planCalibration(**model, tokens, options);
  if (!drawn)
    return drawn.takeError();
  std::vector<std::string> &layers = drawn->layers;
  const std::vector<int64_t> &starts = drawn->starts;
  int64_t numSamples = starts.size();
  CalibrationRecorder recorder(layers, options.sampleRows, options.seed);
  std::unique_ptr<detail::AWQStageScorer> scorer;
  if (stream.awqPlan) {
    if (stream.quantizedInputs || stream.trueSequential)
      return makeError("AWQ's module loss runs on the float blocks' inputs");
    auto created = detail::AWQStageScorer::create(
        module, modelDir, **model, *stream.awqPlan, stream.awqLossSamples,
        numSamples);
    if (!created)
      return created.takeError();
    scorer = std::move(*created);
  }

  // The plan per stage.
  int64_t numStages = (*model)->numStages(), last = numStages - 1;
  std::vector<std::vector<Run>> plan(numStages);
  std::vector<std::vector<int64_t>> stageLayers(numStages);
  for (int64_t s = 0; s < numStages; ++s) {
    Run pending;
    for (const std::vector<std::string> &group : (*model)->layerGroups(s)) {
      for (const std::string &name : group) {
        int64_t idx = recorder.indexOf(name);
        if (idx < 0)
          return makeError("layer '" + name + "' was not instrumented");
        pending.record.push_back(idx);
        stageLayers[s].push_back(idx);
        if ((stream.quantizedInputs || stream.trueSequential) &&
            quantizer->selects(name))
          pending.quantize.push_back(name);
      }
      if (stream.trueSequential && !pending.quantize.empty()) {
        plan[s].push_back(std::move(pending));
        pending = Run();
      }
    }
    if (!pending.quantize.empty()) { // whole-block quantization
      plan[s].push_back(std::move(pending));
      pending = Run();
    }
    plan[s].push_back(std::move(pending));
  }

  // Where each stage's statistics go: a shard of the archive, in the model
  // directory (the output), so they never need to be copied.
  llvm::SmallString<256> statsPath(modelDir);
  llvm::sys::path::append(statsPath, options.statsArchive);
  std::string indexPath = (statsPath + safetensors::kIndexSuffix).str();
  std::vector<std::string> shardPaths(numStages);
  int64_t numShards = llvm::count_if(
      stageLayers, [](const auto &l) { return !l.empty(); });
  for (int64_t s = 0, i = 0; s < numStages; ++s)
    if (!stageLayers[s].empty())
      shardPaths[s] =
          joinPath(modelDir, detail::shardName(options.statsArchive, i++, numShards));

  // The state: resumed or fresh.
  std::string manifestPath = joinPath(stream.stateDir, "manifest.json");
  bool durable = stream.resumable; // otherwise the state dies with the run
  Manifest manifest;
  // The merged copy (mergedCopy) replaced the index and shards: a complete
  // archive, linked in by the interrupted run.
  bool swapped = false;
  if (stream.resume) {
    if (std::optional<Manifest> m = Manifest::read(manifestPath)) {
      if (m->fingerprint == stream.fingerprint && m->samples == numSamples)
        manifest = std::move(*m);
      swapped = manifest.indexed && !fs::exists(indexPath) &&
                fs::exists(statsPath);
      // Every committed stage's shard must be there (they were synced
      // before the manifest named them); otherwise start afresh.
      for (int64_t s = 0; s < manifest.stages && !swapped; ++s)
        if (!shardPaths[s].empty() && !fs::exists(shardPaths[s]))
          manifest = Manifest();
    }
  }
  if (manifest.fingerprint.empty()) {
    fs::remove_directories(stream.stateDir);
    // The statistics of another run (the resume directory is reused).
    std::error_code ec;
    std::vector<std::string> old;
    for (fs::directory_iterator it(modelDir, ec), e; it != e && !ec;
         it.increment(ec))
      if (isStatisticsFile(llvm::sys::path::filename(it->path()),
                           options.statsArchive))
        old.push_back(it->path());
    for (const std::string &path : old)
      fs::remove(path);
    manifest.fingerprint = stream.fingerprint;
    manifest.samples = numSamples;
    swapped = false;
  }
  if (std::error_code ec = fs::create_directories(stream.stateDir))
    return makeError("cannot create '" + stream.stateDir + "': " +
                     ec.message());

  StreamResult result;
  result.stages = numStages;
  result.resumedStages = manifest.stages;
  result.stageSeconds.assign(numStages, 0.0);
  std::map<std::string, std::string> extra;
  if (stream.trueSequential)
    extra["true_sequential"] = quantizer->fingerprint();
  else if (stream.quantizedInputs)
    extra["block_inputs"] = "quantized " + quantizer->fingerprint();
  std::map<std::string, std::string> metadata =
      detail::archiveMetadata(options, starts);
  metadata.insert(extra.begin(), extra.end());
  if (scorer)
    for (const auto &[k, v] : scorer->metadata())
      metadata[k] = v;

  auto clock = [] { return std::chrono::steady_clock::now(); };
  auto seconds = [](auto a, auto b) {
    return std::chrono::duration<double>(b - a).count();
  };
  auto begin = clock();

  if (manifest.stages < numStages) {
    int64_t totalRuns = 0;
    for (int64_t s = manifest.stages; s < numStages; ++s)
      totalRuns += plan[s].size() * numSamples +
                   (scorer ? scorer->sampleRuns(s) : 0);
    // Units are sample runs (a block runs twice when its quantized outputs
    // feed the next, once per AWQ candidate and sample scored); the detail
    // counts committed blocks and the tokens per second through them.
    Progress progress("calibrate", totalRuns, !options.quiet);
    int64_t numBlocks = (*model)->numBlocks(), runsDone = 0;
    auto blocksDone = [&](int64_t committedStages) {
      return std::clamp<int64_t>(committedStages - 1, 0, numBlocks);
    };
    auto showBlocks = [&](int64_t committedStages) {
      double rate = progress.elapsedSeconds() > 0
                        ? double(runsDone * options.seqLen) /
                              progress.elapsedSeconds()
                        : 0.0;
      progress.setDetail(llvm::formatv("blocks {0}/{1}, {2:f0} tok/s",
                                       blocksDone(committedStages), numBlocks,
                                       rate)
                             .str());
    };
    showBlocks(manifest.stages);
    auto tick = [&] {
      ++runsDone;
      showBlocks(manifest.stages);
      progress.advance();
    };

    std::vector<std::vector<HostTensor>> inputs;
    for (int64_t start : starts)
      inputs.push_back(entry.inputs(tokens.slice(start, options.seqLen), 1,
                                    options.seqLen));
    std::vector<std::vector<std::shared_ptr<const HostTensor>>> sides(
        numSamples);
    std::unique_ptr<ActivationStore> source;
    bool toFile = stream.resumable;
    WeightOverlay overlay;
    // Sample i's inputs to stage s: the entry's for the prologue, else the
    // stored stream (read into `x`) and the prologue's side values.
    auto stageInputs = [&](int64_t s, int64_t i, HostTensor &x) {
      llvm::SmallVector<const HostTensor *> in;
      if (s == 0) {
        for (const HostTensor &t : inputs[i])
          in.push_back(&t);
        return in;
      }
      x = source->get(i);
      in.push_back(&x);
      for (const auto &side : sides[i])
        in.push_back(side.get());
      return in;
    };
    auto actsName = [](int64_t s) {
      return "acts-" + std::to_string(s) + ".bin";
    };

    for (int64_t s = 0; s < numStages; ++s) {
      bool done = s < manifest.stages;
      if (done && s != 0)
        continue;
      auto stageStart = clock();
      if (llvm::Error err = (*model)->compileStage(
              s, [&](CPUModule &m) { return recorder.attach(m); }))
        return std::move(err);
      if (done) {
        // The prologue again, for the side values (mask, rotary tables);
        // the stream comes from the committed activations.
        recorder.setActive({});
        for (int64_t i = 0; i < numSamples; ++i) {
          HostTensor unused;
          auto out = (*model)->runSample(0, stageInputs(0, i, unused), nullptr);
          if (!out)
            return out.takeError();
          for (size_t j = 1; j < out->size(); ++j) {
            HostTensor &t = (*out)[j];
            if (i > 0 && sides[i - 1][j - 1]->shape == t.shape &&
                sides[i - 1][j - 1]->dtype == t.dtype &&
                sides[i - 1][j - 1]->data == t.data)
              sides[i].push_back(sides[i - 1][j - 1]);
            else
              sides[i].push_back(
                  std::make_shared<const HostTensor>(std::move(t)));
          }
        }
        if (manifest.stages < numStages) {
          auto opened = ActivationStore::open(
              joinPath(stream.stateDir, manifest.acts), manifest.actsF16,
              manifest.actsShape, numSamples);
          if (!opened)
            return opened.takeError();
          source = std::move(*opened);
        }
        continue;
      }

      std::unique_ptr<ActivationStore> sink;
      safetensors::Writer stageResults;
      for (auto [r, run] : llvm::enumerate(plan[s])) {
        bool final = r + 1 == plan[s].size();
        recorder.setActive(run.record);
        bool keep = final && s != last;
        if (keep)
          sink = std::make_unique<ActivationStore>(
              stream.f16Activations, toFile,
              joinPath(stream.stateDir, actsName(s)));
        for (int64_t i = 0; i < numSamples; ++i) {
          HostTensor x;
          auto out = (*model)->runSample(s, stageInputs(s, i, x), &overlay);
          if (!out)
            return out.takeError();
          if (s == 0 && final) {
            for (size_t j = 1; j < out->size(); ++j) {
              HostTensor &t = (*out)[j];
              if (i > 0 && sides[i - 1][j - 1]->shape == t.shape &&
                  sides[i - 1][j - 1]->dtype == t.dtype &&
                  sides[i - 1][j - 1]->data == t.data)
                sides[i].push_back(sides[i - 1][j - 1]);
              else
                sides[i].push_back(
                    std::make_shared<const HostTensor>(std::move(t)));
            }
          }
          if (keep) {
            if (out->empty())
              return makeError("stage '" + (*model)->stageName(s) +
                               "' returned nothing");
            // After the first sample the size of the whole boundary is
            // known: spill to a file when in and out would not fit.
            if (i == 0 && !toFile &&
                2 * uint64_t(out->front().data.size()) /
                        (stream.f16Activations ? 2 : 1) * numSamples >
                    stream.maxMemory) {
              toFile = true;
              sink = std::make_unique<ActivationStore>(
                  stream.f16Activations, true,
                  joinPath(stream.stateDir, actsName(s)));
            }
            if (llvm::Error err = sink->append(out->front()))
              return err;
          }
          tick();
        }
        for (const std::string &name : run.quantize) {
          auto q = quantizer->quantize(
              name, recorder.finalHessian(recorder.indexOf(name)),
              &stageResults);
          if (!q)
            return q.takeError();
          overlay[q->first] = std::move(q->second);
        }
      }
      // Later stages use other weights (a tied embedding stays float where
      // the prologue read it).
      overlay.clear();

      // AWQ's candidates, scored against the float outputs just stored
      // (completed first, so a file-backed store can be read back).
      if (scorer && scorer->sampleRuns(s) > 0) {
        if (!sink || !source)
          return makeError("AWQ's module loss needs a block between two "
                           "stages");
        if (llvm::Error err = sink->finish(durable))
          return std::move(err);
        recorder.setActive({});
        auto runOne = [&](int64_t i, const WeightOverlay *ov)
            -> llvm::Expected<HostTensor> {
          HostTensor x;
          auto out = (*model)->runSample(s, stageInputs(s, i, x), ov);
          if (!out)
            return out.takeError();
          if (out->empty())
            return makeError("stage '" + (*model)->stageName(s) +
                             "' returned nothing");
          return std::move(out->front());
        };
        auto reference = [&](int64_t i) -> llvm::Expected<HostTensor> {
          return sink->get(i);
        };
        if (llvm::Error err =
                scorer->score(s, recorder, runOne, reference, tick))
          return std::move(err);
      }

      // Commit: statistics, activations, manifest, each synced before the
      // next; then the old files go.
      const std::string &blockPath = shardPaths[s];
      if (!stageLayers[s].empty()) {
        if (llvm::Error err =
                recorder.commitLayers(blockPath, stageLayers[s], {}))
          return std::move(err);
        if (durable)
          if (llvm::Error err = syncPath(blockPath))
            return std::move(err);
      }
      if (stageResults.size()) {
        std::string path = joinPath(stream.stateDir, detail::gptqResultsName(s));
        if (llvm::Error err = stageResults.write(path))
          return std::move(err);
        if (durable)
          if (llvm::Error err = syncPath(path))
            return std::move(err);
      }
      std::string oldActs = manifest.acts;
      if (sink) {
        if (llvm::Error err = sink->finish(durable))
          return std::move(err);
        result.activationBytes = sink->bytes();
        result.spilled |= sink->inFile();
        manifest.acts = sink->inFile() ? actsName(s) : "";
        manifest.actsF16 = stream.f16Activations;
        manifest.actsShape.assign(sink->sampleShape().begin(),
                                  sink->sampleShape().end());
      } else {
        manifest.acts = "";
      }
      // The renames of the statistics and activation files.
      if (durable) {
        if (llvm::Error err = syncPath(stream.stateDir))
          return std::move(err);
        if (llvm::Error err = syncPath(modelDir.str()))
          return std::move(err);
      }
      manifest.stages = s + 1;
      if (llvm::Error err = manifest.write(manifestPath, durable))
        return std::move(err);
      if (!oldActs.empty() && oldActs != manifest.acts)
        fs::remove(joinPath(stream.stateDir, oldActs));
      source = std::move(sink);
      result.stageSeconds[s] = seconds(stageStart, clock());
      if (s == stream.stopAfterStage)
        return makeError("stopped after stage " + llvm::Twine(s) +
                         " (--stop-after-block)");
    }
    progress.finish();
    result.seconds = seconds(begin, clock());

  }

  auto indexStart = clock();
  if (!swapped) {
    auto tokensSeen = detail::writeStatisticsIndex(
        stream.stateDir, statsPath, indexPath, shardPaths, metadata, layers,
        durable);
    if (!tokensSeen)
      return tokensSeen.takeError();
    manifest.tokens = std::move(*tokensSeen);
    manifest.indexed = true;
    if (llvm::Error err = manifest.write(manifestPath, durable))
      return std::move(err);
    if (!stream.mergedCopy.empty())
      if (llvm::Error err = detail::mergeStatisticsCopy(
              stream.mergedCopy, statsPath, indexPath, shardPaths, durable))
        return std::move(err);
  } else {
    for (const std::string &path : shardPaths)
      if (!path.empty())
        fs::remove(path);
  }
  result.mergeSeconds = seconds(indexStart, clock());

  auto stats = safetensors::openArchive(statsPath);
  if (!stats)
    return stats.takeError();
  auto count = detail::annotateStatistics(module, **stats, options.statsArchive, manifest.tokens,
                        options.seqLen * numSamples);
  if (!count)
    return count.takeError();
  result.layers = layers.size();
  result.samples = numSamples;
  result.statsPath = safetensors::resolveArchive(statsPath);
  std::string resultsPath = joinPath(stream.stateDir, detail::gptqIndexName);
  if (fs::exists(resultsPath))
    result.precomputedPath = resultsPath;
  return result;
}
