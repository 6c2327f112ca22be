//===- Module.cpp - quant_mlir._quant_mlir, the pybind11 extension ---------===//
// Compiled with RTTI and exceptions (pybind11 needs both) and therefore
// including only Facade.h of the project. Long calls release the GIL; the
// log, progress, token and quantizer callbacks take it back. No exception
// leaves a callback into the facade: Python errors become error strings
// there and come back as quant_mlir.Error here.
//===----------------------------------------------------------------------===//

#include "Facade.h"

#include "quant-mlir/Quant/BLASKernels.h"

#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <stdexcept>

namespace py = pybind11;
using namespace quant_mlir::python;

namespace {
/// Raised as quant_mlir.Error (a RuntimeError) with the tool's message.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename T> T unwrap(Result<T> r) {
  if (!r.ok())
    throw Error(r.error);
  return std::move(r.value);
}

/// A Python callable held by C++ code that may outlive the call that gave
/// it (the quantizer registry): released under the GIL, or leaked once the
/// interpreter is gone.
std::shared_ptr<py::object> holdCallable(py::object fn) {
  return std::shared_ptr<py::object>(new py::object(std::move(fn)),
                                     [](py::object *p) {
                                       if (!Py_IsInitialized())
                                         return;
                                       py::gil_scoped_acquire gil;
                                       delete p;
                                     });
}

/// The message of the Python exception being handled.
std::string describe(py::error_already_set &e) {
  std::string msg;
  try {
    msg = py::str(e.value()).cast<std::string>();
  } catch (...) {
  }
  std::string type;
  try {
    type = py::str(e.type().attr("__name__")).cast<std::string>();
  } catch (...) {
  }
  return type.empty() ? msg : type + ": " + msg;
}

LineSink lineSink(py::object fn) {
  if (fn.is_none())
    return nullptr;
  auto held = holdCallable(std::move(fn));
  return [held](const std::string &line) {
    py::gil_scoped_acquire gil;
    try {
      (*held)(line);
    } catch (py::error_already_set &e) {
      e.discard_as_unraisable("quant_mlir log callback");
    }
  };
}

ProgressSink progressSink(py::object fn) {
  if (fn.is_none())
    return nullptr;
  auto held = holdCallable(std::move(fn));
  return [held](const std::string &line, bool finished) {
    py::gil_scoped_acquire gil;
    try {
      (*held)(line, finished);
    } catch (py::error_already_set &e) {
      e.discard_as_unraisable("quant_mlir progress callback");
    }
  };
}

/// A float32/float64 array of `shape` copied from `data` (or None).
template <typename T>
py::object copyArray(const T *data, std::vector<py::ssize_t> shape) {
  if (!data)
    return py::none();
  py::array_t<T> a(shape);
  size_t count = 1;
  for (py::ssize_t d : shape)
    count *= size_t(d);
  std::copy(data, data + count, a.mutable_data());
  return std::move(a);
}

/// Moves `v` into a numpy array of `shape` without copying.
template <typename T>
py::array_t<T> moveToArray(std::vector<T> v, std::vector<py::ssize_t> shape) {
  auto *owned = new std::vector<T>(std::move(v));
  py::capsule base(owned, [](void *p) { delete static_cast<std::vector<T> *>(p); });
  return py::array_t<T>(shape, owned->data(), base);
}

