//===- SafeTensors.cpp - safetensors reader and writer --------------------===//
// Format: u64 little-endian header length N, N bytes of JSON header, then the
// data section that the header's data_offsets index into.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Support/SafeTensors.h"
#include "quant-mlir/Support/CheckedMath.h"
#include "quant-mlir/Support/InputFiles.h"
#include "quant-mlir/Support/OutputPaths.h"
#include "quant-mlir/Support/Progress.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/Signals.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "llvm/Config/llvm-config.h" // LLVM_ON_UNIX
#if LLVM_ON_UNIX
#include <sys/mman.h>
#include <unistd.h>
#endif
#include <cerrno>

using namespace llvm;

namespace quant_mlir::safetensors {

// Typed views (Reader::as) reinterpret the little-endian payload in place.
static_assert(sys::IsLittleEndianHost,
              "safetensors payloads are little-endian");

// Same cap as the reference implementation: guards against allocating or
// parsing gigabytes because of a corrupt length field.
static constexpr uint64_t kMaxHeaderSize = 100'000'000;
static constexpr StringLiteral kMetadataKey = "__metadata__";
static constexpr StringLiteral kAliasPrefix = "__alias__.";

namespace {
struct DTypeDesc {
  DType dtype;
  StringLiteral name;
  size_t size;
};
} // namespace

static constexpr DTypeDesc kDTypes[] = {
    {DType::F64, "F64", 8},   {DType::F32, "F32", 4}, {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
    {DType::I16, "I16", 2},   {DType::I8, "I8", 1},   {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1}};

StringRef dtypeName(DType dtype) { return kDTypes[size_t(dtype)].name; }
size_t dtypeSize(DType dtype) { return kDTypes[size_t(dtype)].size; }

std::optional<DType> parseDType(StringRef name) {
  for (const DTypeDesc &desc : kDTypes)
    if (desc.name == name)
      return desc.dtype;
  return std::nullopt;
}

// Reader-validated shapes cannot overflow (open() checks the byte size).
int64_t TensorInfo::numElements() const {
  return std::accumulate(shape.begin(), shape.end(), int64_t(1),
                         std::multiplies<int64_t>());
}

static std::string formatShape(ArrayRef<int64_t> shape) {
  return formatDims(shape);
}

// Byte size of a tensor, or an error naming what is wrong with the shape.
// Shared by reader and writer so both accept exactly the same tensors.
static Expected<uint64_t> checkedByteSize(DType dtype,
                                          ArrayRef<int64_t> shape) {
  return quant_mlir::checkedByteSize(shape, dtypeSize(dtype));
}

//===----------------------------------------------------------------------===//
// Reader
//===----------------------------------------------------------------------===//

// Parses one header entry; errors are relative to the tensor (no path yet).
static Expected<TensorInfo> parseEntry(StringRef name, const json::Value &value,
                                       uint64_t dataSize) {
  auto fail = [&](const Twine &msg) {
    return createStringError("tensor '" + name + "': " + msg);
  };
  const json::Object *entry = value.getAsObject();
  if (!entry)
    return fail("header entry is not a JSON object");

  TensorInfo info;
  info.name = name.str();
  std::optional<StringRef> dtypeStr = entry->getString("dtype");
  if (!dtypeStr)
    return fail("missing or non-string \"dtype\"");
  std::optional<DType> dtype = parseDType(*dtypeStr);
  if (!dtype)
    return fail("unknown dtype '" + *dtypeStr + "'");
  info.dtype = *dtype;

  const json::Array *shape = entry->getArray("shape");
  if (!shape)
    return fail("missing or non-array \"shape\"");
  for (const json::Value &dim : *shape) {
    std::optional<int64_t> n = dim.getAsInteger();
    if (!n)
      return fail("\"shape\" must contain only integers");
    info.shape.push_back(*n);
  }

  const json::Array *offsets = entry->getArray("data_offsets");
  std::optional<uint64_t> begin, end;
  if (offsets && offsets->size() == 2) {
    begin = (*offsets)[0].getAsUINT64();
    end = (*offsets)[1].getAsUINT64();
  }
  if (!begin || !end)
    return fail("\"data_offsets\" must be [begin, end] with non-negative "
                "integers");
  if (*begin > *end)
    return fail("data_offsets begin " + Twine(*begin) + " > end " +
                Twine(*end));
  if (*end > dataSize)
    return fail("data_offsets end " + Twine(*end) +
                " is past the end of the data section (" + Twine(dataSize) +
                " bytes; file truncated?)");
  info.begin = *begin;
  info.end = *end;

  Expected<uint64_t> expected = checkedByteSize(info.dtype, info.shape);
  if (!expected)
    return fail(toString(expected.takeError()));
  if (info.numBytes() != *expected)
    return fail("data_offsets span " + Twine(info.numBytes()) +
                " bytes but shape " + formatShape(info.shape) + " of " +
                *dtypeStr + " needs " + Twine(*expected));
  return info;
}

static Error parseMetadata(const json::Value &value,
                           std::map<std::string, std::string> &out) {
  const json::Object *object = value.getAsObject();
  if (!object)
    return createStringError("\"__metadata__\" is not a JSON object");
  for (const auto &[key, val] : *object) {
    std::optional<StringRef> str = val.getAsString();
    if (!str)
      return createStringError("\"__metadata__\" value for key '" + key.str() +
                               "' is not a string");
    out[key.str()] = str->str();
  }
  return Error::success();
}

// json::parse silently keeps one of several equal keys, which would drop a
// tensor; count the top-level members of the (already valid) text instead.
static size_t countTopLevelMembers(StringRef json) {
  size_t depth = 0, commas = 0;
  bool inString = false, escaped = false, empty = true;
  for (char c : json) {
    if (inString) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        inString = false;
      continue;
    }
    if (c == '"') {
      inString = true;
      empty &= depth != 1;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == ',' && depth == 1) {
      ++commas;
    }
  }
  return empty ? 0 : commas + 1;
}

Expected<std::unique_ptr<Reader>> Reader::open(StringRef path) {
  auto fail = [&](const Twine &msg) {
    return createStringError(path + ": " + msg);
  };
  ErrorOr<std::unique_ptr<MemoryBuffer>> buffer = getRegularFile(path);
  if (!buffer)
    return createStringError(
        buffer.getError(),
        path + ": cannot open: " + buffer.getError().message());

  std::unique_ptr<Reader> reader(new Reader());
  reader->filePath = path.str();
  reader->buffer = std::move(*buffer);
  StringRef file = reader->buffer->getBuffer();

  if (file.size() < 8)
    return fail("file is " + Twine(file.size()) +
                " bytes, too short to hold the 8-byte header length");
  uint64_t headerSize = support::endian::read64le(file.data());
  if (headerSize > kMaxHeaderSize)
    return fail("header length " + Twine(headerSize) +
                " is implausibly large (limit " + Twine(kMaxHeaderSize) + ")");
  if (headerSize > file.size() - 8)
    return fail("header length " + Twine(headerSize) +
                " runs past the end of the file (" + Twine(file.size()) +
                " bytes)");
  StringRef data = file.drop_front(8 + headerSize);

  if (Error err = checkJSONNesting(file.substr(8, headerSize)))
    return fail("header is not valid JSON: " + toString(std::move(err)));
  Expected<json::Value> root = json::parse(file.substr(8, headerSize));
  if (!root)
    return fail("header is not valid JSON: " + toString(root.takeError()));
  const json::Object *header = root->getAsObject();
  if (!header)
    return fail("header is not a JSON object");
  if (countTopLevelMembers(file.substr(8, headerSize)) != header->size())
    return fail("header has duplicate tensor names");

  for (const auto &[key, value] : *header) {
    if (StringRef(key) == kMetadataKey) {
      if (Error err = parseMetadata(value, reader->meta))
        return fail(toString(std::move(err)));
      continue;
    }
    Expected<TensorInfo> info = parseEntry(key, value, data.size());
    if (!info)
      return fail(toString(info.takeError()));
    reader->tensorList.push_back(std::move(*info));
  }
  std::vector<TensorInfo> &list = reader->tensorList;

  // Overlap check on a copy sorted by position; empty tensors occupy nothing.
  std::vector<const TensorInfo *> byOffset;
  for (const TensorInfo &t : list)
    if (t.numBytes())
      byOffset.push_back(&t);
  llvm::sort(byOffset, [](const TensorInfo *a, const TensorInfo *b) {
    return a->begin < b->begin;
  });
  for (size_t i = 1; i < byOffset.size(); ++i)
    if (byOffset[i]->begin < byOffset[i - 1]->end)
      return fail("tensor '" + byOffset[i]->name + "' (data_offsets [" +
                  Twine(byOffset[i]->begin) + ", " + Twine(byOffset[i]->end) +
                  "]) overlaps tensor '" + byOffset[i - 1]->name + "'");

  // Aliases (Writer::addAlias): another name for a stored tensor's bytes.
  std::map<std::string, std::string> aliases;
  for (auto it = reader->meta.begin(); it != reader->meta.end();) {
    StringRef key = it->first;
    if (!key.consume_front(kAliasPrefix)) {
      ++it;
      continue;
    }
    aliases[key.str()] = it->second;
    it = reader->meta.erase(it);
  }
  if (!aliases.empty()) {
    // `stored` keys point into `list`'s names: no reallocation below.
    list.reserve(list.size() + aliases.size());
    std::map<StringRef, size_t> stored;
    for (auto [i, t] : llvm::enumerate(list))
      stored[t.name] = i;
    for (const auto &[alias, target] : aliases) {
      if (alias.empty())
        return fail("an alias (metadata '" + kAliasPrefix + "') has no name");
      if (stored.count(alias))
        return fail("alias '" + alias + "' is also a tensor");
      auto it = stored.find(target);
      if (it == stored.end())
        return fail("alias '" + alias + "' names no stored tensor '" + target +
                    "'");
      TensorInfo copy = list[it->second];
      copy.name = alias;
      list.push_back(std::move(copy));
    }
  }

  llvm::sort(list, [](const TensorInfo &a, const TensorInfo &b) {
    return StringRef(a.name) < StringRef(b.name);
  });

  // safetensors packs tensors back to back, so an F32 after an odd-length F16
  // sits misaligned; copy those once so as<T>() never hands out such pointers.
  for (const TensorInfo &t : list) {
    const uint8_t *src = data.bytes_begin() + t.begin;
    if (!t.numBytes()) {
      reader->payloads.push_back(nullptr);
    } else if (reinterpret_cast<uintptr_t>(src) % dtypeSize(t.dtype) == 0) {
      reader->payloads.push_back(src);
    } else {
      auto copy = std::make_unique<uint64_t[]>((t.numBytes() + 7) / 8);
      std::memcpy(copy.get(), src, t.numBytes());
      reader->payloads.push_back(reinterpret_cast<uint8_t *>(copy.get()));
      reader->alignedCopies.push_back(std::move(copy));
    }
  }
  return std::move(reader);
}

const TensorInfo *Reader::lookup(StringRef name) const {
  auto it =
      llvm::lower_bound(tensorList, name, [](const TensorInfo &t, StringRef n) {
        return StringRef(t.name) < n;
      });
  return it != tensorList.end() && it->name == name ? &*it : nullptr;
}

size_t Reader::indexOf(const TensorInfo &info) const {
  if (&info >= tensorList.data() &&
      &info < tensorList.data() + tensorList.size())
    return &info - tensorList.data();
  // A copy of one of our entries: find the original by name.
  const TensorInfo *own = lookup(info.name);
  assert(own && own->begin == info.begin && own->end == info.end &&
         "TensorInfo does not belong to this Reader");
  return own - tensorList.data();
}

ArrayRef<uint8_t> Reader::bytes(const TensorInfo &info) const {
  size_t index = indexOf(info);
  return {payloads[index], tensorList[index].numBytes()};
}

bool Reader::isMapped(const TensorInfo &info) const {
  if (!shards.empty()) {
    auto [shard, own] = shardOf(indexOf(info));
    return shard->isMapped(*own);
  }
  if (buffer->getBufferKind() != MemoryBuffer::MemoryBuffer_MMap)
    return false;
  const uint8_t *p = bytes(info).data();
  return p >= buffer->getBuffer().bytes_begin() &&
         p < buffer->getBuffer().bytes_end();
}

void Reader::releasePages(const TensorInfo &info) const {
  if (!shards.empty()) {
    auto [shard, own] = shardOf(indexOf(info));
    return shard->releasePages(*own);
  }
#if LLVM_ON_UNIX
  if (!isMapped(info))
    return;
  ArrayRef<uint8_t> raw = bytes(info);
  uintptr_t page = sys::Process::getPageSizeEstimate();
  uintptr_t lo = alignTo(reinterpret_cast<uintptr_t>(raw.data()), page);
  uintptr_t hi = alignDown(reinterpret_cast<uintptr_t>(raw.end()), page);
  if (lo < hi)
    (void)::madvise(reinterpret_cast<void *>(lo), hi - lo, MADV_DONTNEED);
#else
  (void)info;
#endif
}

uint64_t Reader::prefault() const {
  uint64_t total = 0;
  for (const auto &shard : shards)
    total += shard->prefault();
  if (!buffer || buffer->getBufferKind() != MemoryBuffer::MemoryBuffer_MMap)
    return total;
  const uint8_t *begin = buffer->getBuffer().bytes_begin();
  const size_t size = buffer->getBufferSize();
  const size_t page = sys::Process::getPageSizeEstimate();
#if LLVM_ON_UNIX
  uintptr_t lo = alignDown(reinterpret_cast<uintptr_t>(begin), page);
  (void)::madvise(reinterpret_cast<void *>(lo),
                  reinterpret_cast<uintptr_t>(begin) + size - lo,
                  MADV_WILLNEED);
#endif
  // Volatile reads: the loads must happen, their values are not needed.
  uint8_t sink = 0;
  for (size_t off = 0; off < size; off += page)
    sink ^= *static_cast<const volatile uint8_t *>(begin + off);
  (void)sink;
  return total + size;
}

//===----------------------------------------------------------------------===//
// SpillArea
//===----------------------------------------------------------------------===//

Expected<std::unique_ptr<SpillArea>> SpillArea::create(StringRef dir) {
  std::unique_ptr<SpillArea> area(new SpillArea());
  SmallString<256> model(dir), path;
  sys::path::append(model, temporaryModel(".spill"));
  if (std::error_code ec = sys::fs::createUniqueFile(model, area->fd, path))
    return createStringError(ec, "cannot create a temporary file in '" + dir +
                                     "': " + ec.message());
  // Unlinked at once: the data lives as long as the descriptor.
  sys::fs::remove(path);
  return std::move(area);
}

SpillArea::~SpillArea() {
#if LLVM_ON_UNIX
  if (mapping)
    ::munmap(mapping, mappedSize);
#endif
  if (fd >= 0)
    sys::fs::closeFile(fd);
}

Error SpillArea::add(StringRef name, DType dtype, ArrayRef<int64_t> shape,
                     ArrayRef<uint8_t> bytes) {
  if (mapping)
    return createStringError("spill area: add() after addTo()");
  uint64_t offset = alignTo(end, 8);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::pwrite(fd, bytes.data() + done, bytes.size() - done,
                         offset + done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return createStringError(std::error_code(errno, std::generic_category()),
                               "cannot write tensor '" + name +
                                   "' to the temporary spill file");
    done += n;
  }
  entries[name.str()] = {dtype, SmallVector<int64_t>(shape), offset,
                         uint64_t(bytes.size())};
  end = offset + bytes.size();
  return Error::success();
}

Error SpillArea::addTo(Writer &writer) {
#if LLVM_ON_UNIX
  if (!mapping && end > 0) {
    void *p = ::mmap(nullptr, end, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
      return createStringError(std::error_code(errno, std::generic_category()),
                               "cannot map the temporary spill file");
    mapping = p;
    mappedSize = end;
  }
#endif
  for (const auto &[name, e] : entries) {
    ArrayRef<uint8_t> bytes;
    if (e.size)
      bytes = {static_cast<const uint8_t *>(mapping) + e.offset, e.size};
    if (Error err = writer.add(name, e.dtype, e.shape, bytes,
                               Writer::Source::FileMapping))
      return err;
  }
  return Error::success();
}

//===----------------------------------------------------------------------===//
// Writer
//===----------------------------------------------------------------------===//

Expected<Writer::Entry &> Writer::insert(StringRef name, DType dtype,
                                         ArrayRef<int64_t> shape,
                                         size_t numBytes) {
  auto fail = [&](const Twine &msg) {
    return createStringError("cannot add tensor '" + name + "': " + msg);
  };
  if (name.empty())
    return createStringError("cannot add a tensor with an empty name");
  if (name == kMetadataKey)
    return fail("the name is reserved for the metadata map");
  if (!json::isUTF8(name))
    return fail("the name is not valid UTF-8");
  if (entries.count(name.str()))
    return fail("duplicate tensor name");
  Expected<uint64_t> expected = checkedByteSize(dtype, shape);
  if (!expected)
    return fail(toString(expected.takeError()));
  if (numBytes != *expected)
    return fail("got " + Twine(numBytes) + " bytes but shape " +
                formatShape(shape) + " of " + dtypeName(dtype) + " needs " +
                Twine(*expected));
  Entry &entry = entries[name.str()];
  entry.dtype = dtype;
  entry.shape.assign(shape.begin(), shape.end());
  return entry;
}

Error Writer::add(StringRef name, DType dtype, ArrayRef<int64_t> shape,
                  ArrayRef<uint8_t> bytes, Source source) {
  Expected<Entry &> entry = insert(name, dtype, shape, bytes.size());
  if (!entry)
    return entry.takeError();
  entry->bytes = bytes;
  entry->source = source;
  return Error::success();
}

Error Writer::addTransposed(StringRef name, DType dtype,
                            ArrayRef<int64_t> shape, ArrayRef<uint8_t> bytes,
                            Source source) {
  if (shape.size() != 2)
    return createStringError("cannot add tensor '" + name +
                             "': a transposed tensor must be 2-D, not " +
                             formatShape(shape));
  Expected<Entry &> entry = insert(name, dtype, shape, bytes.size());
  if (!entry)
    return entry.takeError();
  entry->bytes = bytes;
  entry->source = source;
  entry->transposed = true;
  return Error::success();
}

Error Writer::addOwned(StringRef name, DType dtype, ArrayRef<int64_t> shape,
                       std::vector<uint8_t> bytes) {
  Expected<Entry &> entry = insert(name, dtype, shape, bytes.size());
  if (!entry)
    return entry.takeError();
  entry->owned = std::move(bytes);
  entry->bytes = entry->owned;
  return Error::success();
}

// Drops the pages from the one holding `begin` up to (excluding) the one
// holding `end`, clipped to the pages that lie entirely inside the entry
// [entryBegin, entryEnd) (a neighbour's bytes may share the boundary pages).
// Only ever called for Source::FileMapping, where MADV_DONTNEED merely unmaps
// pages (a later access faults them back in from the file, unchanged); on
// anonymous memory it would zero them.
static void releaseMapped(const uint8_t *begin, const uint8_t *end,
                          const uint8_t *entryBegin, const uint8_t *entryEnd) {
#if LLVM_ON_UNIX
  static const uintptr_t page = sys::Process::getPageSizeEstimate();
  uintptr_t lo = alignDown(reinterpret_cast<uintptr_t>(begin), page);
  uintptr_t hi = alignDown(reinterpret_cast<uintptr_t>(end), page);
  lo = std::max(lo, alignTo(reinterpret_cast<uintptr_t>(entryBegin), page));
  hi = std::min(hi, alignDown(reinterpret_cast<uintptr_t>(entryEnd), page));
  if (lo < hi)
    (void)::madvise(reinterpret_cast<void *>(lo), hi - lo, MADV_DONTNEED);
#else
  (void)begin, (void)end, (void)entryBegin, (void)entryEnd;
#endif
}

void Writer::writeContiguous(raw_fd_ostream &os, const Entry &entry,
                             function_ref<void(size_t)> wrote) {
  const uint8_t *data = entry.bytes.data();
  size_t size = entry.bytes.size();
  for (size_t off = 0; off < size && !os.has_error(); off += kChunkBytes) {
    size_t len = std::min(kChunkBytes, size - off);
    os.write(reinterpret_cast<const char *>(data + off), len);
    wrote(len);
    // raw_ostream has copied (to the kernel or its buffer) all of it.
    if (entry.source == Source::FileMapping)
      releaseMapped(data + off, data + off + len, data, data + size);
  }
}

// dst = rows [r0, r1) of the [rows, cols] transpose of src, a row-major
// [cols, rows] matrix of Size-byte elements (possibly misaligned: memcpy),
// ending at srcEnd. With `release`, src is a file mapping whose pages are
// dropped after each tile of source rows: the chunk reads only columns
// [r0, r1) of each row, but the kernel's fault-around maps up to 64 KiB
// around every fault, which for short rows would make the whole source
// resident within one chunk. Dropped pages that a later chunk needs again
// are faulted back in from the page cache.
template <size_t Size>
static void transposeRows(const uint8_t *src, const uint8_t *srcEnd,
                          uint8_t *dst, int64_t rows, int64_t cols, int64_t r0,
                          int64_t r1, bool release) {
  constexpr int64_t kTile = 32;
  size_t srcRowBytes = size_t(rows) * Size;
  for (int64_t jb = 0; jb < cols; jb += kTile) {
    int64_t je = std::min(jb + kTile, cols);
    for (int64_t ib = r0; ib < r1; ib += kTile) {
      int64_t ie = std::min(ib + kTile, r1);
      for (int64_t j = jb; j < je; ++j) {
        const uint8_t *s = src + size_t(j) * srcRowBytes;
        uint8_t *d = dst + size_t(j) * Size;
        for (int64_t i = ib; i < ie; ++i)
          std::memcpy(d + size_t((i - r0) * cols) * Size, s + size_t(i) * Size,
                      Size);
      }
    }
    if (release)
      releaseMapped(src + size_t(jb) * srcRowBytes,
                    src + size_t(je) * srcRowBytes, src, srcEnd);
  }
}

void Writer::writeTransposed(raw_fd_ostream &os, const Entry &entry,
                             std::vector<uint8_t> &scratch,
                             function_ref<void(size_t)> wrote) {
  const uint8_t *src = entry.bytes.data();
  const uint8_t *srcEnd = src + entry.bytes.size();
  size_t es = dtypeSize(entry.dtype);
  int64_t rows = entry.shape[0], cols = entry.shape[1];
  if (!rows || !cols)
    return;
  size_t rowBytes = size_t(cols) * es;
  int64_t chunkRows =
      std::min<int64_t>(rows, std::max<size_t>(1, kChunkBytes / rowBytes));
  if (scratch.size() < size_t(chunkRows) * rowBytes)
    scratch.resize(size_t(chunkRows) * rowBytes);
  bool mapped = entry.source == Source::FileMapping;
  for (int64_t r0 = 0; r0 < rows && !os.has_error(); r0 += chunkRows) {
    int64_t r1 = std::min(rows, r0 + chunkRows);
    auto *fill = &transposeRows<8>;
    switch (es) {
    case 1:
      fill = &transposeRows<1>;
      break;
    case 2:
      fill = &transposeRows<2>;
      break;
    case 4:
      fill = &transposeRows<4>;
      break;
    default:
      assert(es == 8 && "unexpected element size");
    }
    fill(src, srcEnd, scratch.data(), rows, cols, r0, r1, mapped);
    os.write(reinterpret_cast<const char *>(scratch.data()),
             size_t(r1 - r0) * rowBytes);
    wrote(size_t(r1 - r0) * rowBytes);
  }
  if (mapped) // the pages straddling tiles, left out above
    releaseMapped(src, srcEnd, src, srcEnd);
}

Error Writer::addAlias(StringRef name, StringRef target) {
  if (entries.count(name.str()) || meta.count((kAliasPrefix + name).str()))
    return createStringError("duplicate tensor name '" + name + "'");
  if (!entries.count(target.str()))
    return createStringError("alias '" + name + "' names no tensor '" +
                             target + "'");
  meta[(kAliasPrefix + name).str()] = target.str();
  return Error::success();
}

uint64_t Writer::totalBytes() const {
  uint64_t total = 0;
  for (const auto &item : entries)
    total += item.second.bytes.size();
  return total;
}

void Writer::setMetadata(StringRef key, StringRef value) {
  meta[key.str()] = value.str();
}

// json::Object prints in hash order, so the header is emitted by hand in a
// fixed order: metadata first, then tensors by name, fields as in the spec.
std::string Writer::headerJSON() const {
  std::string out;
  raw_string_ostream os(out);
  json::OStream json(os);
  uint64_t offset = 0;
  json.object([&] {
    if (!meta.empty())
      json.attributeObject(kMetadataKey, [&] {
        for (const auto &[key, value] : meta)
          json.attribute(key, value);
      });
    for (const auto &item : entries) {
      const Entry &entry = item.second; // C++17 lambdas cannot capture bindings
      json.attributeObject(item.first, [&] {
        json.attribute("dtype", dtypeName(entry.dtype));
        json.attributeArray("shape", [&] {
          for (int64_t dim : entry.shape)
            json.value(dim);
        });
        json.attributeArray("data_offsets", [&] {
          json.value(offset);
          offset += entry.bytes.size();
          json.value(offset);
        });
      });
    }
  });
  // The spec allows trailing spaces; padding to 8 keeps the data section
  // 8-byte aligned in the file and hence in the mapping.
  out.append(alignTo(out.size(), 8) - out.size(), ' ');
  return out;
}

Error Writer::write(StringRef path, StringRef progressLabel) const {
  auto fail = [&](const Twine &msg, std::error_code ec) {
    return createStringError(path + ": " + msg + ": " + ec.message());
  };
  for (const auto &[key, value] : meta)
    if (!json::isUTF8(key) || !json::isUTF8(value))
      return createStringError(path + ": metadata entry '" + key +
                               "' is not valid UTF-8");
  std::string header = headerJSON();

  // Same directory as the target, so the final rename cannot cross devices.
  int fd;
  SmallString<256> tmpPath;
  // The pid in the name lets a later write() remove what a killed one left.
  removeDeadTemporaries(sys::path::parent_path(path),
                        sys::path::filename(path));
  if (std::error_code ec =
          sys::fs::createUniqueFile(temporaryModel(path), fd, tmpPath))
    return fail("cannot create temporary file", ec);
  sys::RemoveFileOnSignal(tmpPath);
  auto cleanup = [&](Error err) {
    sys::fs::remove(tmpPath);
    sys::DontRemoveFileOnSignal(tmpPath);
    return err;
  };

  {
    // Plain write()s into the temp file: mapping the destination instead
    // would make every dirty output page count as resident memory.
    raw_fd_ostream os(fd, /*shouldClose=*/true);
    char size[8];
    support::endian::write64le(size, header.size());
    os.write(size, sizeof(size));
    os << header;
    std::vector<uint8_t> scratch; // transposed chunks; grown on first use
    uint64_t total = 0, written = 0;
    for (const auto &item : entries)
      total += item.second.bytes.size();
    // Whole MiB as they complete; the last partial one at the end.
    int64_t units = std::max<int64_t>(1, int64_t(total >> 20)), shown = 0;
    std::optional<Progress> progress;
    if (!progressLabel.empty()) {
      progress.emplace(progressLabel, units);
      progress->setDetail("MiB");
    }
    auto wrote = [&](size_t n) {
      if (!progress)
        return;
      written += n;
      int64_t now = std::min<int64_t>(units, int64_t(written >> 20));
      progress->advance(now - shown);
      shown = now;
    };
    for (const auto &item : entries) {
      const Entry &entry = item.second;
      if (entry.transposed)
        writeTransposed(os, entry, scratch, wrote);
      else
        writeContiguous(os, entry, wrote);
      if (os.has_error())
        break; // stop early; the error is reported after close()
    }
    if (progress && !os.has_error())
      progress->advance(units - shown);
    os.close(); // reports deferred write errors, which only show on close
    if (std::error_code ec = os.error()) {
      os.clear_error(); // otherwise ~raw_fd_ostream aborts
      return cleanup(fail("cannot write temporary file " + tmpPath, ec));
    }
  }
  if (std::error_code ec = sys::fs::rename(tmpPath, path))
    return cleanup(fail("cannot rename " + tmpPath + " into place", ec));
  sys::DontRemoveFileOnSignal(tmpPath);
  return Error::success();
}

} // namespace quant_mlir::safetensors
