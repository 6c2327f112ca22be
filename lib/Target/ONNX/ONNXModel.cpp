//===- ONNXModel.cpp - ONNX protobuf and tensor payload decoding ----------===//
// Parses ModelProto files up to protobuf's 2 GB limit and turns TensorProtos
// (raw_data, typed fields, or mmapped external data) into byte views.
//===----------------------------------------------------------------------===//

#include "Importer.h"

#include "quant-mlir/Support/CheckedMath.h"
#include "quant-mlir/Support/InputFiles.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <climits>
#include <cstring>

using namespace llvm;

namespace quant_mlir::onnx_import {

using onnx::TensorProto;

int64_t TensorData::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

std::string dtypeName(int32_t dtype) {
  if (!TensorProto::DataType_IsValid(dtype))
    return ("dtype " + Twine(dtype)).str();
  return StringRef(TensorProto::DataType_Name(
                       static_cast<TensorProto::DataType>(dtype)))
      .lower();
}

size_t dtypeSize(int32_t dtype) {
  switch (dtype) {
  case TensorProto::FLOAT:
  case TensorProto::INT32:
    return 4;
  case TensorProto::FLOAT16:
  case TensorProto::BFLOAT16:
    return 2;
  case TensorProto::INT64:
  case TensorProto::DOUBLE:
    return 8;
  case TensorProto::INT8:
  case TensorProto::UINT8:
  case TensorProto::BOOL:
    return 1;
  default:
    return 0;
  }
}

mlir::Type dtypeToType(int32_t dtype, mlir::MLIRContext *ctx) {
  mlir::Builder b(ctx);
  switch (dtype) {
  case TensorProto::FLOAT:
    return b.getF32Type();
  case TensorProto::FLOAT16:
    return b.getF16Type();
  case TensorProto::BFLOAT16:
    return b.getBF16Type();
  case TensorProto::DOUBLE:
    return b.getF64Type();
  case TensorProto::INT64:
    return b.getI64Type();
  case TensorProto::INT32:
    return b.getI32Type();
  case TensorProto::INT8:
  case TensorProto::UINT8: // compute types are signless
    return b.getI8Type();
  case TensorProto::BOOL:
    return b.getI1Type();
  default:
    return {};
  }
}

std::optional<safetensors::DType> dtypeToArchive(int32_t dtype) {
  using safetensors::DType;
  switch (dtype) {
  case TensorProto::FLOAT:
    return DType::F32;
  case TensorProto::FLOAT16:
    return DType::F16;
  case TensorProto::BFLOAT16:
    return DType::BF16;
  case TensorProto::INT64:
    return DType::I64;
  case TensorProto::INT32:
    return DType::I32;
  case TensorProto::INT8:
    return DType::I8;
  case TensorProto::UINT8:
    return DType::U8;
  case TensorProto::BOOL: // small ones are folded; others as the archive's BOOL
    return DType::BOOL;
  default:
    return std::nullopt;
  }
}

Error loadModelProto(StringRef path, onnx::ModelProto &proto) {
  // mmap rather than read: a 2 GB protobuf should not be copied twice.
  auto buffer = getRegularFile(path);
  if (!buffer)
    return createStringError(buffer.getError(), "cannot open '" + path +
                                                    "': " +
                                                    buffer.getError().message());
  StringRef data = (*buffer)->getBuffer();
  if (data.size() > size_t(INT_MAX))
    return createStringError(
        "'" + path + "' is " + Twine(data.size()) +
        " bytes; protobuf caps a model at 2 GB (store the weights as "
        "external data)");
  google::protobuf::io::ArrayInputStream stream(data.data(), int(data.size()));
  google::protobuf::io::CodedInputStream coded(&stream);
  // The default limit (64 MB in older protobufs) rejects real models.
  coded.SetTotalBytesLimit(INT_MAX);
  if (!proto.ParseFromCodedStream(&coded) || !coded.ConsumedEntireMessage())
    return createStringError("'" + path +
                             "' is not a valid ONNX model (truncated or "
                             "corrupt protobuf)");
  if (!proto.has_graph())
    return createStringError("'" + path + "' has no graph");
  return Error::success();
}

/// Copies the typed repeated field of `t` into `out` as little-endian bytes.
static Error decodeTypedFields(const TensorProto &t, TensorData &out,
                               int64_t numel, StringRef what) {
  size_t elemSize = dtypeSize(t.data_type());
  auto sizeError = [&](int64_t have) {
    return createStringError(what + ": holds " + Twine(have) +
                             " elements but its shape " + "needs " +
                             Twine(numel));
  };
  // int32, int8, uint8, bool, float16 and bfloat16 all live in int32_data
  // (the 16-bit floats as their bit patterns).
  int64_t have = t.data_type() == TensorProto::FLOAT    ? t.float_data_size()
                 : t.data_type() == TensorProto::DOUBLE ? t.double_data_size()
                 : t.data_type() == TensorProto::INT64  ? t.int64_data_size()
                                                        : t.int32_data_size();
  // Counted before allocating: the field's length is bounded by the file, a
  // corrupt shape's element count is not.
  if (have != numel)
    return sizeError(have);
  out.owned.resize(size_t(numel) * elemSize);
  uint8_t *dst = out.owned.data();
  switch (t.data_type()) {
  case TensorProto::FLOAT:
    if (numel)
      std::memcpy(dst, t.float_data().data(), numel * 4);
    break;
  case TensorProto::DOUBLE:
    if (numel)
      std::memcpy(dst, t.double_data().data(), numel * 8);
    break;
  case TensorProto::INT64:
    if (numel)
      std::memcpy(dst, t.int64_data().data(), numel * 8);
    break;
  default: {
    for (int64_t i = 0; i < numel; ++i) {
      uint32_t v = uint32_t(t.int32_data(int(i)));
      std::memcpy(dst + i * elemSize, &v, elemSize);
    }
  }
  }
  out.bytes = out.owned;
  return Error::success();
}

static Error decodeExternal(const TensorProto &t,
                            ImportedModel::Storage &storage, TensorData &out,
                            uint64_t expected, StringRef what) {
  std::string location;
  std::optional<uint64_t> offset, length;
  for (const auto &entry : t.external_data()) {
    uint64_t n;
    if (entry.key() == "location") {
      location = entry.value();
    } else if (entry.key() == "offset" || entry.key() == "length") {
      if (StringRef(entry.value()).getAsInteger(10, n))
        return createStringError(what + ": external data " + entry.key() +
                                 " '" + entry.value() +
                                 "' is not an integer");
      (entry.key() == "offset" ? offset : length) = n;
    }
  }
  if (location.empty())
    return createStringError(what + ": external data has no location");
  // Like onnx.checker: data lives beside the model, never elsewhere; and
  // unlike it, a symlink that leads out of the model's directory is refused
  // too (the path is compared after realpath).
  Expected<std::string> resolved =
      sys::path::is_absolute(location) || StringRef(location).contains("..")
          ? Expected<std::string>(createStringError("outside"))
          : resolveInside(storage.modelDir, location);
  if (!resolved) {
    consumeError(resolved.takeError());
    return createStringError(what + ": external data location '" + location +
                             "' must be a relative path inside the model's "
                             "directory (symlinks leading out are refused)");
  }
  std::string path = std::move(*resolved);

  auto it = storage.dataFiles.find(path);
  if (it == storage.dataFiles.end()) {
    // Mapped, not read: the pages back the archive writer directly, which
    // releases them once written (Source::FileMapping), so the importer's
    // peak RSS does not grow with the model.
    // getRegularFile: a FIFO as external data would block open() forever.
    auto buffer = getRegularFile(path);
    if (!buffer)
      return createStringError(what + ": cannot open external data file '" +
                               location + "': " +
                               buffer.getError().message());
    it = storage.dataFiles.try_emplace(path, std::move(*buffer)).first;
  }
  const MemoryBuffer &file = *it->second;
  uint64_t fileSize = file.getBufferSize();
  uint64_t begin = offset.value_or(0);
  uint64_t size = length.value_or(expected);
  if (size != expected)
    return createStringError(what + ": external data length " + Twine(size) +
                             " does not match its shape and dtype (" +
                             Twine(expected) + " bytes)");
  if (begin > fileSize || size > fileSize - begin)
    return createStringError(what + ": external data [offset " +
                             Twine(begin) + ", length " + Twine(size) +
                             "] is past the end of '" + location + "' (" +
                             Twine(fileSize) + " bytes)");
  out.bytes = ArrayRef<uint8_t>(
      reinterpret_cast<const uint8_t *>(file.getBufferStart()) + begin,
      size_t(size));
  // Small files are read into the heap instead; those must not be released.
  out.mapped = file.getBufferKind() == MemoryBuffer::MemoryBuffer_MMap;
  return Error::success();
}

Error decodeTensor(const TensorProto &t, ImportedModel::Storage &storage,
                   TensorData &out, bool allowBoolAndDouble, StringRef what) {
  out.name = t.name();
  out.dtype = t.data_type();
  out.shape.assign(t.dims().begin(), t.dims().end());
  bool supported = dtypeToArchive(out.dtype).has_value() ||
                   (allowBoolAndDouble && (out.dtype == TensorProto::BOOL ||
                                           out.dtype == TensorProto::DOUBLE));
  if (!supported)
    return createStringError(what + ": unsupported dtype " +
                             dtypeName(out.dtype));
  if (t.has_segment())
    return createStringError(what + ": segmented tensors are not supported");
  // At most 2^50 elements: beyond any real tensor, and the byte count of
  // every dtype stays representable.
  Expected<int64_t> count =
      checkedElementCount(out.shape, what, int64_t(1) << 50);
  if (!count)
    return count.takeError();
  int64_t numel = *count;
  uint64_t expected = uint64_t(numel) * dtypeSize(out.dtype);

  if (t.data_location() == TensorProto::EXTERNAL)
    return decodeExternal(t, storage, out, expected, what);
  if (t.has_raw_data()) {
    if (t.raw_data().size() != expected)
      return createStringError(
          what + ": raw_data holds " + Twine(t.raw_data().size()) +
          " bytes but its shape [" +
          join(map_range(out.shape, [](int64_t d) { return std::to_string(d); }),
               ", ") +
          "] of " + dtypeName(out.dtype) + " needs " + Twine(expected));
    out.bytes = ArrayRef<uint8_t>(
        reinterpret_cast<const uint8_t *>(t.raw_data().data()),
        t.raw_data().size());
    return Error::success();
  }
  return decodeTypedFields(t, out, numel, what);
}

} // namespace quant_mlir::onnx_import
