//===- HFExport.h - quantized model to a Hugging Face directory --*- C++ -*-===//
// Writes a quant-compile output (model.mlir + weight archive) as a Hugging
// Face model directory in one of the formats of HFFormats.h, and maps such a
// checkpoint back onto an imported graph (quant-import --checkpoint).
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_EXPORT_HFEXPORT_H
#define QUANT_MLIR_EXPORT_HFEXPORT_H

#include "quant-mlir/Export/HFFormats.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

namespace quant_mlir::hf {

struct ExportOptions {
  Format format = Format::GPTQ;
  /// The user's original config.json; derived from the IR when empty.
  std::string hfConfig;
  /// A tokenizer file (tokenizer.model, tokenizer.json) or a directory of
  /// tokenizer files, copied into the output.
  std::string tokenizer;
  /// Above this many payload bytes the weights are split into shards.
  uint64_t maxShardBytes = 5000000000ull;
  /// Replace an existing output directory.
  bool force = false;
  /// Recorded in quantize_config.json only (they do not change decoding).
  double dampPercent = 0.01;
  bool trueSequential = true;
  bool staticGroups = false;
};

/// "5GB", "500MB", "10KB", "123" (bytes); GB/MB/KB are powers of 1000 and
/// GiB/MiB/KiB of 1024, as transformers' max_shard_size.
llvm::Expected<uint64_t> parseShardSize(llvm::StringRef text);

/// Exports `module` (whose archive is `archivePath`) to `outDir`, atomically:
/// written into a temporary directory beside it and renamed into place, so
/// that an error leaves nothing behind. Prints which vLLM kernel would serve
/// the checkpoint to `log`.
llvm::Error exportModule(mlir::ModuleOp module, llvm::StringRef archivePath,
                         llvm::StringRef outDir, const ExportOptions &options,
                         llvm::raw_ostream &log);

/// Parses `modelDir`/model.mlir (its wq.archive beside it) and exports it.
llvm::Error exportModelDir(llvm::StringRef modelDir, llvm::StringRef outDir,
                           const ExportOptions &options,
                           llvm::raw_ostream &log);

/// The archive of a graph with a checkpoint mapped onto it: the graph's
/// tensors (read back from a staged copy) plus the checkpoint's.
class CheckpointArchive {
public:
  ~CheckpointArchive();
  const safetensors::Writer &getArchive() const { return writer; }

private:
  friend llvm::Expected<std::unique_ptr<CheckpointArchive>>
  importCheckpoint(mlir::ModuleOp, const safetensors::Writer &,
                   llvm::StringRef, llvm::StringRef, llvm::raw_ostream &);
  CheckpointArchive() = default;
  std::unique_ptr<safetensors::Reader> graph;
  std::vector<std::unique_ptr<safetensors::Reader>> shards;
  safetensors::Writer writer;
};

/// Replaces each wq.linear of `module` that the Hugging Face checkpoint in
/// `checkpointDir` (GPTQ v1/v2, AWQ GEMM or compressed-tensors
/// pack-quantized) quantizes by a wq.quantized_linear (#wq.packing<gptq>) on
/// its codes, scales and zeros, and the graph's other weights by the
/// checkpoint's (float16) values where it has them. `graphArchive` is the
/// importer's archive; it is staged in `stageDir` to be read back. Errors
/// name the tensor; on error nothing is left in `stageDir`.
llvm::Expected<std::unique_ptr<CheckpointArchive>>
importCheckpoint(mlir::ModuleOp module,
                 const safetensors::Writer &graphArchive,
                 llvm::StringRef stageDir, llvm::StringRef checkpointDir,
                 llvm::raw_ostream &log);

} // namespace quant_mlir::hf

#endif // QUANT_MLIR_EXPORT_HFEXPORT_H
