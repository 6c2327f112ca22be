# quant-layer's RTN and GPTQ against the independent float64 numpy reference
# (python/quant_mlir/gptq_ref.py) over random layers: every bit width, groups
# and per-channel, symmetric and zero-point, act-order with and without static
# groups, K not a multiple of the block size, correlated and dead input
# channels. Codes must be equal except for rounding ties (|diff| = 1 where the
# reference's x / scale is within 1e-6 of .5, at most 0.1% of the codes),
# scales equal to rtol 1e-5, zeros and g_idx equal, packed words equal to
# packing.py's, and GPTQ's output error |XW^T - XW'^T| on the calibration X
# below RTN's in every case.
# RUN: rm -rf %t && mkdir -p %t
# RUN: %python %s --quant-layer quant-layer --src %src_root --tmp %t | FileCheck %s
# CHECK: all {{[0-9]+}} cases match: {{[0-9]+}} codes, {{[0-9]+}} rounding ties
import argparse
import itertools
import os
import subprocess
import sys

import numpy as np

p = argparse.ArgumentParser()
p.add_argument("--quant-layer", required=True)
p.add_argument("--src", required=True)
p.add_argument("--tmp", required=True)
p.add_argument("--cases", type=int, default=0, help="run only the first N cases")
args = p.parse_args()
sys.path.insert(0, os.path.join(args.src, "python"))
from quant_mlir import gptq_ref, packing, safetensors_io  # noqa: E402

TIE_WINDOW = 1e-6
MAX_TIE_FRACTION = 1e-3


