//===- SafeTensors.h - safetensors weight archives --------------*- C++ -*-===//
// Reads (mmapped, validated up front) and writes (atomic, deterministic)
// safetensors weight files and sharded archives (Hugging Face's
// `<name>.index.json` over its shard files); also the f16/bf16 conversions
// all tools share.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_SUPPORT_SAFETENSORS_H
#define QUANT_MLIR_SUPPORT_SAFETENSORS_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cassert>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace quant_mlir::safetensors {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

/// The spec's spelling: "F32", "BF16", "BOOL", ...
llvm::StringRef dtypeName(DType dtype);
std::optional<DType> parseDType(llvm::StringRef name);
size_t dtypeSize(DType dtype);

struct TensorInfo {
  std::string name;
  DType dtype;
  llvm::SmallVector<int64_t> shape;
  /// Byte offsets relative to the start of the data section; [begin, end).
  uint64_t begin = 0, end = 0;

  /// Product of the dims; 1 for a scalar (0-d) tensor.
  int64_t numElements() const;
  uint64_t numBytes() const { return end - begin; }
};

/// A sharded archive's index, as Hugging Face writes one
/// (`model.safetensors.index.json`): {"metadata": {...}, "weight_map":
/// {"<tensor>": "<shard file name>", ...}}, the shards in the index's
/// directory. "metadata" holds the archive's string metadata (the
/// "__metadata__" a single file would carry) and "total_size" (the tensor
/// bytes, a number, as Hugging Face writes it).
struct ShardIndex {
  std::map<std::string, std::string> metadata;
  std::map<std::string, std::string> weightMap;
  uint64_t totalSize = 0;
};

/// The suffix that marks an index: "<archive>.index.json".
constexpr llvm::StringLiteral kIndexSuffix = ".index.json";

/// Parses and checks an index: every shard name is a plain file name (no
/// directory part, not "." or ".."), every value a string.
llvm::Expected<ShardIndex> readIndex(llvm::StringRef path);
/// Writes `index` to `path` atomically (a temporary renamed into place);
/// with `durable`, the temporary and then the directory are synced, so
/// after a crash `path` is the old file or the complete new one.
/// Deterministic: keys sorted, no dependence on insertion order.
llvm::Error writeIndex(llvm::StringRef path, const ShardIndex &index,
                       bool durable);

class Reader {
public:
  /// Maps `path` and validates header, dtypes, shapes and offsets so that
  /// later accessors cannot fail.
  static llvm::Expected<std::unique_ptr<Reader>> open(llvm::StringRef path);
  /// A sharded archive as one: opens and validates every shard the index
  /// names (all mapped at once: a mapping costs address space, not memory,
  /// and validating each shard here keeps the promise that no accessor can
  /// fail later; an error names the shard). Every tensor of the map must be
  /// in its shard and every tensor of a shard in the map. metadata() is the
  /// index's; tensors(), lookup(), bytes(), isMapped() and releasePages()
  /// behave as for one file holding every tensor.
  static llvm::Expected<std::unique_ptr<Reader>>
  openIndex(llvm::StringRef indexPath);

  /// Sorted by name.
  llvm::ArrayRef<TensorInfo> tensors() const { return tensorList; }
  /// nullptr if there is no tensor of that name.
  const TensorInfo *lookup(llvm::StringRef name) const;

  /// `info` must come from this reader (tensors() or lookup()). The result is
  /// always aligned to dtypeSize(info.dtype): tensors that the file stores
  /// misaligned (legal in safetensors) are copied once at open().
  llvm::ArrayRef<uint8_t> bytes(const TensorInfo &info) const;

  /// Typed view of the little-endian payload; T must match the element size.
  template <typename T> llvm::ArrayRef<T> as(const TensorInfo &info) const {
    assert(sizeof(T) == dtypeSize(info.dtype) && "element type size mismatch");
    llvm::ArrayRef<uint8_t> raw = bytes(info);
    return {reinterpret_cast<const T *>(raw.data()), raw.size() / sizeof(T)};
  }

