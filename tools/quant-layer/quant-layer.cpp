//===- quant-layer.cpp - quantize one linear layer with RTN or GPTQ -------===//
// Reads a weight [N, K] and (for GPTQ) its Hessian [K, K] from safetensors
// archives, quantizes with lib/Quant, and writes the codes, grids and gptq
// packing to one archive:
//   q U8 [K, N], scales F32 [G, N], zeros I32 [G, N], g_idx I32 [K],
//   qweight I32 [K*bits/32, N], qzeros I32 [G, N*bits/32].
// g_idx is always written (k / group_size without act-order). Errors go to
// stderr with exit status 1; the output is written atomically, so a failed
// run leaves no file.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Quant/GPTQ.h"
#include "quant-mlir/Quant/LayerError.h"
#include "quant-mlir/Quant/Packing.h"
#include "quant-mlir/Support/SafeTensors.h"
#include "quant-mlir/Quant/BLASKernels.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/raw_ostream.h"

#include <cblas.h>

#include <chrono>
#include <cstring>

using namespace llvm;
using namespace quant_mlir;
namespace st = quant_mlir::safetensors;

static cl::OptionCategory category("quant-layer options");
static cl::opt<std::string> method("method", cl::Required,
                                   cl::desc("rtn or gptq"), cl::cat(category));
static cl::opt<unsigned> bits("bits", cl::init(4),
                              cl::desc("Bits per code: 2, 3, 4 or 8"),
                              cl::cat(category));
static cl::opt<int64_t> groupSize("group-size", cl::init(128),
                                  cl::desc("Group size along K, -1 per channel"),
                                  cl::cat(category));
static cl::opt<bool> zeroPoint("zero-point",
                               cl::desc("Asymmetric grid with stored zeros "
                                        "(default symmetric)"),
                               cl::cat(category));
static cl::opt<bool> descAct("desc-act",
                             cl::desc("Act-order: quantize columns by "
                                      "decreasing diag(H); records g_idx"),
                             cl::cat(category));
static cl::opt<bool> staticGroups("static-groups",
                                  cl::desc("GPTQ: fix every group's grid up "
                                           "front on the original weights"),
                                  cl::cat(category));
static cl::opt<double> dampPercent("damp-percent", cl::init(0.01),
                                   cl::desc("GPTQ dampening, a fraction of "
                                            "mean(diag H)"),
                                   cl::cat(category));
static cl::opt<int64_t> blockSize("block-size", cl::init(128),
                                  cl::desc("GPTQ lazy-batch width"),
                                  cl::cat(category));
static cl::opt<std::string> weightArg("weight", cl::Required,
                                      cl::desc("FILE.safetensors:NAME of the "
                                               "[N, K] weight (F32/F16/BF16/F64)"),
                                      cl::cat(category));
static cl::opt<std::string> hessianArg("hessian",
                                       cl::desc("FILE.safetensors:NAME of the "
                                                "[K, K] Hessian (F64/F32); "
                                                "required for gptq"),
                                       cl::cat(category));
static cl::opt<std::string> layerNameArg("layer-name",
                                         cl::desc("Layer name for messages "
                                                  "(default: the weight's "
                                                  "name without .weight)"),
                                         cl::cat(category));
static cl::opt<int> threads("blas-threads", cl::init(0),
                            cl::desc("OpenBLAS threads (0: OpenBLAS's "
                                     "default)"),
                            cl::cat(category));
static cl::opt<bool> printTime("print-time",
                               cl::desc("Print the quantization time (s) as "
                                        "'quantize_seconds=...' on stdout"),
                               cl::cat(category));
static cl::opt<bool> reportError(
    "report-error",
    cl::desc("GPTQ: compute the quantization report's output error both "
             "ways (GPTQ's own sums; the direct dsymm of measureLayerError) "
             "and print both errors and their times"),
    cl::cat(category));
static cl::opt<std::string> outPath("o", cl::Required,
                                    cl::desc("Output .safetensors"),
                                    cl::value_desc("file"), cl::cat(category));

static int fail(const Twine &msg) {
  errs() << "quant-layer: error: " << msg << "\n";
  return 1;
}

static int fail(Error err) {
  std::string msg = toString(std::move(err));
  return fail(msg);
}

