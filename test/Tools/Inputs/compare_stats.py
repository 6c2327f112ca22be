"""Compares the Hessians of two statistics archives layer by layer (same /
differs) and prints the second archive's block_inputs metadata: checks that
quantized block inputs change every block's statistics but the first."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "python"))
from quant_mlir import safetensors_io  # noqa: E402


def read(path):
    """Hessians by layer and metadata of one file or a sharded archive."""
    tensors = safetensors_io.load_archive(path)
    out = {name[: -len(".hessian")]: t.ravel() for name, t in tensors.items()
           if name.endswith(".hessian")}
    return out, safetensors_io.read_metadata(path)


first, _ = read(sys.argv[1])
second, meta = read(sys.argv[2])
print("block_inputs", meta.get("block_inputs", "<none>").split(" ")[0])
count = 0
for name in sorted(first):
    same = np.array_equal(first[name], second[name])
    count += same
    print(name, "same" if same else "differs")
print(f"{count} of {len(first)} Hessians the same; layers {sorted(first) == sorted(second)}")