  /// Whether bytes(info) points into a read-only file mapping (not a heap
  /// copy): only then may a Writer take it as Source::FileMapping.
  bool isMapped(const TensorInfo &info) const;
  /// Drops the resident pages of a mapped tensor (madvise(MADV_DONTNEED) on
  /// the page-aligned interior), so reading a large archive one tensor at a
  /// time keeps about one tensor resident; the bytes stay valid (a later read
  /// faults them back in from the file). A no-op for heap copies.
  void releasePages(const TensorInfo &info) const;
  /// Reads every page of the archive's mapping(s) into memory and maps it
  /// (madvise(MADV_WILLNEED), then one read per page), so that code reading
  /// the weights later does not wait on the disk or take page faults: what
  /// onnxruntime's session load and llama.cpp's mmap prefetch do. Returns
  /// the bytes touched (0 for heap copies).
  uint64_t prefault() const;

  /// The "__metadata__" string map (empty if absent).
  const std::map<std::string, std::string> &metadata() const { return meta; }
  llvm::StringRef path() const { return filePath; }
  /// The files the bytes come from: the index's shards, or path() alone.
  std::vector<std::string> files() const;

private:
  Reader() = default;
  size_t indexOf(const TensorInfo &info) const;
  /// For an index: the shard holding tensor `index` and its entry there.
  std::pair<const Reader *, const TensorInfo *> shardOf(size_t index) const;

  std::string filePath;
  std::unique_ptr<llvm::MemoryBuffer> buffer;
  std::vector<TensorInfo> tensorList;
  /// Parallel to tensorList: where each payload lives (the mapping or a copy).
  std::vector<const uint8_t *> payloads;
  std::vector<std::unique_ptr<uint64_t[]>> alignedCopies;
  std::map<std::string, std::string> meta;
  /// An index's shards (buffer is null then) and, parallel to tensorList,
  /// which shard holds each tensor.
  std::vector<std::unique_ptr<Reader>> shards;
  std::vector<uint32_t> shardIndex;
};

/// Opens the archive `path` names the way Hugging Face resolves a
/// checkpoint: the file itself (an index if its name ends in .index.json,
/// else one safetensors file), or, when no file has that name,
/// `path`.index.json (so a module naming "stats.safetensors" reads the
/// statistics whether they were merged or left in shards).
llvm::Expected<std::unique_ptr<Reader>> openArchive(llvm::StringRef path);
/// The file openArchive(path) reads: `path`, or `path`.index.json when only
/// that exists (`path` again when neither does).
std::string resolveArchive(llvm::StringRef path);
/// Whether `path` names an index (ends in .index.json).
bool isIndexPath(llvm::StringRef path);

class Writer {
public:
  /// Where the bytes given to add() / addTransposed() live; decides what
  /// write() may do with them after copying them out.
  enum class Source {
    /// Ordinary memory (heap, stack, a protobuf string): only ever read.
    Memory,
    /// A read-only mapping of a regular file, e.g. a MemoryBuffer whose
    /// getBufferKind() is MemoryBuffer_MMap (getFile() reads small files into
    /// the heap instead, and Reader::bytes() may return an aligned heap copy:
    /// check before claiming a mapping).
    /// write() releases the source pages it has finished with
    /// (madvise(MADV_DONTNEED) on the page-aligned interior of the range), so
    /// archiving gigabytes of mmapped weights needs about one chunk of
    /// resident memory rather than the whole input. The bytes stay valid and
    /// unchanged: a later read faults the pages back in from the file.
    /// NEVER pass heap or other anonymous memory as a file mapping: dropping
    /// its pages would zero them.
    FileMapping,
  };

  /// Non-owning: `bytes` must stay alive until write(), which lets tools stream
  /// straight from mmapped inputs (pass Source::FileMapping for those).
  /// Rejects empty, duplicate, reserved ("__metadata__") and non-UTF-8 names,
  /// negative dims, and a byte count that does not match the shape.
  llvm::Error add(llvm::StringRef name, DType dtype,
                  llvm::ArrayRef<int64_t> shape, llvm::ArrayRef<uint8_t> bytes,
                  Source source = Source::Memory);
  /// Like add(), but the tensor stored under `name` with `shape` = [R, C] is
  /// the transpose of `bytes`, a row-major [C, R] matrix. The transpose is
  /// computed chunk by chunk during write(), so no full-size copy is ever
  /// held. Rejects shapes that are not 2-D.
  llvm::Error addTransposed(llvm::StringRef name, DType dtype,
                            llvm::ArrayRef<int64_t> shape,
                            llvm::ArrayRef<uint8_t> bytes,
                            Source source = Source::Memory);
  /// Owning variant of add().
  llvm::Error addOwned(llvm::StringRef name, DType dtype,
                       llvm::ArrayRef<int64_t> shape,
                       std::vector<uint8_t> bytes);
  void setMetadata(llvm::StringRef key, llvm::StringRef value);
  /// `name` stands for the bytes of the tensor `target` (added before):
  /// stored once, as the metadata entry "__alias__.<name>": "<target>". A
  /// Reader lists and looks the alias up like a tensor of its own (and
  /// keeps the entry out of metadata()); readers without alias support see
  /// only `target` and one more metadata string.
  llvm::Error addAlias(llvm::StringRef name, llvm::StringRef target);