namespace {
struct TensorRef {
  std::unique_ptr<st::Reader> reader;
  const st::TensorInfo *info = nullptr;
  std::string name;
};
} // namespace

/// FILE:NAME, split at the last ':'.
static Expected<TensorRef> openTensor(StringRef arg, StringRef what) {
  size_t colon = arg.rfind(':');
  if (colon == StringRef::npos || colon == 0 || colon + 1 == arg.size())
    return createStringError(inconvertibleErrorCode(),
                             "--" + what + " must be FILE:NAME, got '" + arg +
                                 "'");
  TensorRef ref;
  auto reader = st::Reader::open(arg.take_front(colon));
  if (!reader)
    return reader.takeError();
  ref.reader = std::move(*reader);
  ref.name = arg.drop_front(colon + 1).str();
  ref.info = ref.reader->lookup(ref.name);
  if (!ref.info)
    return createStringError(inconvertibleErrorCode(),
                             "no tensor '" + ref.name + "' in " +
                                 arg.take_front(colon));
  return ref;
}

/// The tensor as doubles, converting every floating dtype.
static Expected<std::vector<double>> readFloats(const TensorRef &ref) {
  const st::TensorInfo &info = *ref.info;
  const st::Reader &r = *ref.reader;
  std::vector<double> out;
  out.reserve(size_t(info.numElements()));
  switch (info.dtype) {
  case st::DType::F64:
    for (double v : r.as<double>(info))
      out.push_back(v);
    break;
  case st::DType::F32:
    for (float v : r.as<float>(info))
      out.push_back(v);
    break;
  case st::DType::F16:
    for (uint16_t v : r.as<uint16_t>(info))
      out.push_back(st::halfToFloat(v));
    break;
  case st::DType::BF16:
    for (uint16_t v : r.as<uint16_t>(info))
      out.push_back(st::bf16ToFloat(v));
    break;
  default:
    return createStringError(inconvertibleErrorCode(),
                             "tensor '" + ref.name + "' has dtype " +
                                 st::dtypeName(info.dtype) +
                                 ", expected a floating type");
  }
  return out;
}

