"""Test helper: damages a checkpoint or model archive in one named way.

  hf_tamper.py zero0 MODEL_DIR LAYER     one zero point of LAYER set to 0
  hf_tamper.py drop HF_DIR TENSOR        TENSOR removed from model.safetensors
  hf_tamper.py truncate FILE BYTES       FILE cut BYTES short
  hf_tamper.py add HF_DIR TENSOR LEN     TENSOR (float16 ones [LEN]) added
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "python"))
from quant_mlir import safetensors_io  # noqa: E402

mode, path, arg = sys.argv[1:4]
if mode == "zero0":
    f = os.path.join(path, "model.safetensors")
    t = safetensors_io.load(f)
    z = t[arg + ".qzeros"].copy()
    z.view("<u4")[0, 0] &= ~0xF  # first 4-bit zero of column 0 -> 0
    t[arg + ".qzeros"] = z
    safetensors_io.save(f, t)
elif mode == "drop":
    f = os.path.join(path, "model.safetensors")
    t = safetensors_io.load(f)
    del t[arg]
    safetensors_io.save(f, t)
elif mode == "truncate":
    size = os.path.getsize(path)
    with open(path, "r+b") as fh:
        fh.truncate(size - int(arg))
elif mode == "add":
    import numpy as np
    f = os.path.join(path, "model.safetensors")
    t = safetensors_io.load(f)
    t[arg] = np.ones(int(sys.argv[4]), np.float16)
    safetensors_io.save(f, t)
else:
    sys.exit("unknown mode " + mode)