  /// Writes to a unique temp file beside `path` and renames it over `path`.
  /// On failure the temp file is removed and `path` is left untouched.
  /// Output is byte-identical for identical contents, whatever the add order.
  /// Tensors are written in chunks of at most kChunkBytes with plain write()
  /// calls (the destination is never mapped, so its dirty pages stay page
  /// cache, not resident memory); Source::FileMapping inputs are released
  /// behind the writer as described there.
  /// With a `progressLabel`, a progress bar of the MiB written is shown
  /// under it (see Progress).
  llvm::Error write(llvm::StringRef path,
                    llvm::StringRef progressLabel = "") const;

  /// Bytes handed to one write() call; also the size of the scratch buffer
  /// used for transposed tensors.
  static constexpr size_t kChunkBytes = size_t(4) << 20;

  size_t size() const { return entries.size(); }
  /// The tensor bytes write() will store (without the header).
  uint64_t totalBytes() const;

private:
  struct Entry {
    DType dtype;
    llvm::SmallVector<int64_t> shape;
    llvm::ArrayRef<uint8_t> bytes;
    std::vector<uint8_t> owned; // backs `bytes` for addOwned()
    Source source = Source::Memory;
    bool transposed = false; // `bytes` is [shape[1], shape[0]] row-major
  };
  llvm::Expected<Entry &> insert(llvm::StringRef name, DType dtype,
                                 llvm::ArrayRef<int64_t> shape,
                                 size_t numBytes);
  std::string headerJSON() const;
  /// Both call `wrote` with the bytes of each chunk written.
  static void writeContiguous(llvm::raw_fd_ostream &os, const Entry &entry,
                              llvm::function_ref<void(size_t)> wrote);
  static void writeTransposed(llvm::raw_fd_ostream &os, const Entry &entry,
                              std::vector<uint8_t> &scratch,
                              llvm::function_ref<void(size_t)> wrote);

  std::map<std::string, Entry> entries; // ordered: defines the file layout
  std::map<std::string, std::string> meta;
};

/// Tensors produced one by one (a quantization pass's outputs) parked in an
/// unlinked temporary file instead of memory until a Writer writes them:
/// addTo() maps the file and adds them as Source::FileMapping, so the
/// writer drops each page behind it. The file has no name once created, so
/// it disappears on every exit path, SIGKILL included.
class SpillArea {
public:
  /// The temporary is created in `dir` (the output's directory).
  static llvm::Expected<std::unique_ptr<SpillArea>> create(llvm::StringRef dir);
  ~SpillArea();
  /// Appends `bytes`; a later add() of the same name replaces it.
  llvm::Error add(llvm::StringRef name, DType dtype,
                  llvm::ArrayRef<int64_t> shape, llvm::ArrayRef<uint8_t> bytes);
  bool contains(llvm::StringRef name) const { return entries.count(name.str()); }
  /// Adds every tensor to `writer`; this object must outlive writer.write().
  llvm::Error addTo(Writer &writer);

private:
  SpillArea() = default;
  struct Entry {
    DType dtype;
    llvm::SmallVector<int64_t> shape;
    uint64_t offset, size;
  };
  int fd = -1;
  uint64_t end = 0;
  std::map<std::string, Entry> entries;
  void *mapping = nullptr;
  uint64_t mappedSize = 0;
};

/// Bit-exact IEEE conversions; f32 -> f16/bf16 round to nearest, ties to even,
/// overflow to infinity, and keep NaN payloads (forcing a quiet bit only when
/// the truncated payload would otherwise read as infinity).
uint16_t floatToHalf(float value);
float halfToFloat(uint16_t bits);
uint16_t floatToBF16(float value);
float bf16ToFloat(uint16_t bits);

} // namespace quant_mlir::safetensors

#endif // QUANT_MLIR_SUPPORT_SAFETENSORS_H
