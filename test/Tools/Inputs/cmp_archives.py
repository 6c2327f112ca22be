"""Byte-compares two safetensors archives given by name (a file, an index,
or a name whose .index.json holds the shards): the same form, and every file
of it identical (a sharded archive: the index and each shard). Exits 1 and
names the first differing file otherwise. With --content, the archives may
differ in form: the same tensors (dtype, shape, bytes) and metadata."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "python"))
from quant_mlir import safetensors_io  # noqa: E402


def files(name):
    path = safetensors_io.resolve_archive(name)
    if not path.endswith(".index.json"):
        return [path]
    with open(path) as f:
        shards = sorted(set(json.load(f)["weight_map"].values()))
    return [path] + [os.path.join(os.path.dirname(path), s) for s in shards]


args = sys.argv[1:]
if args[0] == "--content":
    x, y = args[1:]
    tx, ty = safetensors_io.load_archive(x), safetensors_io.load_archive(y)
    if sorted(tx) != sorted(ty):
        sys.exit("different tensors")
    for n in tx:
        if tx[n].dtype != ty[n].dtype or tx[n].shape != ty[n].shape or tx[n].tobytes() != ty[n].tobytes():
            sys.exit(f"tensor {n} differs")
    if safetensors_io.read_metadata(x) != safetensors_io.read_metadata(y):
        sys.exit("metadata differs")
    print(f"{len(tx)} tensors the same")
    sys.exit(0)
a, b = files(args[0]), files(args[1])
if [os.path.basename(p) for p in a] != [os.path.basename(p) for p in b]:
    sys.exit(f"different files: {[os.path.basename(p) for p in a]} vs {[os.path.basename(p) for p in b]}")
for x, y in zip(a, b):
    with open(x, "rb") as f, open(y, "rb") as g:
        if f.read() != g.read():
            sys.exit(f"{x} and {y} differ")
print(f"{len(a)} files the same")
