#!/usr/bin/env python3
"""Self-test of the fixture exporter: export every family at the requested
opsets, with and without external data, run onnx.checker (path form), and
re-run each exported graph with the numpy ONNX interpreter on the reference
input (a different shape than the trace shape) against the torch logits.

    /usr/bin/python3 python/quant_mlir/check_fixtures.py [--opsets 14 17]
        [--families llama qwen2 gpt2 gptneox] [--keep DIR] [--show-ops]

Exit code 0 if everything matches, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import onnx

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from quant_mlir import export_fixtures, onnx_numpy_eval  # noqa: E402
    from quant_mlir.models import FAMILIES  # noqa: E402
else:
    from . import export_fixtures, onnx_numpy_eval
    from .models import FAMILIES


def describe(onnx_path: str):
    m = onnx.load(onnx_path, load_external_data=False)
    ops = sorted({n.op_type for n in m.graph.node})
    inits = [i.name for i in m.graph.initializer]
    ext = sum(1 for i in m.graph.initializer if i.data_location == onnx.TensorProto.EXTERNAL)
    return ops, inits, ext


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--opsets", type=int, nargs="+", default=[14, 17])
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    p.add_argument("--fold-constants", action="store_true")
    p.add_argument("--keep", default=None, help="write fixtures here instead of a temp dir")
    p.add_argument("--show-ops", action="store_true")
    p.add_argument("--atol", type=float, default=1e-4)
    a = p.parse_args(argv)

    root = a.keep or tempfile.mkdtemp(prefix="qm_fixtures_")
    failures = 0
    for fam in a.families:
        for opset in a.opsets:
            for ext in (False, True):
                out = os.path.join(root, f"{fam}_op{opset}{'_ext' if ext else ''}")
                args = ["--family", fam, "--hidden", "64", "--layers", "2", "--heads", "4",
                        "--kv-heads", "2", "--vocab", "128", "--intermediate", "172",
                        "--opset", str(opset), "-o", out]
                if ext:
                    args.append("--external-data")
                if a.fold_constants:
                    args.append("--fold-constants")
                export_fixtures.main(args)  # includes onnx.checker.check_model(path)
                ops, inits, n_ext = describe(os.path.join(out, "model.onnx"))
                ratio, diff = onnx_numpy_eval.check_dir(out, a.atol)
                ok = ratio <= 1.0 and (n_ext == len(inits) if ext else n_ext == 0)
                failures += not ok
                print(f"  {fam:8s} opset {opset} ext={int(ext)}: {len(inits)} initializers "
                      f"({n_ext} external), max|onnx-torch|={diff:.2e} {'OK' if ok else 'FAIL'}")
                if a.show_ops and not ext:
                    print(f"    ops: {' '.join(ops)}")
    print("ALL OK" if not failures else f"{failures} FAILURE(S)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
