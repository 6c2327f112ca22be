# quant-run's perplexity on a tiny hand-written LM equals a float64 numpy
# computation of the same definition (mean NLL over every predicted token of
# non-overlapping windows); bad data gives clear errors and a non-zero exit.
# RUN: rm -rf %t && mkdir -p %t
# RUN: %python %s %t %src_root prepare
# RUN: quant-run %t/model --eval-data %t/ids.npy --seq-len 8 --json --quiet > %t/out.json
# RUN: %python %s %t %src_root check
# RUN: quant-run %t/model --eval-data %t/ids.txt --seq-len 8 --json --quiet > %t/out.json
# RUN: %python %s %t %src_root check
# RUN: quant-run %t/model --eval-data %t/ids.jsonl --seq-len 8 --json --quiet > %t/out.json
# RUN: %python %s %t %src_root check
# RUN: quant-run %t/model --eval-data %t/ids.npy --seq-len 8 --max-windows 2 --quiet | FileCheck %s --check-prefix=TABLE
# TABLE: windows 2 x 8 tokens (14 predicted)
# TABLE: perplexity
# TABLE: tokens/s
# TABLE: peak RSS
# RUN: not quant-run %t/model --eval-data %t/empty.txt --seq-len 8 2>&1 | FileCheck %s --check-prefix=EMPTY
# EMPTY: quant-run: error: '{{.*}}empty.txt' holds no tokens
# RUN: not quant-run %t/model --eval-data %t/oov.txt --seq-len 8 2>&1 | FileCheck %s --check-prefix=OOV
# OOV: token #3 is 16, outside the model's vocabulary [0, 16)
# RUN: not quant-run %t/model --eval-data %t/short.txt --seq-len 8 2>&1 | FileCheck %s --check-prefix=SHORT
# SHORT: holds 5 tokens, fewer than one window of --seq-len 8
# RUN: not quant-run %t/model --eval-data %t/bad.npy --seq-len 8 2>&1 | FileCheck %s --check-prefix=BADNPY
# BADNPY: is not a .npy file (bad magic)
# RUN: not quant-run %t/model --eval-data %t/float.npy --seq-len 8 2>&1 | FileCheck %s --check-prefix=FLOATNPY
# FLOATNPY: unsupported .npy dtype '<f4' (token ids must be integers)
# RUN: not quant-run %t/model --eval-data %t/text.txt --seq-len 8 2>&1 | FileCheck %s --check-prefix=TEXT
# TEXT: holds text, which needs a tokenizer (--tokenizer)
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "Inputs"))
import tiny_lm  # noqa: E402

tmp, src, mode = sys.argv[1:4]
sys.path.insert(0, os.path.join(src, "python"))
from quant_mlir import safetensors_io  # noqa: E402

V, D = 16, 8
MODEL = """module attributes {wq.archive = "model.safetensors"} {
  func.func @forward(%ids: tensor<?x?xi64>) -> tensor<?x?x16xf32> {
""" + tiny_lm.embedding(V, D) + """    %t = math.tanh %h : tensor<?x?x8xf32>
    %w = wq.weight "lm_head.weight" : tensor<16x8xf32>
    %bias = wq.weight "lm_head.bias" : tensor<16xf32>
    %logits = wq.linear %t, %w bias %bias {name = "lm_head"} : tensor<?x?x8xf32>, tensor<16x8xf32>, tensor<16xf32> -> tensor<?x?x16xf32>
    return %logits : tensor<?x?x16xf32>
  }
}
"""

rng = np.random.default_rng(7)
if mode == "prepare":
    os.makedirs(os.path.join(tmp, "model"), exist_ok=True)
    open(os.path.join(tmp, "model", "model.mlir"), "w").write(MODEL)
    weights = {"model.embed_tokens.weight": rng.standard_normal((V, D)).astype(np.float32),
               "lm_head.weight": rng.standard_normal((V, D)).astype(np.float32),
               "lm_head.bias": rng.standard_normal(V).astype(np.float32)}
    safetensors_io.save(os.path.join(tmp, "model", "model.safetensors"), weights)
    ids = rng.integers(0, V, size=43)  # 5 windows of 8 and 3 left over
    np.save(os.path.join(tmp, "ids.npy"), ids.astype(np.int32))
    np.save(os.path.join(tmp, "float.npy"), ids.astype(np.float32))
    open(os.path.join(tmp, "ids.txt"), "w").write("\n".join(" ".join(map(str, ids[i:i + 10])) for i in range(0, 43, 10)))
    open(os.path.join(tmp, "ids.jsonl"), "w").write(json.dumps(ids[:20].tolist()) + "\n" +
                                                    json.dumps({"input_ids": ids[20:].tolist()}) + "\n")
    open(os.path.join(tmp, "empty.txt"), "w").write("")
    open(os.path.join(tmp, "oov.txt"), "w").write("1 2 3 16 4 5 6 7 8 9")
    open(os.path.join(tmp, "short.txt"), "w").write("1 2 3 4 5")
    open(os.path.join(tmp, "bad.npy"), "wb").write(b"not an npy file at all")
    open(os.path.join(tmp, "text.txt"), "w").write("Once upon a time")
    np.save(os.path.join(tmp, "weights.npy"), np.zeros(1))
    safetensors_io.save(os.path.join(tmp, "ref.safetensors"), weights)
else:
    w = safetensors_io.load(os.path.join(tmp, "ref.safetensors"))
    ids = np.load(os.path.join(tmp, "ids.npy")).astype(np.int64)
    nll, count = 0.0, 0
    for start in range(0, len(ids) - len(ids) % 8, 8):
        win = ids[start:start + 8]
        h = np.tanh(w["model.embed_tokens.weight"].astype(np.float64)[win])
        logits = h @ w["lm_head.weight"].astype(np.float64).T + w["lm_head.bias"]
        logz = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
        nll += float((logz[:-1] - logits[np.arange(7), win[1:]]).sum())
        count += 7
    got = json.load(open(os.path.join(tmp, "out.json")))
    ref_ppl = np.exp(nll / count)
    assert got["predicted_tokens"] == count, got
    rel = abs(got["perplexity"] - ref_ppl) / ref_ppl
    assert rel < 1e-5, f"perplexity {got['perplexity']} vs float64 {ref_ppl} (rel {rel})"
    assert got["windows"] == 5 and got["peak_rss_mib"] > 0 and got["tokens_per_second"] > 0, got
