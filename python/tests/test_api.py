"""Every call of the quant_mlir API on a small generated Llama, checked
against torch (logits), numpy (NLL, greedy decoding, the safetensors bytes)
and the command-line tools (which the API must agree with exactly)."""

from __future__ import annotations

import gc
import json
import os

import numpy as np
import pytest

import quant_mlir
from conftest import run_tool
from quant_mlir import safetensors_io  # the independent numpy reader


def test_compile_report(gptq, llama):
    assert os.path.isdir(gptq.out_dir)
    # The statistics stay in their per-block shards, under an index.
    assert sorted(os.listdir(gptq.out_dir)) == ["model.mlir", "model.safetensors",
                                               "quant-report.csv"] + [
        f"stats-0000{i}-of-00003.safetensors" for i in (1, 2, 3)] + [
        "stats.safetensors.index.json"]
    assert gptq.linears == 15 and gptq.calibrated_layers == 15
    assert len(gptq.layers) == 14
    first = gptq.layers[0]
    assert first["layer"] == "model.layers.0.self_attn.q_proj"
    assert (first["n"], first["k"], first["bits"], first["group_size"]) == (64, 64, 4, 32)
    assert first["method"] == "gptq"
    errs = gptq.errors("output")
    assert errs.shape == (14,) and np.all((errs > 0) & (errs < 0.5))
    assert "model.layers.1.mlp.down_proj" in str(gptq)


def test_logits_match_torch(llama, work):
    quant_mlir.compile(llama, method="none", out=work / "float", quiet=True)
    m = quant_mlir.load(work / "float")
    ref = np.load(llama.parent / "reference.npz")
    got = m.logits(ref["input_ids"])
    assert got.shape == ref["logits"].shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref["logits"], atol=1e-4, rtol=1e-4)
    one = m.logits(ref["input_ids"][1])
    np.testing.assert_allclose(one, got[1], atol=1e-5)
    assert m.vocab_size == 128


def test_perplexity_matches_numpy_and_quant_run(gptq, gptq_model, ids):
    tokens = np.load(ids)
    r = gptq_model.evaluate(tokens, seq_len=64, max_windows=3, quiet=True)
    assert r["windows"] == 3 and r["predicted_tokens"] == 3 * 63
    # numpy log-softmax over the same windows' logits.
    windows = tokens[:3 * 64].reshape(3, 64)
    logits = gptq_model.logits(windows).astype(np.float64)
    logz = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
    nll = logz[:, :-1] - np.take_along_axis(logits[:, :-1], windows[:, 1:, None], -1)[..., 0]
    assert r["mean_nll"] == pytest.approx(nll.mean(), rel=1e-9)
    tool = json.loads(run_tool("quant-run", gptq.out_dir, "--eval-data", str(ids), "--seq-len", "64",
                               "--max-windows", "3", "--json", "--quiet"))
    assert r["perplexity"] == tool["perplexity"]
    assert gptq_model.perplexity(list(tokens[:200]), seq_len=64, quiet=True) > 1


def test_generate_greedy(gptq, gptq_model):
    prompt = [1, 5, 9, 17]
    out = gptq_model.generate(prompt, max_new_tokens=6)
    assert out.dtype == np.int64 and out.shape == (6,)
    # Greedy: each token is the argmax of the full-sequence logits so far.
    seq = list(prompt)
    for t in out:
        assert int(t) == int(np.argmax(gptq_model.logits(seq)[-1]))
        seq.append(int(t))
    tool = json.loads(run_tool("quant-run", gptq.out_dir, "--prompt-ids", "1,5,9,17",
                               "--max-new-tokens", "6", "--json"))
    assert tool["results"][0]["ids"] == out.tolist()
    streamed = []
    d = gptq_model.generate(prompt, max_new_tokens=3, temperature=0.8, seed=3,
                            stream=streamed.append, details=True)
    assert streamed == d["ids"].tolist() and d["stop"] == "max_new_tokens"


def test_text_io(text_model, tokenizer, work):
    text = "ROMEO:\nBut soft, what light through yonder window breaks?\n"
    ids = text_model.encode(text)
    assert ids.dtype == np.int64 and ids[0] == 1  # BOS
    assert "yonder window" in text_model.decode(ids)
    path = work / "text.txt"
    path.write_text(text * 20)
    from_file = quant_mlir.load_tokens(path, tokenizer)
    np.testing.assert_array_equal(from_file, text_model.encode(text * 20))
    # Text is scored as its ids (one BOS), exactly.
    ppl = text_model.perplexity(text * 20, seq_len=32, quiet=True)
    assert ppl == text_model.perplexity(from_file, seq_len=32, quiet=True)
    out = text_model.generate("ROMEO:", max_new_tokens=5, stop_at_eos=False, details=True)
    prompt = text_model.encode("ROMEO:")
    head = text_model.decode(prompt)
    whole = text_model.decode(np.concatenate([prompt, out["ids"]]))
    assert len(out["ids"]) == 5 and whole.startswith(head) and out["text"] == whole[len(head):]
    assert text_model.generate("ROMEO:", max_new_tokens=5, stop_at_eos=False) == out["text"]


