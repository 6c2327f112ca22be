"""Minimal safetensors reader/writer on numpy, for tests and scripts.

Independent of the C++ archive code, so tests that write with one and read
with the other check both.
"""
import json
import struct

import numpy as np

_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
           "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}


def save(path, tensors, metadata=None):
    header, offset, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = dict(metadata)
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        raw = a.tobytes()
        header[name] = {"dtype": _NAMES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        out[name] = np.frombuffer(data[base + begin:base + end],
                                  dtype=_DTYPES[info["dtype"]]).reshape(info["shape"])
    # Aliases ("__alias__.<name>": "<tensor>"): another name for a stored
    # tensor (one Hessian for the layers that read the same activations).
    for key, target in header.get("__metadata__", {}).items():
        if key.startswith("__alias__."):
            out[key[len("__alias__."):]] = out[target]
    return out


def resolve_archive(path):
    """The file an archive name stands for: ``path`` itself, or, as Hugging
    Face resolves a sharded checkpoint, ``path + ".index.json"`` when only
    that exists (block-streaming calibration leaves its statistics so)."""
    import os
    if not os.path.exists(path) and os.path.exists(path + ".index.json"):
        return path + ".index.json"
    return path


def read_metadata(path):
    """The string metadata of one file or of an index (its "metadata",
    without Hugging Face's numeric total_size)."""
    path = resolve_archive(path)
    if path.endswith(".index.json"):
        with open(path) as f:
            meta = json.load(f).get("metadata", {})
        return {k: v for k, v in meta.items() if k != "total_size"}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        meta = json.loads(f.read(n)).get("__metadata__", {})
        return {k: v for k, v in meta.items() if not k.startswith("__alias__.")}


def load_archive(path):
    """Every tensor of one file, of an index's shards, or of the archive
    ``path`` names (see resolve_archive)."""
    import os
    path = resolve_archive(path)
    if not path.endswith(".index.json"):
        return load(path)
    with open(path) as f:
        weight_map = json.load(f)["weight_map"]
    out = {}
    for shard in sorted(set(weight_map.values())):
        tensors = load(os.path.join(os.path.dirname(path), shard))
        for name, value in tensors.items():
            if weight_map.get(name) != shard:
                raise ValueError(f"{path}: tensor {name} of shard {shard} is not mapped to it")
            out[name] = value
    missing = set(weight_map) - set(out)
    if missing:
        raise ValueError(f"{path}: tensors not in their shards: {sorted(missing)[:3]}")
    return out