/// The custom-quantizer adapter: `dispatch(layer, weight, hessian, x_mean,
/// rows, bits, group_size, symmetric, act_order)` returns (codes [N, K],
/// scales [N, G], zeros [N, G], g_idx [K] or None), already checked and
/// converted by quant_mlir's Python side.
Quantizer pythonQuantizer(py::object dispatch) {
  auto held = holdCallable(std::move(dispatch));
  return [held](const LayerInput &in, LayerOutput &out) -> std::string {
    py::gil_scoped_acquire gil;
    try {
      py::ssize_t n = in.n, k = in.k;
      py::object result = (*held)(
          in.layer, copyArray(in.weight, {n, k}),
          copyArray(in.hessian, {k, k}), copyArray(in.xMean, {k}),
          copyArray(in.rows, {py::ssize_t(in.numRows), k}), in.bits,
          in.groupSize, in.symmetric, in.actOrder);
      auto tuple = result.cast<py::tuple>();
      if (tuple.size() != 4)
        return "the quantizer must return (codes, scales, zeros, g_idx)";
      auto codes = py::array_t<uint8_t, py::array::c_style |
                                            py::array::forcecast>::ensure(py::object(tuple[0]));
      auto scales = py::array_t<float, py::array::c_style |
                                           py::array::forcecast>::ensure(py::object(tuple[1]));
      auto zeros = py::array_t<int32_t, py::array::c_style |
                                            py::array::forcecast>::ensure(py::object(tuple[2]));
      if (!codes || !scales || !zeros)
        return "codes, scales and zeros must be numeric arrays";
      out.codes.assign(codes.data(), codes.data() + codes.size());
      out.scales.assign(scales.data(), scales.data() + scales.size());
      out.zeros.assign(zeros.data(), zeros.data() + zeros.size());
      if (!tuple[3].is_none()) {
        auto gIdx = py::array_t<int32_t, py::array::c_style |
                                             py::array::forcecast>::ensure(py::object(tuple[3]));
        if (!gIdx)
          return "g_idx must be an integer array or None";
        out.gIdx.assign(gIdx.data(), gIdx.data() + gIdx.size());
      }
      return "";
    } catch (py::error_already_set &e) {
      return describe(e);
    } catch (std::exception &e) {
      return e.what();
    } catch (...) {
      return "unknown C++ exception in the quantizer adapter";
    }
  };
}

/// A read-only numpy view of one archive tensor; the array's base keeps
/// the mapping alive.
py::object viewTensor(const std::shared_ptr<Stats> &stats,
                      const std::string &name) {
  TensorView v;
  if (!stats->view(name, v))
    return py::none();
  if (v.dtype != "F64" && v.dtype != "F32" && v.dtype != "I64" &&
      v.dtype != "I32")
    throw Error("tensor '" + name + "' has dtype " + v.dtype +
                ", which Stats does not view");
  py::dtype dtype = v.dtype == "F64"   ? py::dtype::of<double>()
                    : v.dtype == "F32" ? py::dtype::of<float>()
                    : v.dtype == "I64" ? py::dtype::of<int64_t>()
                                       : py::dtype::of<int32_t>();
  std::vector<py::ssize_t> shape(v.shape.begin(), v.shape.end());
  auto *keep = new std::shared_ptr<Stats>(stats);
  py::capsule base(keep, [](void *p) {
    delete static_cast<std::shared_ptr<Stats> *>(p);
  });
  py::array a(dtype, shape, {}, v.data, base);
  // The mapping is read-only: a write would fault.
  py::detail::array_proxy(a.ptr())->flags &=
      ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  return std::move(a);
}
} // namespace