def make_cases():
    """(bits, group, sym, act_order, static, n, k, block, damp, dead) tuples:
    a fixed grid over every option, shapes varied deterministically."""
    shapes = [(32, 96, 128), (64, 192, 128), (32, 320, 128), (64, 160, 64),
              (32, 256, 100), (64, 224, 96)]
    cases = []
    i = 0
    for bits, group, sym, order in itertools.product(
            [2, 3, 4, 8], [32, 64, -1], [True, False],
            ["none", "act", "act+static"]):
        n, k, block = shapes[i % len(shapes)]
        if group != -1 and k % group:
            k = (k // group + 1) * group
        i += 1
        # Thin the full product (72) to about half, keeping every value of
        # every option present (the pattern below hits each combination of
        # two options).
        if (bits + (group if group > 0 else 16) // 32 + sym + len(order)) % 2:
            continue
        cases.append(dict(bits=bits, group=group, sym=sym,
                          act=order != "none", static=order == "act+static",
                          n=n, k=k, block=block, damp=0.01, dead=(i // 3) % 2 == 1))
    # Static groups without act-order, a 256 group, a larger damp.
    cases.append(dict(bits=4, group=64, sym=False, act=False, static=True,
                      n=32, k=192, block=128, damp=0.01, dead=True))
    cases.append(dict(bits=3, group=256, sym=False, act=True, static=False,
                      n=32, k=512, block=128, damp=0.1, dead=False))
    cases.append(dict(bits=2, group=128, sym=True, act=True, static=False,
                      n=64, k=384, block=160, damp=0.05, dead=True))
    return cases


def calibration(rng, k, dead):
    """X [2k, k] with correlated channels (every third follows its left
    neighbour), varied channel scales, and a few dead (all-zero) channels."""
    x = rng.standard_normal((2 * k, k))
    j = np.arange(1, k, 3)
    x[:, j] = 0.9 * x[:, j - 1] + 0.1 * x[:, j]
    x *= rng.uniform(0.2, 3.0, size=k)
    if dead:
        x[:, rng.choice(k, size=3, replace=False)] = 0.0
    return x


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)}\n{r.stderr}")


def check_packed(out, bits, k, n):
    assert np.array_equal(out["qweight"], packing.pack_stream(out["q"], bits, axis=0)), "qweight"
    assert np.array_equal(out["qzeros"], packing.pack_stream(out["zeros"], bits, axis=1)), "qzeros"
    assert out["qweight"].shape == (k * bits // 32, n)


def out_error(x, w, r, bits, group):
    wq = gptq_ref.dequantize_result(r, bits, group)
    return np.linalg.norm(x @ w.T - x @ wq.T)


def main():
    cases = make_cases()
    if args.cases:
        cases = cases[:args.cases]
    total_codes = total_ties = 0
    failures = []
    for idx, c in enumerate(cases):
        rng = np.random.default_rng(1000 + idx)
        n, k, bits, group = c["n"], c["k"], c["bits"], c["group"]
        w = rng.standard_normal((n, k)).astype(np.float32)
        x = calibration(rng, k, c["dead"])
        h = x.T @ x
        h = 0.5 * (h + h.T)
        inp = os.path.join(args.tmp, f"in{idx}.safetensors")
        safetensors_io.save(inp, {"layer.weight": w, "layer.hessian": h})
        flags = ["--bits", str(bits), "--group-size", str(group),
                 "--block-size", str(c["block"]), "--damp-percent", str(c["damp"])]
        if not c["sym"]:
            flags.append("--zero-point")
        if c["act"]:
            flags.append("--desc-act")
        if c["static"]:
            flags.append("--static-groups")
        outs = {}
        for method in ["gptq", "rtn"]:
            path = os.path.join(args.tmp, f"out{idx}-{method}.safetensors")
            run([args.quant_layer, "--method", method, *flags,
                 "--weight", f"{inp}:layer.weight", "--hessian", f"{inp}:layer.hessian",
                 "-o", path])
            outs[method] = safetensors_io.load(path)

        ref = gptq_ref.gptq(w, h, bits, group, c["sym"], act_order=c["act"],
                            static_groups=c["static"], percdamp=c["damp"],
                            blocksize=c["block"])
        ref_rtn = gptq_ref.rtn(w, bits, group, c["sym"], act_order=c["act"])
        gp, rt = outs["gptq"], outs["rtn"]
        name = f"case {idx} {c}"
        try:
            # GPTQ codes: equal but for rounding ties.
            diff = gp["q"].astype(np.int64) - ref["q"].astype(np.int64)
            bad = diff != 0
            frac = np.abs(ref["x_over_scale"] - np.floor(ref["x_over_scale"]) - 0.5)
            tie = (np.abs(diff) == 1) & (frac < TIE_WINDOW)
            assert not np.any(bad & ~tie), (
                f"{int(np.sum(bad & ~tie))} codes differ away from a tie "
                f"(first at [k, n] = {np.argwhere(bad & ~tie)[0].tolist()})")
            ties = int(np.sum(bad))
            assert ties <= MAX_TIE_FRACTION * diff.size, f"{ties} ties"
            total_ties += ties
            total_codes += diff.size
            np.testing.assert_allclose(gp["scales"], ref["scales"], rtol=1e-5, atol=0)
            assert np.array_equal(gp["zeros"], ref["zeros"]), "zeros"
            g_ref = ref["g_idx"] if c["act"] else np.arange(k) // (k if group == -1 else group)
            assert np.array_equal(gp["g_idx"], g_ref), "g_idx"
            # RTN: no error feedback, so exactly equal.
            assert np.array_equal(rt["q"], ref_rtn["q"]), "rtn codes"
            np.testing.assert_allclose(rt["scales"], ref_rtn["scales"], rtol=1e-5, atol=0)
            assert np.array_equal(rt["zeros"], ref_rtn["zeros"]), "rtn zeros"
            check_packed(gp, bits, k, n)
            check_packed(rt, bits, k, n)
            # GPTQ beats RTN on the calibration data.
            e_gptq = out_error(x, w.astype(np.float64), {**gp, "g_idx": gp["g_idx"]}, bits, group)
            e_rtn = out_error(x, w.astype(np.float64), {**rt, "g_idx": rt["g_idx"]}, bits, group)
            assert e_gptq < e_rtn, f"GPTQ error {e_gptq} >= RTN error {e_rtn}"
            print(f"case {idx:2d}: bits={bits} group={group:4d} sym={int(c['sym'])} "
                  f"act={int(c['act'])} static={int(c['static'])} N={n} K={k} "
                  f"block={c['block']} dead={int(c['dead'])}: ties={ties} "
                  f"|err| gptq/rtn = {e_gptq / e_rtn:.3f}")
        except AssertionError as e:
            failures.append(f"{name}: {e}")
    if failures:
        print("\n".join(failures))
        sys.exit(f"{len(failures)} of {len(cases)} cases FAILED")
    print(f"all {len(cases)} cases match: {total_codes} codes, {total_ties} rounding ties")


main()
