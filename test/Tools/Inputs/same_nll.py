"""Compares the mean NLL of two quant-run --json results (whole model vs
--blockwise): prints both and PASS when they agree to rel. 1e-9."""
import json
import sys

a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a["mode"] == "whole model" and b["mode"] == "blockwise", (a["mode"], b["mode"])
assert a["predicted_tokens"] == b["predicted_tokens"]
rel = abs(a["mean_nll"] - b["mean_nll"]) / abs(a["mean_nll"])
print(f"whole {a['mean_nll']:.12f} blockwise {b['mean_nll']:.12f} rel. diff {rel:.3e}")
print("PASS" if rel <= 1e-9 else "FAIL")
