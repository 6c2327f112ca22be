"""The quant_mlir API: compile, evaluate, generate, statistics and custom quantizers.

Everything here runs through quant-mlir's C++ driver (lib/Driver) in the
compiled extension ``quant_mlir._quant_mlir``: ``compile`` is ``quant-compile``,
``Model.perplexity`` is ``quant-run --eval-data``, ``Model.generate`` is
``quant-run --prompt``, with the same numbers and the same error messages.
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

try:
    from . import _quant_mlir as _ext
except ImportError as exc:  # pragma: no cover - depends on the build
    raise ImportError(
        "quant_mlir's compiled extension (_quant_mlir) is not built or not on the path: "
        "build quant-mlir (scripts/setup.sh, or ninja -C build) and use "
        "PYTHONPATH=build/python, or run `cmake --install build --component python` "
        f"(docs/python.md). The import said: {exc}"
    ) from exc

Error = _ext.Error
Error.__doc__ = "A quant-mlir error (a RuntimeError) with the tool's message, e.g. naming the layer or file."


class QuantizerError(Error):
    """A registered quantizer raised, or returned unusable data, for a layer.

    The message names the layer and the quantizer; ``__cause__`` is the
    exception the quantizer raised (if it raised).
    """


TokenIds = Union[Sequence[int], np.ndarray]

__all__ = [
    "compile", "load", "load_tokens", "Model", "Report", "Stats", "LayerStats",
    "Scheme", "Error", "QuantizerError", "register_quantizer",
    "unregister_quantizer", "registered_quantizers",
]


# --------------------------------------------------------------------------
# Progress and log output
# --------------------------------------------------------------------------

class _Bar:
    """Draws the C++ progress bars on sys.stderr with carriage returns
    (terminals and Jupyter both honour them); the final line is kept."""

    def __init__(self) -> None:
        self._width = 0

    def __call__(self, line: str, finished: bool) -> None:
        stream = sys.stderr
        pad = " " * max(0, self._width - len(line))
        stream.write("\r" + line + pad + ("\n" if finished else ""))
        stream.flush()
        self._width = 0 if finished else len(line)


def _log(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------
# Custom quantizers
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Scheme:
    """The scheme a layer is quantized with, as #wq.scheme states it.

    Codes q in [0, 2^bits - 1] dequantize as
    ``w[n, k] = scales[n, g] * (q[n, k] - zeros[n, g])`` with
    ``g = g_idx[k]`` under act-order, else ``k // group_size``
    (``group_size == -1``: one group per row). Symmetric schemes store no
    zeros: every zero is ``2^(bits-1)``.
    """

    layer: str
    n: int
    k: int
    bits: int
    group_size: int
    symmetric: bool
    act_order: bool

    @property
    def zero_point(self) -> bool:
        """Asymmetric (AutoGPTQ ``sym=False``)."""
        return not self.symmetric

    @property
    def num_groups(self) -> int:
        return 1 if self.group_size == -1 else self.k // self.group_size

    @property
    def max_code(self) -> int:
        return (1 << self.bits) - 1


@dataclass(frozen=True)
class LayerStats:
    """One layer's calibration statistics (None where not recorded).

    ``hessian``: float64 [K, K], H = 2/n sum x x^T; ``x_mean``: float32 [K],
    mean |x| per input channel (AutoAWQ's x_mean); ``rows``: float32
    [rows, K], a seeded sample of input rows.
    """

    hessian: Optional[np.ndarray]
    x_mean: Optional[np.ndarray]
    rows: Optional[np.ndarray]


QuantizerFn = Callable[[np.ndarray, Optional[LayerStats], Scheme],
                       Tuple[np.ndarray, np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]]

# name -> (layer, exception) of the last failure, raised by compile().
_failures: Dict[str, Tuple[str, BaseException]] = {}


def _as_int_array(value: Any, what: str, shape: Tuple[int, ...], lo: int, hi: int) -> np.ndarray:
    a = np.asarray(value)
    if a.shape != shape:
        raise ValueError(f"{what} has shape {a.shape}, expected {shape}")
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise ValueError(f"{what} must hold integers")
    elif a.dtype.kind not in "iub":
        raise ValueError(f"{what} must be an integer array, got dtype {a.dtype}")
    if a.size and (a.min() < lo or a.max() > hi):
        raise ValueError(f"{what} must lie in [{lo}, {hi}], got [{a.min()}, {a.max()}]")
    return a


def _normalize(result: Any, s: Scheme) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Checks a quantizer's result and converts it to the extension's dtypes."""
    if not isinstance(result, (tuple, list)) or len(result) != 4:
        raise ValueError("the quantizer must return (codes, scales, zeros, g_idx)")
    codes, scales, zeros, g_idx = result
    g = s.num_groups
    q = _as_int_array(codes, "codes", (s.n, s.k), 0, s.max_code).astype(np.uint8)
    sc = np.asarray(scales, dtype=np.float32)
    if sc.shape != (s.n, g):
        raise ValueError(f"scales has shape {sc.shape}, expected {(s.n, g)}")
    if zeros is None:
        if not s.symmetric:
            raise ValueError("zeros is None, but the scheme has a zero point")
        z = np.full((s.n, g), 1 << (s.bits - 1), dtype=np.int32)
    else:
        z = _as_int_array(zeros, "zeros", (s.n, g), 0, s.max_code).astype(np.int32)
    gi = None
    if g_idx is not None:
        gi = _as_int_array(g_idx, "g_idx", (s.k,), 0, g - 1).astype(np.int32)
    return np.ascontiguousarray(q), np.ascontiguousarray(sc), np.ascontiguousarray(z), gi


def register_quantizer(name: str, fn: QuantizerFn) -> None:
    """Registers ``fn`` as the quantization method ``name``.

    After this, ``compile(..., method=name)`` runs the whole pipeline
    (import, calibration when ``calib_data`` is given, packing, export,
    evaluation, GPU kernels) with ``fn`` in place of RTN/GPTQ for every
    selected layer::

        codes, scales, zeros, g_idx = fn(weight, stats, scheme)

    ``weight`` is float32 [N, K] (nn.Linear layout); ``stats`` a LayerStats
    (None without calibration); ``scheme`` a Scheme. Return codes [N, K]
    (integers in [0, 2^bits - 1]), scales [N, G], zeros [N, G] (None for
    symmetric schemes) and g_idx [K] (act-order only, else None); see
    Scheme for how they dequantize. An exception from ``fn`` stops the
    compile with a QuantizerError naming the layer (``__cause__`` is the
    exception). Registering a name again replaces it.
    """
    if not callable(fn):
        raise TypeError("fn must be callable")

    def dispatch(layer: str, weight: np.ndarray, hessian: Optional[np.ndarray],
                 x_mean: Optional[np.ndarray], rows: Optional[np.ndarray], bits: int,
                 group_size: int, symmetric: bool, act_order: bool):
        n, k = weight.shape
        scheme = Scheme(layer, n, k, bits, group_size, symmetric, act_order)
        stats = None
        if hessian is not None or x_mean is not None or rows is not None:
            stats = LayerStats(hessian, x_mean, rows)
        try:
            return _normalize(fn(weight, stats, scheme), scheme)
        except BaseException as e:
            _failures[name] = (layer, e)
            raise

    _ext.register_quantizer(name, dispatch)


def unregister_quantizer(name: str) -> bool:
    """Removes a registered quantizer; whether it was registered."""
    return _ext.unregister_quantizer(name)


def registered_quantizers() -> List[str]:
    """The names register_quantizer has registered, sorted."""
    return list(_ext.quantizer_names())


# --------------------------------------------------------------------------
# compile
# --------------------------------------------------------------------------

@dataclass
class Report:
    """What compile() did: the output directory and the per-layer errors.

    ``layers`` holds one dict per quantized layer, as quant-report.csv:
    layer, n, k, bits, group_size, symmetric, act_order, method,
    weight_rel_err (||W - Q||_F / ||W||_F) and output_rel_err (the same
    weighted by the calibration Hessian; NaN without statistics).
    """

    out_dir: str
    method: str
    layers: List[Dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    linears: int = 0
    calibrated_layers: int = 0
    report_path: str = ""
    hf_dir: str = ""
    tokenizer: Optional[str] = None

    def errors(self, kind: str = "output") -> np.ndarray:
        """The per-layer ``weight`` or ``output`` relative errors, in layer order;
        NaN where the pass did not measure one (the report's -1: the output
        error needs a Hessian, which RTN and AWQ without GPTQ do not read)."""
        if kind not in ("weight", "output"):
            raise ValueError("kind must be 'weight' or 'output'")
        e = np.array([l[f"{kind}_rel_err"] for l in self.layers], dtype=np.float64)
        e[e < 0] = np.nan
        return e

    def load(self, **kwargs: Any) -> "Model":
        """load(self.out_dir) with the tokenizer compile() was given."""
        kwargs.setdefault("tokenizer", self.tokenizer)
        return load(self.out_dir, **kwargs)

    def __str__(self) -> str:
        lines = [f"{self.method}: {len(self.layers)} layers -> {self.out_dir} ({self.seconds:.2f} s)"]
        if self.layers:
            width = max(len(l["layer"]) for l in self.layers)
            lines.append(f"{'layer':<{width}}  bits  group  weight_rel_err  output_rel_err")
            for l in self.layers:
                lines.append(f"{l['layer']:<{width}}  {l['bits']:>4}  {l['group_size']:>5}  "
                             f"{l['weight_rel_err']:>14.6e}  {l['output_rel_err']:>14.6e}")
        return "\n".join(lines)


def _read_report(path: str) -> List[Dict[str, Any]]:
    if not path or not os.path.exists(path):
        return []
    out = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out.append({
                "layer": row["layer"], "n": int(row["n"]), "k": int(row["k"]),
                "bits": int(row["bits"]), "group_size": int(row["group_size"]),
                "symmetric": row["symmetric"] == "1", "act_order": row["act_order"] == "1",
                "method": row["method"], "weight_rel_err": float(row["weight_rel_err"]),
                "output_rel_err": float(row["output_rel_err"]),
            })
    return out


# compile() keyword -> (CompileArgs field, converter)
_OPTIONS: Dict[str, Tuple[str, Callable[[Any], Any]]] = {
    "zero_point": ("zero_point", lambda v: -1 if v is None else int(bool(v))),
    "desc_act": ("desc_act", bool),
    "fake_quant": ("fake_quant", bool),
    "scale_dtype": ("scale_dtype", str),
    "skip": ("skip", lambda v: [v] if isinstance(v, str) else list(v)),
    "overrides": ("overrides", lambda v: [v] if isinstance(v, str) else list(v)),
    "damp_percent": ("damp_percent", float),
    "block_size": ("block_size", int),
    "static_groups": ("static_groups", bool),
    "true_sequential": ("true_sequential", bool),
    "awq_mode": ("awq_mode", str),
    "duo_scaling": ("duo_scaling", lambda v: ("true" if v else "false") if isinstance(v, bool) else str(v)),
    "clip": ("clip", bool),
    "n_grid": ("n_grid", int),
    "calib_samples": ("calib_samples", int),
    "seq_len": ("seq_len", int),
    "seed": ("seed", int),
    "targets": ("targets", lambda v: [v] if isinstance(v, str) else list(v)),
    "ptxas": ("ptxas", str),
    "format": ("format", lambda v: "" if v is None else str(v)),
    "force": ("force", bool),
}


def compile(model: Union[str, os.PathLike], method: str = "gptq", bits: int = 4,
            group_size: int = 128, calib_data: Union[None, str, os.PathLike, TokenIds] = None,
            tokenizer: Union[None, str, os.PathLike] = None, out: Union[None, str, os.PathLike] = None,
            *, quiet: bool = False, **options: Any) -> Report:
    """Imports, calibrates and quantizes an ONNX decoder into ``out`` (quant-compile).

    ``method``: "rtn", "gptq", "awq", "awq+gptq", "none" or a name given to
    register_quantizer. ``calib_data``: token ids (.npy, .jsonl, .txt of
    ids), a text file with ``tokenizer``, or an array of ids. ``out`` is
    written atomically (nothing is left on error; ``force=True`` replaces an
    existing directory). Further options, as quant-compile spells them:
    zero_point, desc_act, fake_quant, scale_dtype, skip, overrides,
    damp_percent, block_size, static_groups, true_sequential, awq_mode,
    duo_scaling, clip, n_grid, calib_samples (128), seq_len (2048), seed,
    targets (["sm_80"]), ptxas, format ("gptq", "gptq_v2", "awq",
    "compressed-tensors"), force. ``quiet=True`` silences the stage lines and
    progress bars. Raises Error with quant-compile's message on bad input.
    """
    if out is None:
        raise TypeError("compile() needs out= (the output directory)")
    args = _ext.CompileArgs()
    args.input = os.fspath(model)
    args.out_dir = os.fspath(out)
    args.method = str(method)
    args.bits = int(bits)
    args.group_size = int(group_size)
    args.quiet = bool(quiet)
    args.tokenizer = "" if tokenizer is None else os.fspath(tokenizer)
    for key, value in options.items():
        if key not in _OPTIONS:
            raise TypeError(f"compile() got an unknown option '{key}'; options: "
                            + ", ".join(sorted(_OPTIONS)))
        attr, convert = _OPTIONS[key]
        setattr(args, attr, convert(value))
    with tempfile.TemporaryDirectory(prefix="quant_mlir_") as tmp:
        if calib_data is not None and not isinstance(calib_data, (str, os.PathLike)):
            ids = np.asarray(calib_data)
            if ids.dtype.kind not in "iu":
                raise TypeError("calib_data must be a path or an array of token ids")
            path = os.path.join(tmp, "calib.npy")
            np.save(path, ids.astype(np.int64).reshape(-1))
            args.calib_data = path
        elif calib_data is not None:
            args.calib_data = os.fspath(calib_data)
        _failures.clear()
        try:
            result = _ext.compile(args, None if quiet else _log, None if quiet else _Bar())
        except Error as e:
            failure = _failures.pop(str(method), None)
            _failures.clear()
            if failure is not None:
                raise QuantizerError(str(e)) from failure[1]
            if str(method) in _ext.quantizer_names():
                raise QuantizerError(str(e)) from None
            raise
    return Report(out_dir=result["out_dir"], method=str(method),
                  layers=_read_report(result["report_path"]), seconds=result["seconds"],
                  linears=result["linears"], calibrated_layers=result["calibrated_layers"],
                  report_path=result["report_path"], hf_dir=result["hf_dir"],
                  tokenizer=args.tokenizer or None)


def load_tokens(path: Union[str, os.PathLike], tokenizer: Union[None, str, os.PathLike] = None) -> np.ndarray:
    """Token ids of a data file as quant-run reads --eval-data / --calib-data (int64)."""
    return _ext.load_tokens(os.fspath(path), "" if tokenizer is None else os.fspath(tokenizer))


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------

class Model:
    """A model directory loaded for the CPU (quant-run's engine).

    The scoring entry and the decoder are JIT-compiled on first use and
    kept. Create with quant_mlir.load().
    """

    def __init__(self, handle: Any, tokenizer: Optional[str]) -> None:
        self._m = handle
        self.tokenizer = tokenizer

    @property
    def dir(self) -> str:
        return self._m.dir

    @property
    def vocab_size(self) -> int:
        """The vocabulary of the logits (compiles the scoring entry)."""
        return self._m.vocab_size()

    def encode(self, text: str, add_bos: bool = True) -> np.ndarray:
        """``text`` through the model's tokenizer (BOS first), as int64 ids."""
        return np.asarray(self._m.encode(text, add_bos), dtype=np.int64)

    def decode(self, ids: TokenIds) -> str:
        """The text of ``ids`` (special tokens dropped)."""
        return self._m.decode([int(i) for i in np.asarray(ids).reshape(-1)])

    def _ids(self, data: Union[str, TokenIds]) -> List[int]:
        if isinstance(data, str):
            return [int(i) for i in self._m.encode(data, True)]
        a = np.asarray(data)
        if a.dtype.kind not in "iu":
            raise TypeError("expected text or integer token ids, got dtype " + str(a.dtype))
        return a.astype(np.int64).reshape(-1).tolist()

    def evaluate(self, data: Union[str, TokenIds], seq_len: int = 512, max_windows: int = 0,
                 quiet: bool = False) -> Dict[str, float]:
        """Perplexity and timings over consecutive windows of ``seq_len`` tokens.

        ``data`` is text (encoded with a BOS, like a text file given to
        quant-run) or token ids. Returns quant-run --json's fields: windows,
        predicted_tokens, seq_len, mean_nll, perplexity, tokens_per_second,
        compile_seconds, eval_seconds.
        """
        return self._m.perplexity(self._ids(data), int(seq_len), int(max_windows), bool(quiet),
                                  None if quiet else _Bar())

    def perplexity(self, data: Union[str, TokenIds], seq_len: int = 512, max_windows: int = 0,
                   quiet: bool = False) -> float:
        """exp(mean NLL) over windows of ``seq_len`` tokens (quant-run --eval-data)."""
        return self.evaluate(data, seq_len, max_windows, quiet)["perplexity"]

    def logits(self, ids: TokenIds) -> np.ndarray:
        """float32 logits of ``ids``: [seq, vocab] for 1-D ids, [batch, seq, vocab] for 2-D."""
        a = np.asarray(ids)
        if a.dtype.kind not in "iu":
            raise TypeError("ids must be integers, got dtype " + str(a.dtype))
        if a.ndim == 1:
            return self._m.logits(a.astype(np.int64).reshape(1, -1))[0]
        if a.ndim == 2:
            return self._m.logits(a.astype(np.int64))
        raise ValueError(f"ids must be 1-D or 2-D, got shape {a.shape}")

    def generate(self, prompt: Union[str, TokenIds], max_new_tokens: int = 64, *,
                 temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0, seed: int = 0,
                 max_seq_len: int = 512, kv_cache: str = "auto", add_bos: bool = True,
                 stop_at_eos: bool = True, stream: Optional[Callable[[int], None]] = None,
                 details: bool = False) -> Any:
        """Generates up to ``max_new_tokens`` after ``prompt`` (quant-run --prompt).

        A text prompt (BOS first unless ``add_bos=False``) returns the
        generated text; token ids return the generated ids. ``temperature``
        0 is greedy; top_k / top_p / seed as quant-run. ``kv_cache``: auto,
        recompute, past or derived. ``stream`` is called with each token id
        as it is chosen. ``details=True`` returns a dict (ids, text, stop,
        kv_cache, time_to_first_token_s, token_seconds).
        """
        if isinstance(prompt, str):
            ids = [int(i) for i in self._m.encode(prompt, add_bos)]
        else:
            ids = self._ids(prompt)
        opts = {"max_new_tokens": int(max_new_tokens), "temperature": float(temperature),
                "top_p": float(top_p), "top_k": int(top_k), "seed": int(seed),
                "max_seq_len": int(max_seq_len), "kv_cache": str(kv_cache),
                "stop_at_eos": bool(stop_at_eos)}
        r = self._m.generate(ids, opts, stream)
        if details:
            return r
        return r["text"] if isinstance(prompt, str) else r["ids"]

    def __repr__(self) -> str:
        return f"quant_mlir.Model({self.dir!r})"


def load(dir: Union[str, os.PathLike], tokenizer: Union[None, str, os.PathLike] = None,
         func: str = "") -> Model:
    """Loads a model directory written by compile() / quant-compile / quant-import.

    ``tokenizer`` (sentencepiece .model or llama2.c .bin) enables text input
    and output; ``func`` names the entry (default: the only public one).
    """
    tok = None if tokenizer is None else os.fspath(tokenizer)
    return Model(_ext.Model.load(os.fspath(dir), tok or "", func), tok)


# --------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------

class Stats:
    """A calibration statistics archive (stats.safetensors), mmapped.

    ``Stats(dir)`` opens ``dir/stats.safetensors`` (or a file path; a
    sharded archive through its ``.index.json``, which stands in for the
    file of that name when only the index exists). The
    arrays are read-only numpy views of the mapping, not copies; each keeps
    the mapping alive through its ``base``.
    """

    def __init__(self, path: Union[str, os.PathLike]) -> None:
        p = os.fspath(path)
        if os.path.isdir(p):
            p = os.path.join(p, "stats.safetensors")
        self._s = _ext.Stats.open(p)
        self.path = self._s.path
        self.layers: List[str] = list(self._s.layers())

    @property
    def metadata(self) -> Dict[str, str]:
        return dict(self._s.metadata())

    def _get(self, layer: str, suffix: str) -> Optional[np.ndarray]:
        if layer not in self.layers:
            raise KeyError(f"no statistics for layer '{layer}' in '{self.path}'")
        return self._s.tensor(layer + suffix)

    def hessian(self, layer: str) -> np.ndarray:
        """float64 [K, K]: H = 2/n sum x x^T."""
        return self._get(layer, ".hessian")

    def x_mean(self, layer: str) -> np.ndarray:
        """float32 [K]: mean |x| per input channel."""
        return self._get(layer, ".absmean")

    def rows(self, layer: str) -> Optional[np.ndarray]:
        """float32 [rows, K]: the sampled input rows (None if none were kept)."""
        return self._get(layer, ".inputs")

    def __getitem__(self, layer: str) -> LayerStats:
        return LayerStats(self.hessian(layer), self.x_mean(layer), self.rows(layer))

    def __contains__(self, layer: object) -> bool:
        return layer in self.layers

    def __iter__(self) -> Iterator[str]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self) -> str:
        return f"quant_mlir.Stats({self.path!r}, {len(self.layers)} layers)"
