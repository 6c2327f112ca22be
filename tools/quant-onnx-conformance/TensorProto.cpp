//===- TensorProto.cpp - ONNX test data: models, TensorProto files, compare -===//
// Reads the node tests' protobuf files with Debian's libonnx_proto (as the
// importer does) and compares run results against their outputs.
//===----------------------------------------------------------------------===//

#include "Conformance.h"

#include "quant-mlir/Support/SafeTensors.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

// Debian's libonnx only ships the ONNX-ML flavour of the generated header.
#ifndef ONNX_ML
#define ONNX_ML 1
#endif
#ifndef ONNX_NAMESPACE
#define ONNX_NAMESPACE onnx
#endif
#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstring>
#include <set>

using namespace llvm;
using namespace quant_mlir;
using namespace quant_mlir::conformance;
using safetensors::DType;

static Error makeError(const Twine &msg) {
  return createStringError(inconvertibleErrorCode(), msg);
}

template <typename ProtoT>
static Error parseFile(StringRef path, ProtoT &proto) {
  auto buffer = MemoryBuffer::getFile(path, /*IsText=*/false,
                                      /*RequiresNullTerminator=*/false);
  if (!buffer)
    return makeError("cannot read '" + path + "': " +
                     buffer.getError().message());
  if (!proto.ParseFromArray((*buffer)->getBufferStart(),
                            int((*buffer)->getBufferSize())))
    return makeError("'" + path + "' is not a valid protobuf of its kind");
  return Error::success();
}

static std::optional<DType> archiveDType(int32_t onnxType) {
  switch (onnxType) {
  case onnx::TensorProto::FLOAT:
    return DType::F32;
  case onnx::TensorProto::DOUBLE:
    return DType::F64;
  case onnx::TensorProto::FLOAT16:
    return DType::F16;
  case onnx::TensorProto::BFLOAT16:
    return DType::BF16;
  case onnx::TensorProto::INT64:
    return DType::I64;
  case onnx::TensorProto::INT32:
    return DType::I32;
  case onnx::TensorProto::INT16:
    return DType::I16;
  case onnx::TensorProto::INT8:
    return DType::I8;
  case onnx::TensorProto::UINT8:
    return DType::U8;
  case onnx::TensorProto::BOOL:
    return DType::BOOL;
  default:
    return std::nullopt;
  }
}

template <typename T, typename Field>
static void appendAs(std::vector<uint8_t> &out, const Field &field) {
  for (auto v : field) {
    T x = static_cast<T>(v);
    const auto *p = reinterpret_cast<const uint8_t *>(&x);
    out.insert(out.end(), p, p + sizeof(T));
  }
}

Expected<HostTensor> conformance::readTensorProto(StringRef path,
                                                  int32_t declaredType) {
  onnx::TensorProto t;
  if (Error err = parseFile(path, t))
    return std::move(err);
  // numpy has no bfloat16: the generator writes its bits as uint16.
  if (t.data_type() == onnx::TensorProto::UINT16 &&
      declaredType == onnx::TensorProto::BFLOAT16)
    t.set_data_type(onnx::TensorProto::BFLOAT16);
  std::optional<DType> dtype = archiveDType(t.data_type());
  if (!dtype)
    return makeError("'" + path + "': tensor dtype " + Twine(t.data_type()) +
                     " has no runtime counterpart");
  if (t.data_location() == onnx::TensorProto::EXTERNAL)
    return makeError("'" + path + "': external data is not supported");
  HostTensor h;
  h.dtype = *dtype;
  h.shape.assign(t.dims().begin(), t.dims().end());
  size_t bytes = size_t(h.numElements()) * safetensors::dtypeSize(*dtype);
  if (t.has_raw_data()) {
    h.data.assign(t.raw_data().begin(), t.raw_data().end());
  } else {
    switch (*dtype) {
    case DType::F32:
      appendAs<float>(h.data, t.float_data());
      break;
    case DType::F64:
      appendAs<double>(h.data, t.double_data());
      break;
    case DType::I64:
      appendAs<int64_t>(h.data, t.int64_data());
      break;
    case DType::I32:
      appendAs<int32_t>(h.data, t.int32_data());
      break;
    case DType::F16:
    case DType::BF16:
    case DType::I16:
      appendAs<uint16_t>(h.data, t.int32_data());
      break;
    case DType::I8:
    case DType::U8:
    case DType::BOOL:
      appendAs<uint8_t>(h.data, t.int32_data());
      break;
    }
  }
  if (h.data.size() != bytes)
    return makeError("'" + path + "' holds " + Twine(h.data.size()) +
                     " bytes of data, its shape needs " + Twine(bytes));
  return h;
}