def test_stats_are_views(gptq):
    s = quant_mlir.Stats(gptq.out_dir)
    assert len(s) == 15 and "model.layers.0.mlp.up_proj" in s and "lm_head" in s
    assert s.path.endswith("stats.safetensors.index.json")
    ref = safetensors_io.load_archive(os.path.join(gptq.out_dir, "stats.safetensors"))
    layer = "model.layers.1.mlp.down_proj"
    h = s.hessian(layer)
    assert h.dtype == np.float64 and h.shape == (128, 128)
    np.testing.assert_array_equal(h, ref[layer + ".hessian"])
    np.testing.assert_array_equal(s.x_mean(layer), ref[layer + ".absmean"])
    rows = s.rows(layer)
    assert rows.dtype == np.float32 and rows.shape[1] == 128
    # H is symmetric positive semi-definite; no copy was made.
    np.testing.assert_allclose(h, h.T)
    assert np.linalg.eigvalsh(h).min() > -1e-8 * np.abs(h).max()
    assert not h.flags.owndata and not h.flags.writeable
    with pytest.raises(ValueError):
        h[0, 0] = 1.0
    st = s[layer]
    assert st.x_mean.shape == (128,)
    del s, st
    gc.collect()
    assert float(h.sum()) == float(ref[layer + ".hessian"].sum())  # the mapping is still alive
    with pytest.raises(KeyError, match="no statistics for layer 'nope'"):
        quant_mlir.Stats(gptq.out_dir).hessian("nope")


def test_quiet_and_progress(llama, work, capfd):
    rtn = quant_mlir.compile(llama, method="rtn", group_size=32, out=work / "rtn-quiet", quiet=True)
    assert capfd.readouterr().err == ""
    # RTN reads no Hessian: its output errors are not measured (NaN, not -1).
    assert np.isnan(rtn.errors("output")).all() and np.all(rtn.errors("weight") > 0)
    quant_mlir.compile(llama, method="rtn", group_size=32, out=work / "rtn-loud")
    err = capfd.readouterr().err
    assert "[1/3] imported 15 linear layers" in err and "[3/3] rtn 4-bit" in err
    assert "wq-rtn [" in err  # the pass's progress bar, drawn through Python


def test_errors(llama, ids, work):
    with pytest.raises(quant_mlir.Error, match="method must be rtn, gptq, awq, awq\\+gptq, none or a "
                                               "registered quantizer.*got 'gtpq'"):
        quant_mlir.compile(llama, method="gtpq", out=work / "e1", quiet=True)
    with pytest.raises(quant_mlir.Error, match="--method gptq needs --calib-data"):
        quant_mlir.compile(llama, method="gptq", out=work / "e2", quiet=True)
    with pytest.raises(quant_mlir.Error, match="bits must be 2, 3, 4 or 8, got 5"):
        quant_mlir.compile(llama, method="rtn", bits=5, out=work / "e3", quiet=True)
    with pytest.raises(quant_mlir.Error, match="exists; pass --force"):
        quant_mlir.compile(llama, method="rtn", out=work / "gptq", quiet=True)
    with pytest.raises(quant_mlir.Error, match="nope.onnx"):
        quant_mlir.compile(work / "nope.onnx", method="rtn", out=work / "e4", quiet=True)
    with pytest.raises(TypeError, match="unknown option 'group'"):
        quant_mlir.compile(llama, method="rtn", group=3, out=work / "e5")
    assert not any((work / f"e{i}").exists() for i in range(1, 6))
    with pytest.raises(quant_mlir.Error, match="model.mlir"):
        quant_mlir.load(work / "missing")
    m = quant_mlir.load(work / "gptq")
    with pytest.raises(quant_mlir.Error, match="token #2 is 500, outside the model's vocabulary"):
        m.logits([1, 2, 500])
    with pytest.raises(quant_mlir.Error, match="needs a tokenizer"):
        m.generate("hello")
    with pytest.raises(quant_mlir.Error, match="fewer than one window"):
        m.perplexity([1, 2, 3], seq_len=64)
    with pytest.raises(quant_mlir.Error, match="kv_cache must be"):
        m.generate([1, 2], kv_cache="fast")
    with pytest.raises(quant_mlir.Error, match="cannot open|No such file|not"):
        quant_mlir.Stats(work / "missing")