template <typename T>
static std::vector<uint8_t> toBytes(const std::vector<T> &v) {
  std::vector<uint8_t> out(v.size() * sizeof(T));
  if (!v.empty())
    std::memcpy(out.data(), v.data(), out.size());
  return out;
}

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  quant_mlir::quant::configureBLASKernels();
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(
      argc, argv, "quant-layer: quantize one linear layer (RTN or GPTQ)\n");

  if (method != "rtn" && method != "gptq")
    return fail("--method must be rtn or gptq, got '" + method + "'");
  bool gptq = method == "gptq";
  if (gptq && hessianArg.empty())
    return fail("--method gptq needs --hessian FILE:NAME");
  if (threads > 0)
    openblas_set_num_threads(threads);

  auto weight = openTensor(weightArg, "weight");
  if (!weight)
    return fail(weight.takeError());
  std::string layer = layerNameArg;
  if (layer.empty()) {
    layer = weight->name;
    if (StringRef(layer).ends_with(".weight"))
      layer.resize(layer.size() - strlen(".weight"));
  }
  if (weight->info->shape.size() != 2)
    return fail("layer '" + layer + "': weight must be rank 2 [N, K], got rank " +
                Twine(weight->info->shape.size()));
  int64_t n = weight->info->shape[0], k = weight->info->shape[1];
  auto wd = readFloats(*weight);
  if (!wd)
    return fail(wd.takeError());
  std::vector<float> w(wd->begin(), wd->end());
  wd->clear();

  quant::Scheme scheme;
  scheme.bits = bits;
  scheme.groupSize = groupSize;
  scheme.symmetric = !zeroPoint;
  scheme.actOrder = descAct;
  if (Error err = quant::verifyScheme(scheme, n, k, layer))
    return fail(std::move(err));
  // The gptq packing (and the dialect) need whole words.
  if ((k * bits) % 32 != 0)
    return fail("layer '" + layer + "': K = " + Twine(k) + " times bits = " +
                Twine(bits) + " is not a multiple of 32 (gptq packing)");
  if ((n * bits) % 32 != 0)
    return fail("layer '" + layer + "': N = " + Twine(n) + " times bits = " +
                Twine(bits) + " is not a multiple of 32 (gptq zeros packing)");

  std::vector<double> h;
  if (gptq) {
    auto hess = openTensor(hessianArg, "hessian");
    if (!hess)
      return fail(hess.takeError());
    const auto &shape = hess->info->shape;
    if (shape.size() != 2 || shape[0] != k || shape[1] != k)
      return fail("layer '" + layer + "': Hessian must be [" + Twine(k) +
                  ", " + Twine(k) + "]");
    auto hd = readFloats(*hess);
    if (!hd)
      return fail(hd.takeError());
    h = std::move(*hd);
  }

  quant::GPTQOutputError own;
  auto start = std::chrono::steady_clock::now();
  Expected<quant::QuantizedWeight> result =
      gptq ? quant::quantizeGPTQ(w, n, k, h, scheme,
                                 quant::GPTQOptions{dampPercent, blockSize,
                                                    staticGroups},
                                 layer, reportError ? &own : nullptr)
           : quant::quantizeRTN(w, n, k, scheme);
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  if (!result)
    return fail(result.takeError());
  quant::QuantizedWeight &qw = *result;
  if (qw.gIdx.empty()) {
    qw.gIdx.resize(size_t(k));
    for (int64_t col = 0; col < k; ++col)
      qw.gIdx[size_t(col)] = int32_t(scheme.groupOf(col));
  }
  int64_t groups = qw.numGroups();

  st::Writer writer;
  auto add = [&](StringRef name, st::DType dtype, ArrayRef<int64_t> shape,
                 std::vector<uint8_t> bytes) {
    return writer.addOwned(name, dtype, shape, std::move(bytes));
  };
  if (Error err = add("q", st::DType::U8, {k, n}, qw.q))
    return fail(std::move(err));
  if (Error err = add("scales", st::DType::F32, {groups, n}, toBytes(qw.scales)))
    return fail(std::move(err));
  if (Error err = add("zeros", st::DType::I32, {groups, n}, toBytes(qw.zeros)))
    return fail(std::move(err));
  if (Error err = add("g_idx", st::DType::I32, {k}, toBytes(qw.gIdx)))
    return fail(std::move(err));
  if (Error err = add("qweight", st::DType::I32, {k * bits / 32, n},
                      toBytes(quant::packCodesGPTQ(qw))))
    return fail(std::move(err));
  if (Error err = add("qzeros", st::DType::I32, {groups, n * bits / 32},
                      toBytes(quant::packZerosGPTQ(qw))))
    return fail(std::move(err));
  writer.setMetadata("method", method);
  writer.setMetadata("layer", layer);
  writer.setMetadata("bits", std::to_string(bits));
  writer.setMetadata("group_size", std::to_string(groupSize));
  writer.setMetadata("sym", zeroPoint ? "false" : "true");
  writer.setMetadata("desc_act", descAct ? "true" : "false");
  if (gptq) {
    writer.setMetadata("static_groups", staticGroups ? "true" : "false");
    std::string damp;
    raw_string_ostream(damp) << format("%g", double(dampPercent));
    writer.setMetadata("damp_percent", damp);
    writer.setMetadata("block_size", std::to_string(blockSize));
  }
  if (Error err = writer.write(outPath))
    return fail(std::move(err));
  if (printTime)
    outs() << "quantize_seconds=" << format("%.6f", seconds) << "\n";
  if (reportError && gptq) {
    std::vector<float> deq = qw.dequantize();
    auto t0 = std::chrono::steady_clock::now();
    quant::LayerError direct = quant::measureLayerError(w, deq, n, k, h);
    double directSeconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
            .count();
    outs() << "own_error_seconds=" << format("%.6f", own.referenceSeconds)
           << "\n"
           << "direct_error_seconds=" << format("%.6f", directSeconds) << "\n"
           << "own_output_rel_err="
           << format("%.9e", own.valid ? quant::relativeOutputError(
                                             own.error, own.reference)
                                       : -1.0)
           << "\n"
           << "direct_output_rel_err=" << format("%.9e", direct.output)
           << "\n";
  }

  return 0;
}