PYBIND11_MODULE(_quant_mlir, m) {
  quant_mlir::quant::configureBLASKernels();
  m.doc() = "quant-mlir's compiled driver API (use the quant_mlir package)";
  static py::exception<Error> error(m, "Error", PyExc_RuntimeError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p)
        std::rethrow_exception(p);
    } catch (const Error &e) {
      error(e.what());
    }
  });

  py::class_<CompileArgs>(m, "CompileArgs")
      .def(py::init<>())
      .def_readwrite("input", &CompileArgs::input)
      .def_readwrite("out_dir", &CompileArgs::outDir)
      .def_readwrite("method", &CompileArgs::method)
      .def_readwrite("bits", &CompileArgs::bits)
      .def_readwrite("group_size", &CompileArgs::groupSize)
      .def_readwrite("zero_point", &CompileArgs::zeroPoint)
      .def_readwrite("desc_act", &CompileArgs::descAct)
      .def_readwrite("fake_quant", &CompileArgs::fakeQuant)
      .def_readwrite("force", &CompileArgs::force)
      .def_readwrite("quiet", &CompileArgs::quiet)
      .def_readwrite("scale_dtype", &CompileArgs::scaleType)
      .def_readwrite("skip", &CompileArgs::skip)
      .def_readwrite("overrides", &CompileArgs::overrides)
      .def_readwrite("damp_percent", &CompileArgs::dampPercent)
      .def_readwrite("block_size", &CompileArgs::blockSize)
      .def_readwrite("static_groups", &CompileArgs::staticGroups)
      .def_readwrite("true_sequential", &CompileArgs::trueSequential)
      .def_readwrite("awq_mode", &CompileArgs::awqMode)
      .def_readwrite("duo_scaling", &CompileArgs::duoScaling)
      .def_readwrite("clip", &CompileArgs::clip)
      .def_readwrite("n_grid", &CompileArgs::nGrid)
      .def_readwrite("calib_data", &CompileArgs::calibData)
      .def_readwrite("tokenizer", &CompileArgs::tokenizer)
      .def_readwrite("calib_samples", &CompileArgs::calibSamples)
      .def_readwrite("seq_len", &CompileArgs::seqLen)
      .def_readwrite("seed", &CompileArgs::seed)
      .def_readwrite("targets", &CompileArgs::targets)
      .def_readwrite("ptxas", &CompileArgs::ptxas)
      .def_readwrite("format", &CompileArgs::format);

  m.def(
      "compile",
      [](const CompileArgs &args, py::object log, py::object progress) {
        LineSink logSink = lineSink(std::move(log));
        ProgressSink bars = progressSink(std::move(progress));
        Result<CompileOutput> r;
        {
          py::gil_scoped_release release;
          r = compile(args, logSink, bars);
        }
        CompileOutput out = unwrap(std::move(r));
        py::dict d;
        d["out_dir"] = out.outDir;
        d["report_path"] = out.reportPath;
        d["hf_dir"] = out.hfDir;
        d["linears"] = out.linears;
        d["calibrated_layers"] = out.calibratedLayers;
        d["seconds"] = out.seconds;
        return d;
      },
      py::arg("args"), py::arg("log") = py::none(),
      py::arg("progress") = py::none());

  m.def(
      "load_tokens",
      [](const std::string &path, const std::string &tokenizer) {
        Result<std::vector<int64_t>> r;
        {
          py::gil_scoped_release release;
          r = loadTokens(path, tokenizer);
        }
        std::vector<int64_t> ids = unwrap(std::move(r));
        py::ssize_t size = py::ssize_t(ids.size());
        return moveToArray(std::move(ids), {size});
      },
      py::arg("path"), py::arg("tokenizer") = "");

  py::class_<Model, std::shared_ptr<Model>>(m, "Model")
      .def_static(
          "load",
          [](const std::string &dir, const std::string &tokenizer,
             const std::string &func) {
            Result<std::shared_ptr<Model>> r;
            {
              py::gil_scoped_release release;
              r = Model::load(dir, tokenizer, func);
            }
            return unwrap(std::move(r));
          },
          py::arg("dir"), py::arg("tokenizer") = "", py::arg("func") = "")
      .def_property_readonly("dir", &Model::dir)
      .def_property_readonly("has_tokenizer", &Model::hasTokenizer)
      .def("encode",
           [](const Model &self, const std::string &text, bool bos) {
             return unwrap(self.encode(text, bos));
           })
      .def("decode",
           [](const Model &self, const std::vector<int64_t> &ids) {
             return unwrap(self.decode(ids));
           })
      .def("vocab_size",
           [](Model &self) {
             Result<int64_t> r;
             {
               py::gil_scoped_release release;
               r = self.vocabSize();
             }
             return unwrap(std::move(r));
           })
      .def("perplexity",
           [](Model &self, const std::vector<int64_t> &tokens, int64_t seqLen,
              int64_t maxWindows, bool quiet, py::object progress) {
             ProgressSink bars = progressSink(std::move(progress));
             Result<PerplexityOutput> r;
             {
               py::gil_scoped_release release;
               r = self.perplexity(tokens, seqLen, maxWindows, quiet, bars);
             }
             PerplexityOutput o = unwrap(std::move(r));
             py::dict d;
             d["windows"] = o.windows;
             d["predicted_tokens"] = o.predicted;
             d["seq_len"] = o.seqLen;
             d["mean_nll"] = o.meanNLL;
             d["perplexity"] = o.perplexity;
             d["tokens_per_second"] = o.tokensPerSecond;
             d["compile_seconds"] = o.compileSeconds;
             d["eval_seconds"] = o.evalSeconds;
             return d;
           })
      .def("logits",
           [](Model &self,
              py::array_t<int64_t, py::array::c_style | py::array::forcecast>
                  ids) {
             if (ids.ndim() != 2)
               throw Error("logits need ids of shape [batch, seq]");
             int64_t batch = ids.shape(0), seq = ids.shape(1), vocab = 0;
             std::vector<int64_t> flat(ids.data(), ids.data() + ids.size());
             Result<std::vector<float>> r;
             {
               py::gil_scoped_release release;
               r = self.logits(flat, batch, seq, vocab);
             }
             return moveToArray(unwrap(std::move(r)),
                                {py::ssize_t(batch), py::ssize_t(seq),
                                 py::ssize_t(vocab)});
           })
      .def("generate",
           [](Model &self, const std::vector<int64_t> &prompt,
              const py::dict &opts, py::object onToken) {
             GenerateArgs a;
             a.maxNewTokens = opts["max_new_tokens"].cast<int64_t>();
             a.temperature = opts["temperature"].cast<double>();
             a.topP = opts["top_p"].cast<double>();
             a.topK = opts["top_k"].cast<int64_t>();
             a.seed = opts["seed"].cast<uint64_t>();
             a.maxSeqLen = opts["max_seq_len"].cast<int64_t>();
             a.kvCache = opts["kv_cache"].cast<std::string>();
             a.stopAtEos = opts["stop_at_eos"].cast<bool>();
             std::function<void(int64_t)> tokenFn;
             // The first exception of the callback, raised after the call.
             std::optional<py::error_already_set> raised;
             if (!onToken.is_none())
               tokenFn = [&](int64_t id) {
                 py::gil_scoped_acquire gil;
                 if (raised)
                   return;
                 try {
                   onToken(id);
                 } catch (py::error_already_set &e) {
                   raised.emplace(std::move(e));
                 }
               };
             Result<GenerateOutput> r;
             {
               py::gil_scoped_release release;
               r = self.generate(prompt, a, tokenFn);
             }
             if (raised)
               throw std::move(*raised);
             GenerateOutput o = unwrap(std::move(r));
             py::dict d;
             py::ssize_t count = py::ssize_t(o.ids.size());
             d["ids"] = moveToArray(std::move(o.ids), {count});
             d["text"] = o.text;
             d["stop"] = o.stop;
             d["kv_cache"] = o.kvCache;
             d["time_to_first_token_s"] = o.timeToFirstToken;
             d["token_seconds"] = o.tokenSeconds;
             return d;
           });

  py::class_<Stats, std::shared_ptr<Stats>>(m, "Stats")
      .def_static("open",
                  [](const std::string &path) {
                    return unwrap(Stats::open(path));
                  })
      .def_property_readonly("path", &Stats::path)
      .def("layers", &Stats::layers)
      .def("metadata", &Stats::metadata)
      .def("tensor", [](const std::shared_ptr<Stats> &self,
                        const std::string &name) {
        return viewTensor(self, name);
      });

  m.def(
      "register_quantizer",
      [](const std::string &name, py::object dispatch) {
        std::string err = registerQuantizer(name, pythonQuantizer(dispatch));
        if (!err.empty())
          throw Error(err);
      },
      py::arg("name"), py::arg("dispatch"));
  m.def("unregister_quantizer", &unregisterQuantizer, py::arg("name"));
  m.def("quantizer_names", &quantizerNames);
}
