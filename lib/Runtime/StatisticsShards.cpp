//===- StatisticsShards.cpp - the statistics archive as shards and index ---===//
// Block by block calibration writes one statistics shard per block into the
// model directory; these name the shards, index them (and the GPTQ results
// kept in the state), merge them into one file for --save-stats, link
// reused ones into an output, and annotate a module with what they hold.
//===----------------------------------------------------------------------===//

#include "StatisticsShards.h"

#include "quant-mlir/Dialect/WQ/IR/WQDialect.h"
#include "quant-mlir/Runtime/StreamCalibration.h"
#include "quant-mlir/Support/OutputPaths.h"
#include "quant-mlir/Support/SafeTensors.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"

using namespace quant_mlir;
namespace fs = llvm::sys::fs;

static llvm::Error makeError(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

std::string detail::gptqResultsName(int64_t s) {
  return "gptq-" + std::to_string(s) + ".safetensors";
}

std::string detail::shardName(llvm::StringRef archive, int64_t i, int64_t n) {
  return llvm::formatv("{0}-{1:5}-of-{2:5}.safetensors",
                       llvm::sys::path::stem(archive), i + 1, n)
      .str();
}

bool quant_mlir::isStatisticsFile(llvm::StringRef name,
                                  llvm::StringRef archive) {
  if (name.contains(".tmp-"))
    return false; // a temporary of a killed write
  if (name == archive || name == (archive + safetensors::kIndexSuffix).str())
    return true;
  llvm::StringRef rest = name;
  return rest.consume_front(llvm::sys::path::stem(archive)) &&
         rest.consume_front("-") && rest.consume_back(".safetensors") &&
         rest.contains("-of-");
}

namespace {
/// The index over per-stage archives and what their metadata says.
struct StageShards {
  safetensors::ShardIndex index;
  std::map<std::string, std::string> shardMetadata;
};
} // namespace

/// Collects the per-stage archives `pathOf(s)` that exist (stages without
/// layers have none) into one index (shard names relative to the index's
/// directory, which must be theirs); each shard's header is validated.
static llvm::Expected<StageShards>
collectShards(int64_t stages, llvm::function_ref<std::string(int64_t)> pathOf) {
  StageShards out;
  for (int64_t s = 0; s < stages; ++s) {
    std::string path = pathOf(s);
    if (path.empty() || !fs::exists(path))
      continue;
    auto reader = safetensors::Reader::open(path);
    if (!reader)
      return reader.takeError();
    std::string name = llvm::sys::path::filename(path).str();
    for (const safetensors::TensorInfo &t : (*reader)->tensors()) {
      if (!out.index.weightMap.emplace(t.name, name).second)
        return makeError("tensor '" + t.name + "' is in two shards ('" +
                         out.index.weightMap[t.name] + "' and '" + name +
                         "')");
      out.index.totalSize += t.numBytes();
    }
    for (const auto &[k, v] : (*reader)->metadata())
      out.shardMetadata[k] = v;
  }
  return out;
}


llvm::Expected<std::map<std::string, int64_t>> detail::writeStatisticsIndex(
    llvm::StringRef stateDir, llvm::StringRef statsPath,
    const std::string &indexPath, llvm::ArrayRef<std::string> shardPaths,
    const std::map<std::string, std::string> &metadata,
    llvm::ArrayRef<std::string> layers, bool durable) {
  int64_t stages = shardPaths.size();
  // A link of the merged copy made by an interrupted run before it removed
  // the index: the swap is redone.
  if (fs::exists(statsPath))
    fs::remove(statsPath);
  auto shards =
      collectShards(stages, [&](int64_t s) { return shardPaths[s]; });
  if (!shards)
    return shards.takeError();
  std::map<std::string, int64_t> tok;
  for (const auto &[k, v] : shards->shardMetadata)
    if (llvm::StringRef(k).starts_with("tokens."))
      tok[k.substr(7)] = std::stoll(v);
  for (const std::string &name : layers)
    if (!tok.count(name))
      return makeError("layer '" + name +
                       "' saw no calibration data (is it reachable from "
                       "the entry function?)");
  shards->index.metadata = metadata;
  if (llvm::Error err = safetensors::writeIndex(indexPath, shards->index,
                                                durable))
    return std::move(err);
  auto results = collectShards(stages, [&](int64_t s) {
    return joinPath(stateDir, gptqResultsName(s));
  });
  if (!results)
    return results.takeError();
  if (!results->index.weightMap.empty()) {
    results->index.metadata = std::move(results->shardMetadata);
    if (llvm::Error err = safetensors::writeIndex(
            joinPath(stateDir, gptqIndexName), results->index, durable))
      return std::move(err);
  }
  return tok;
}

llvm::Error detail::mergeStatisticsCopy(llvm::StringRef mergedCopy,
                                        llvm::StringRef statsPath,
                                        const std::string &indexPath,
                                        llvm::ArrayRef<std::string> shardPaths,
                                        bool durable) {
  // The merged copy, streamed from the shards' mappings.
  {
    auto reader = safetensors::Reader::openIndex(indexPath);
    if (!reader)
      return reader.takeError();
    safetensors::Writer writer;
    for (const safetensors::TensorInfo &t : (*reader)->tensors())
      if (llvm::Error err = writer.add(
              t.name, t.dtype, t.shape, (*reader)->bytes(t),
              (*reader)->isMapped(t) ? safetensors::Writer::Source::FileMapping
                                     : safetensors::Writer::Source::Memory))
        return err;
    for (const auto &[k, v] : (*reader)->metadata())
      writer.setMetadata(k, v);
    if (llvm::Error err = writer.write(mergedCopy, "write statistics"))
      return err;
    if (durable)
      if (llvm::Error err = syncToDisk(mergedCopy.str()))
        return err;
  }
  // Swap: link the copy in, then drop the index, then the shards. Another
  // file system cannot link: the shards stay (nothing is copied twice).
  std::string tmp = (statsPath + ".link").str();
  fs::remove(tmp);
  if (fs::create_hard_link(mergedCopy, tmp))
    return llvm::Error::success();
  if (std::error_code ec = fs::rename(tmp, statsPath)) {
    fs::remove(tmp);
    return makeError("cannot rename '" + tmp + "': " + ec.message());
  }
  if (durable)
    if (llvm::Error err =
            syncToDisk(llvm::sys::path::parent_path(statsPath).str()))
      return err;
  fs::remove(indexPath);
  for (const std::string &path : shardPaths)
    if (!path.empty())
      fs::remove(path);
  return llvm::Error::success();
}

llvm::Expected<int64_t>
detail::annotateStatistics(mlir::ModuleOp module, const safetensors::Reader &stats,
         llvm::StringRef archiveName,
         const std::map<std::string, int64_t> &tokens, int64_t defaultTokens) {
  mlir::MLIRContext *ctx = module.getContext();
  int64_t count = 0;
  module.walk([&](wq::LinearOp op) {
    std::string name = op.getName().value_or("").str();
    if (name.empty() || !stats.lookup(name + ".hessian"))
      return;
    const safetensors::TensorInfo *rows = stats.lookup(name + ".inputs");
    auto it = tokens.find(name);
    op.setStatsAttr(wq::StatsAttr::get(
        ctx, name, it != tokens.end() ? it->second : defaultTokens,
        rows && !rows->shape.empty() ? rows->shape[0] : 0));
    ++count;
  });
  module->setAttr(wq::WQDialect::kStatsArchiveAttrName,
                  mlir::StringAttr::get(ctx, archiveName));
  return count;
}

llvm::Error quant_mlir::linkStatistics(llvm::StringRef indexPath,
                                       llvm::StringRef modelDir,
                                       llvm::StringRef archive) {
  // Opened first: a missing or corrupt shard fails here, naming it.
  auto reader = safetensors::Reader::openIndex(indexPath);
  if (!reader)
    return reader.takeError();
  auto index = safetensors::readIndex(indexPath);
  if (!index)
    return index.takeError();
  std::map<std::string, std::string> renamed;
  for (const auto &[tensor, shard] : index->weightMap)
    renamed.emplace(shard, "");
  int64_t i = 0, n = renamed.size();
  llvm::StringRef dir = llvm::sys::path::parent_path(indexPath);
  for (auto &[shard, name] : renamed) {
    name = detail::shardName(archive, i++, n);
    if (llvm::Error err = linkOrCopyAtomically(joinPath(dir, shard), joinPath(modelDir, name)))
      return err;
  }
  for (auto &[tensor, shard] : index->weightMap)
    shard = renamed[shard];
  return safetensors::writeIndex(
      joinPath(modelDir, (archive + safetensors::kIndexSuffix).str()), *index,
      /*durable=*/false);
}

llvm::Expected<int64_t> quant_mlir::useStatistics(mlir::ModuleOp module,
                                                  llvm::StringRef path,
                                                  llvm::StringRef archiveName) {
  auto stats = safetensors::openArchive(path);
  if (!stats)
    return stats.takeError();
  const auto &meta = (*stats)->metadata();
  auto num = [&](llvm::StringRef key) -> int64_t {
    auto it = meta.find(key.str());
    int64_t v = 0;
    if (it != meta.end() && !llvm::StringRef(it->second).getAsInteger(10, v))
      return v;
    return 0;
  };
  auto count = detail::annotateStatistics(module, **stats, archiveName, {},
                        num("samples") * num("seq_len"));
  if (count && *count == 0)
    return makeError("'" + path + "' holds no Hessian of this model's layers");
  return count;
}