Expected<TestCase> conformance::loadTestCase(StringRef dir) {
  SmallString<256> modelPath(dir);
  sys::path::append(modelPath, "model.onnx");
  onnx::ModelProto model;
  if (Error err = parseFile(modelPath, model))
    return std::move(err);
  TestCase tc;
  tc.dir = dir.str();
  tc.name = sys::path::filename(dir).str();
  std::set<std::string> ops;
  for (const auto &n : model.graph().node())
    ops.insert(n.domain().empty() || n.domain() == "ai.onnx"
                   ? n.op_type()
                   : n.domain() + "." + n.op_type());
  tc.nodeOps.assign(ops.begin(), ops.end());
  auto elemType = [](const onnx::ValueInfoProto &v) {
    return v.type().has_tensor_type() ? v.type().tensor_type().elem_type()
                                      : 0;
  };
  for (const auto &in : model.graph().input()) {
    tc.inputs.push_back(in.name());
    tc.inputTypes.push_back(elemType(in));
  }
  for (const auto &out : model.graph().output()) {
    tc.outputs.push_back(out.name());
    tc.outputTypes.push_back(elemType(out));
  }
  for (const auto &o : model.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx")
      tc.opset = o.version();
  if (model.graph().node_size() == 1)
    tc.op = model.graph().node(0).op_type();
  return tc;
}

/// Element `i` of a float tensor as a double.
static double floatAt(const HostTensor &t, int64_t i) {
  switch (t.dtype) {
  case DType::F64:
    return t.as<double>()[i];
  case DType::F32:
    return t.as<float>()[i];
  case DType::F16:
    return safetensors::halfToFloat(t.as<uint16_t>()[i]);
  case DType::BF16:
    return safetensors::bf16ToFloat(t.as<uint16_t>()[i]);
  default:
    llvm_unreachable("not a float dtype");
  }
}

static int64_t intAt(const HostTensor &t, int64_t i) {
  switch (t.dtype) {
  case DType::I64:
    return t.as<int64_t>()[i];
  case DType::I32:
    return t.as<int32_t>()[i];
  case DType::I16:
    return t.as<int16_t>()[i];
  case DType::I8:
    return t.as<int8_t>()[i];
  case DType::U8:
    return t.as<uint8_t>()[i];
  case DType::BOOL:
    return t.as<uint8_t>()[i] != 0;
  default:
    llvm_unreachable("not an integer dtype");
  }
}

static std::string shapeStr(ArrayRef<int64_t> shape) {
  return "[" +
         join(map_range(shape, [](int64_t d) { return std::to_string(d); }),
              ", ") +
         "]";
}

std::string conformance::compareTensors(const HostTensor &got,
                                        const HostTensor &want, double rtol,
                                        double atol) {
  if (got.dtype != want.dtype || got.shape != want.shape)
    return ("is " + safetensors::dtypeName(got.dtype) + " " +
            shapeStr(got.shape) + ", expected " +
            safetensors::dtypeName(want.dtype) + " " + shapeStr(want.shape))
        .str();
  bool isFloat = want.dtype == DType::F64 || want.dtype == DType::F32 ||
                 want.dtype == DType::F16 || want.dtype == DType::BF16;
  // One ulp of the narrow float types: their results are rounded from wider
  // arithmetic in the reference and cannot agree to 1e-5.
  if (want.dtype == DType::F16)
    rtol = std::max(rtol, 0x1p-10);
  if (want.dtype == DType::BF16)
    rtol = std::max(rtol, 0x1p-7);
  int64_t n = want.numElements(), bad = 0, worst = -1;
  double worstExcess = 0, maxDiff = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!isFloat) {
      if (intAt(got, i) != intAt(want, i)) {
        if (!bad)
          worst = i;
        ++bad;
      }
      continue;
    }
    double g = floatAt(got, i), w = floatAt(want, i);
    if (std::isnan(w) || std::isnan(g)) {
      if (std::isnan(w) != std::isnan(g)) {
        if (!bad || worstExcess != INFINITY)
          worst = i, worstExcess = INFINITY;
        ++bad;
      }
      continue;
    }
    if (g == w)
      continue; // also equal infinities
    double diff = std::fabs(g - w), limit = atol + rtol * std::fabs(w);
    maxDiff = std::max(maxDiff, diff);
    if (!(diff <= limit)) {
      ++bad;
      double excess = std::isinf(diff) ? INFINITY : diff / limit;
      if (worst < 0 || excess > worstExcess)
        worst = i, worstExcess = excess;
    }
  }
  if (!bad)
    return "";
  std::string msg;
  raw_string_ostream os(msg);
  os << bad << " of " << n << " elements differ";
  if (isFloat)
    os << format(" (max |diff| %.3g)", maxDiff) << "; worst at flat index "
       << worst << format(": got %.9g, expected %.9g", floatAt(got, worst),
                          floatAt(want, worst));
  else
    os << "; first at flat index " << worst << ": got " << intAt(got, worst)
       << ", expected " << intAt(want, worst);
  return msg;
}
