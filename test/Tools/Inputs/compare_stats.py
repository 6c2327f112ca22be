"""Compares the Hessians of two statistics archives layer by layer (same /
differs) and prints the second archive's block_inputs metadata: checks that
quantized block inputs change every block's statistics but the first."""
import json
import struct
import sys

import numpy as np


def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        if name.endswith(".hessian"):
            a, b = e["data_offsets"]
            out[name[: -len(".hessian")]] = np.frombuffer(data[a:b], "<f8")
    return out, meta


first, _ = read(sys.argv[1])
second, meta = read(sys.argv[2])
print("block_inputs", meta.get("block_inputs", "<none>").split(" ")[0])
count = 0
for name in sorted(first):
    same = np.array_equal(first[name], second[name])
    count += same
    print(name, "same" if same else "differs")
print(f"{count} of {len(first)} Hessians the same; layers {sorted(first) == sorted(second)}")
