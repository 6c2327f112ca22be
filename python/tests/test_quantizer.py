"""register_quantizer: RTN re-implemented in float64 numpy from the GPTQ
reference's Quantizer.find_params must give byte-identical archives to
method="rtn"; errors in the user's function come back naming the layer."""

from __future__ import annotations

import filecmp
import os

import numpy as np
import pytest

import quant_mlir


def numpy_rtn(weight, stats, scheme):
    """find_params (perchannel) per row and group; scale stored in float32."""
    n, k = weight.shape
    g = scheme.num_groups
    gs = k // g
    maxq = scheme.max_code
    w = weight.astype(np.float64).reshape(n, g, gs)
    xmin = np.minimum(w.min(axis=2), 0.0)
    xmax = np.maximum(w.max(axis=2), 0.0)
    if scheme.symmetric:
        xmax = np.maximum(np.abs(xmin), xmax)
        xmin = np.where(xmin < 0, -xmax, xmin)
    both = (xmin == 0) & (xmax == 0)
    xmin[both], xmax[both] = -1.0, 1.0
    scale = (xmax - xmin) / maxq
    if scheme.symmetric:
        zero = np.full_like(scale, (maxq + 1) // 2)
    else:
        zero = np.round(-xmin / scale)  # ties to even, like nearbyint
    s32 = scale.astype(np.float32)
    s32[s32 == 0] = np.finfo(np.float32).smallest_subnormal
    q = np.clip(np.round(w / s32.astype(np.float64)[..., None]) + zero[..., None], 0, maxq)
    return q.reshape(n, k), s32, zero.astype(np.int32), None


@pytest.fixture(autouse=True)
def _clean():
    yield
    for name in quant_mlir.registered_quantizers():
        quant_mlir.unregister_quantizer(name)


@pytest.mark.parametrize("zero_point,group_size", [(False, 32), (True, -1)])
def test_numpy_rtn_equals_rtn(llama, work, zero_point, group_size):
    quant_mlir.register_quantizer("numpy_rtn", numpy_rtn)
    assert quant_mlir.registered_quantizers() == ["numpy_rtn"]
    tag = f"{int(zero_point)}{group_size}"
    ref = quant_mlir.compile(llama, method="rtn", group_size=group_size, zero_point=zero_point,
                             out=work / f"rtn{tag}", quiet=True)
    got = quant_mlir.compile(llama, method="numpy_rtn", group_size=group_size,
                             zero_point=zero_point, out=work / f"np{tag}", quiet=True)
    assert filecmp.cmp(os.path.join(ref.out_dir, "model.safetensors"),
                       os.path.join(got.out_dir, "model.safetensors"), shallow=False)
    assert filecmp.cmp(os.path.join(ref.out_dir, "model.mlir"),
                       os.path.join(got.out_dir, "model.mlir"), shallow=False)
    assert [l["method"] for l in got.layers] == ["numpy_rtn"] * 14
    np.testing.assert_array_equal(got.errors("weight"), ref.errors("weight"))


def test_quantizer_sees_stats_and_runs_end_to_end(llama, ids, work):
    seen = {}

    def capture(weight, stats, scheme):
        seen[scheme.layer] = (stats.hessian.copy(), scheme)
        return numpy_rtn(weight, stats, scheme)

    quant_mlir.register_quantizer("capture", capture)
    report = quant_mlir.compile(llama, method="capture", bits=8, group_size=64, calib_data=ids,
                                out=work / "capture", calib_samples=4, seq_len=64, quiet=True)
    stats = quant_mlir.Stats(report.out_dir)
    h, scheme = seen["model.layers.0.mlp.gate_proj"]
    np.testing.assert_array_equal(h, stats.hessian("model.layers.0.mlp.gate_proj"))
    assert (scheme.n, scheme.k, scheme.bits, scheme.group_size, scheme.symmetric) == (128, 64, 8, 64, True)
    assert np.all(np.isfinite(report.errors("output")))  # measured with the Hessian
    m = report.load()
    assert 1 < m.perplexity(np.load(ids), seq_len=64, max_windows=2, quiet=True) < 1000


def test_quantizer_errors_name_the_layer(llama, work):
    def boom(weight, stats, scheme):
        if scheme.layer.endswith("layers.1.self_attn.v_proj"):
            raise ZeroDivisionError("my bug")
        return numpy_rtn(weight, stats, scheme)

    quant_mlir.register_quantizer("boom", boom)
    with pytest.raises(quant_mlir.QuantizerError,
                       match="layer 'model.layers.1.self_attn.v_proj': quantizer 'boom' failed: "
                             "ZeroDivisionError: my bug") as info:
        quant_mlir.compile(llama, method="boom", group_size=32, out=work / "boom", quiet=True)
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert not (work / "boom").exists()

    quant_mlir.register_quantizer("shape", lambda w, s, sc: (np.zeros((sc.n, sc.k + 1)), None, None, None))
    with pytest.raises(quant_mlir.QuantizerError, match="layer 'model.layers.0.self_attn.q_proj': quantizer "
                                                        "'shape' failed: ValueError: codes has shape "
                                                        "\\(64, 65\\), expected \\(64, 64\\)"):
        quant_mlir.compile(llama, method="shape", group_size=32, out=work / "shape", quiet=True)

    def too_big(w, s, sc):
        q, scales, zeros, g = numpy_rtn(w, s, sc)
        return q + 16, scales, zeros, g

    quant_mlir.register_quantizer("too_big", too_big)
    with pytest.raises(quant_mlir.QuantizerError, match="codes must lie in \\[0, 15\\]"):
        quant_mlir.compile(llama, method="too_big", group_size=32, out=work / "too_big", quiet=True)

    def bad_zeros(w, s, sc):
        q, scales, zeros, g = numpy_rtn(w, s, sc)
        return q, scales, zeros + 1, g

    quant_mlir.register_quantizer("bad_zeros", bad_zeros)
    with pytest.raises(quant_mlir.QuantizerError, match="symmetric scheme stores none"):
        quant_mlir.compile(llama, method="bad_zeros", group_size=32, out=work / "bad_zeros", quiet=True)

    with pytest.raises(quant_mlir.Error, match="'rtn' is a built-in method"):
        quant_mlir.register_quantizer("rtn", numpy_rtn)
    with pytest.raises(quant_mlir.Error, match="must be non-empty"):
        quant_mlir.register_quantizer("a b", numpy_rtn)
