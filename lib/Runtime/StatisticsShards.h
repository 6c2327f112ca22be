//===- StatisticsShards.h - statistics shards, index and merged copy -*- C++ -*-===//
// Private to lib/Runtime: the statistics files of a block by block
// calibration (StreamCalibration.cpp), one shard per block under a Hugging
// Face-style index, and the GPTQ results kept in its state directory.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_LIB_RUNTIME_STATISTICSSHARDS_H
#define QUANT_MLIR_LIB_RUNTIME_STATISTICSSHARDS_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <map>
#include <string>

namespace quant_mlir::safetensors {
class Reader;
} // namespace quant_mlir::safetensors

namespace quant_mlir::detail {

/// The shards of the statistics, as Hugging Face names a checkpoint's:
/// `stats-00002-of-00006.safetensors` for the second of six stages with
/// layers (archive "stats.safetensors").
std::string shardName(llvm::StringRef archive, int64_t i, int64_t n);

/// The GPTQ results of the layers quantized in stage s (state files), and
/// their index in the state directory.
std::string gptqResultsName(int64_t s);
inline constexpr llvm::StringLiteral gptqIndexName =
    "gptq-results.safetensors.index.json";

/// Indexes the statistics of a run whose stages are all committed: the
/// index over the shards `shardPaths` (one per stage, empty for a stage
/// without layers) with `metadata`, and the index over the GPTQ results in
/// `stateDir`. Returns the tokens each layer saw (from the shards'
/// metadata); a layer in `layers` that saw none is an error. Atomic and
/// repeatable (a merged copy linked in by an interrupted run is removed).
llvm::Expected<std::map<std::string, int64_t>>
writeStatisticsIndex(llvm::StringRef stateDir, llvm::StringRef statsPath,
                     const std::string &indexPath,
                     llvm::ArrayRef<std::string> shardPaths,
                     const std::map<std::string, std::string> &metadata,
                     llvm::ArrayRef<std::string> layers, bool durable);

/// Writes the indexed statistics as one file `mergedCopy` straight from the
/// shards' mappings, then hard-links it to `statsPath` in place of the
/// index and shards (which stay where the link cannot be made): the disk
/// holds the statistics once.
llvm::Error mergeStatisticsCopy(llvm::StringRef mergedCopy,
                                llvm::StringRef statsPath,
                                const std::string &indexPath,
                                llvm::ArrayRef<std::string> shardPaths,
                                bool durable);

/// Sets `#wq.stats` on every wq.linear whose Hessian `stats` holds (tokens
/// from `tokens`, else `defaultTokens`) and `wq.stats_archive`; returns the
/// number of layers annotated.
llvm::Expected<int64_t>
annotateStatistics(mlir::ModuleOp module, const safetensors::Reader &stats,
                   llvm::StringRef archiveName,
                   const std::map<std::string, int64_t> &tokens,
                   int64_t defaultTokens);

} // namespace quant_mlir::detail

#endif // QUANT_MLIR_LIB_RUNTIME_STATISTICSSHARDS_H
