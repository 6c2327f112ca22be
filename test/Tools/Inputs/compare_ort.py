"""Compares quant-run's logits (or perplexity) with onnxruntime-node's.

  compare_ort.py logits MODEL_DIR ONNX_DIR QUANT_RUN --tol 1e-3
      runs row 0 of ONNX_DIR/reference.npz's input_ids through quant-run
      (--dump-logits) and through onnxruntime on the same ids; prints the max
      |diff| and PASS when it is within --tol.
  compare_ort.py ppl MODEL_DIR ONNX_DIR QUANT_RUN IDS.npy SEQ_LEN --tol 1e-3
      perplexity over non-overlapping windows: quant-run's number against one
      computed here (float64) from onnxruntime's logits; PASS when the
      relative difference is within --tol.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
ORT = os.path.join(ROOT, "python", "quant_mlir", "ort_run.js")


def ort_logits(onnx_dir, ids, tmp):
    path = os.path.join(tmp, "ids.npy")
    np.save(path, ids.astype(np.int64).reshape(1, -1))
    out = os.path.join(tmp, "ort.npy")
    subprocess.run(["node", ORT, os.path.join(onnx_dir, "model.onnx"), path, out], check=True)
    return np.load(out)[0].astype(np.float64)


def nll(logits, ids):
    m = logits.max(-1, keepdims=True)
    logz = np.log(np.exp(logits - m).sum(-1)) + m[:, 0]
    return logz[:-1] - logits[np.arange(len(ids) - 1), ids[1:]]


p = argparse.ArgumentParser()
p.add_argument("mode", choices=["logits", "ppl"])
p.add_argument("model_dir")
p.add_argument("onnx_dir")
p.add_argument("quant_run")
p.add_argument("rest", nargs="*")
p.add_argument("--tol", type=float, default=1e-3)
a = p.parse_args()

with tempfile.TemporaryDirectory() as tmp:
    if a.mode == "logits":
        ids = np.load(os.path.join(a.onnx_dir, "reference.npz"))["input_ids"][0]
        np.save(os.path.join(tmp, "q.npy"), ids)
        subprocess.run([a.quant_run, a.model_dir, "--eval-data", os.path.join(tmp, "q.npy"),
                        "--dump-logits", os.path.join(tmp, "ours.npy")], check=True)
        ours = np.load(os.path.join(tmp, "ours.npy"))[0].astype(np.float64)
        ref = ort_logits(a.onnx_dir, ids, tmp)
        diff = np.abs(ours - ref).max()
        print(f"max |diff| = {diff:.3e} over {ref.size} logits (max |logit| {np.abs(ref).max():.2f})")
        print("PASS" if diff <= a.tol else "FAIL")
    else:
        ids_path, seq = a.rest[0], int(a.rest[1])
        ids = np.load(ids_path).astype(np.int64).reshape(-1)
        out = subprocess.run([a.quant_run, a.model_dir, "--eval-data", ids_path, "--seq-len", str(seq),
                              "--json", "--quiet"], check=True, capture_output=True, text=True).stdout
        ours = json.loads(out)["perplexity"]
        total = []
        for w in range(len(ids) // seq):
            win = ids[w * seq:(w + 1) * seq]
            total.append(nll(ort_logits(a.onnx_dir, win, tmp), win))
        ref = float(np.exp(np.concatenate(total).mean()))
        rel = abs(ours - ref) / ref
        print(f"perplexity quant-run {ours:.6f} onnxruntime {ref:.6f} rel. diff {rel:.2e}")
        print("PASS" if rel <= a.tol else "FAIL")
sys.exit(0)
