//===- ShardedArchive.cpp - safetensors archives split into shards ---------===//
// Hugging Face's sharded checkpoints: `<name>.index.json` maps every tensor
// to the shard file holding it. Block-streaming calibration leaves its
// per-block statistics as such shards instead of copying them into one file,
// so the disk holds the statistics once; a Reader over an index behaves as
// one archive holding every tensor, so the passes read either form.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Support/InputFiles.h"
#include "quant-mlir/Support/OutputPaths.h"
#include "quant-mlir/Support/SafeTensors.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Signals.h"
#include "llvm/Support/raw_ostream.h"

#include <set>

using namespace llvm;
namespace fs = llvm::sys::fs;

namespace quant_mlir::safetensors {

bool isIndexPath(StringRef path) { return path.ends_with(kIndexSuffix); }

std::string resolveArchive(StringRef path) {
  if (fs::exists(path))
    return path.str();
  std::string index = (path + kIndexSuffix).str();
  if (fs::exists(index))
    return index;
  return path.str();
}

Expected<std::unique_ptr<Reader>> openArchive(StringRef path) {
  std::string resolved = resolveArchive(path);
  return isIndexPath(resolved) ? Reader::openIndex(resolved)
                               : Reader::open(resolved);
}

/// A shard's name must stay in the index's directory: a file name, nothing
/// that walks elsewhere.
static bool isPlainFileName(StringRef name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find_first_of("/\\") == StringRef::npos &&
         name.find('\0') == StringRef::npos;
}

Expected<ShardIndex> readIndex(StringRef path) {
  auto fail = [&](const Twine &msg) {
    return createStringError(path + ": " + msg);
  };
  auto buffer = getRegularFile(path);
  if (!buffer)
    return createStringError(buffer.getError(),
                             path + ": cannot open: " +
                                 buffer.getError().message());
  StringRef text = (*buffer)->getBuffer();
  if (Error err = checkJSONNesting(text))
    return fail("not valid JSON: " + toString(std::move(err)));
  Expected<json::Value> root = json::parse(text);
  if (!root)
    return fail("not valid JSON: " + toString(root.takeError()));
  const json::Object *object = root->getAsObject();
  if (!object)
    return fail("not a JSON object");
  ShardIndex index;
  const json::Object *map = object->getObject("weight_map");
  if (!map)
    return fail("no \"weight_map\" object (not a sharded-archive index)");
  for (const auto &[tensor, shard] : *map) {
    std::optional<StringRef> name = shard.getAsString();
    if (!name)
      return fail("the shard of tensor '" + tensor.str() +
                  "' is not a string");
    if (!isPlainFileName(*name))
      return fail("the shard '" + *name + "' of tensor '" + tensor.str() +
                  "' is not a file name in the index's directory");
    index.weightMap[tensor.str()] = name->str();
  }
  if (const json::Value *meta = object->get("metadata")) {
    const json::Object *m = meta->getAsObject();
    if (!m)
      return fail("\"metadata\" is not a JSON object");
    for (const auto &[key, value] : *m) {
      if (StringRef(key) == "total_size") {
        std::optional<int64_t> n = value.getAsInteger();
        if (!n || *n < 0)
          return fail("\"total_size\" is not a byte count");
        index.totalSize = *n;
      } else if (std::optional<StringRef> str = value.getAsString()) {
        index.metadata[key.str()] = str->str();
      } else {
        return fail("metadata value for key '" + key.str() +
                    "' is not a string");
      }
    }
  }
  return index;
}

Error writeIndex(StringRef path, const ShardIndex &index, bool durable) {
  std::string text;
  {
    raw_string_ostream os(text);
    json::OStream json(os, 2);
    json.object([&] {
      json.attributeObject("metadata", [&] {
        for (const auto &[k, v] : index.metadata)
          json.attribute(k, v);
        json.attribute("total_size", int64_t(index.totalSize));
      });
      json.attributeObject("weight_map", [&] {
        for (const auto &[k, v] : index.weightMap)
          json.attribute(k, v);
      });
    });
    os << "\n";
  }
  auto fail = [&](const Twine &msg, std::error_code ec) {
    return createStringError(path + ": " + msg + ": " + ec.message());
  };
  removeDeadTemporaries(sys::path::parent_path(path),
                        sys::path::filename(path));
  int fd;
  SmallString<256> tmpPath;
  if (std::error_code ec = fs::createUniqueFile(temporaryModel(path), fd,
                                                tmpPath))
    return fail("cannot create temporary file", ec);
  sys::RemoveFileOnSignal(tmpPath);
  auto cleanup = [&](Error err) {
    fs::remove(tmpPath);
    sys::DontRemoveFileOnSignal(tmpPath);
    return err;
  };
  {
    raw_fd_ostream os(fd, /*shouldClose=*/true);
    os << text;
    os.close();
    if (std::error_code ec = os.error()) {
      os.clear_error();
      return cleanup(fail("cannot write temporary file " + tmpPath, ec));
    }
  }
  if (durable)
    if (Error err = syncToDisk(tmpPath))
      return cleanup(std::move(err));
  if (std::error_code ec = fs::rename(tmpPath, path))
    return cleanup(fail("cannot rename " + tmpPath + " into place", ec));
  sys::DontRemoveFileOnSignal(tmpPath);
  if (durable) {
    SmallString<256> dir(sys::path::parent_path(path));
    if (dir.empty())
      dir = ".";
    return syncToDisk(dir);
  }
  return Error::success();
}

Expected<std::unique_ptr<Reader>> Reader::openIndex(StringRef indexPath) {
  Expected<ShardIndex> index = readIndex(indexPath);
  if (!index)
    return index.takeError();
  auto fail = [&](const Twine &msg) {
    return createStringError(indexPath + ": " + msg);
  };
  std::unique_ptr<Reader> reader(new Reader());
  reader->filePath = indexPath.str();
  reader->meta = index->metadata;
  StringRef dir = sys::path::parent_path(indexPath);
  std::set<std::string> names;
  for (const auto &[tensor, shard] : index->weightMap)
    names.insert(shard);
  std::map<std::string, uint32_t> shardNumber;
  for (const std::string &name : names) {
    SmallString<256> path(dir);
    sys::path::append(path, name);
    auto shard = Reader::open(path);
    if (!shard)
      return fail("shard '" + name + "': " + toString(shard.takeError()));
    for (const TensorInfo &t : (*shard)->tensors()) {
      auto it = index->weightMap.find(t.name);
      if (it == index->weightMap.end())
        return fail("tensor '" + t.name + "' of shard '" + name +
                    "' is not in the weight_map");
      if (it->second != name)
        return fail("tensor '" + t.name + "' of shard '" + name +
                    "' is mapped to shard '" + it->second + "'");
    }
    shardNumber[name] = reader->shards.size();
    reader->shards.push_back(std::move(*shard));
  }
  // Every shard's tensors are in the map, so walking the (sorted) map
  // visits each tensor once, in name order.
  for (const auto &[tensor, shard] : index->weightMap) {
    uint32_t number = shardNumber[shard];
    const Reader &owner = *reader->shards[number];
    const TensorInfo *info = owner.lookup(tensor);
    if (!info)
      return fail("tensor '" + tensor + "' is not in its shard '" + shard +
                  "'");
    reader->tensorList.push_back(*info);
    reader->payloads.push_back(owner.bytes(*info).data());
    reader->shardIndex.push_back(number);
  }
  return std::move(reader);
}

std::pair<const Reader *, const TensorInfo *>
Reader::shardOf(size_t index) const {
  const Reader *shard = shards[shardIndex[index]].get();
  return {shard, shard->lookup(tensorList[index].name)};
}

std::vector<std::string> Reader::files() const {
  if (shards.empty())
    return {filePath};
  std::vector<std::string> out;
  for (const auto &shard : shards)
    out.push_back(shard->path().str());
  return out;
}

} // namespace quant_mlir::safetensors
