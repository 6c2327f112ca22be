#!/usr/bin/env python3
"""Sample token-id sequences from a llama2.c checkpoint, as evaluation or
calibration data for models that ship no text (../shared/data has none for
stories260K; its 512-token tokenizer is not included).

    /usr/bin/python3 python/quant_mlir/sample_tokens.py CKPT.bin -o ids.npy \
        --count 16 --length 512 --temperature 1.0 --seed 0

Each sequence starts at BOS (1) and is sampled with torch's seeded generator
at the given temperature; sequences are concatenated into one int32 stream.
Different seeds give disjoint data for calibration and evaluation.
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from quant_mlir.llama2c_to_onnx import load_llama2c_model  # noqa: E402


@torch.no_grad()
def sample(model, count, length, temperature, gen):
    """`count` sequences sampled together as one batch (same steps, so the
    cost is that of one sequence of a wider batch)."""
    ids = torch.ones((count, 1), dtype=torch.int64)
    while ids.shape[1] < length:
        logits = model(ids)[:, -1].double() / temperature
        probs = torch.softmax(logits, -1)
        nxt = torch.multinomial(probs, 1, generator=gen)
        ids = torch.cat([ids, nxt], dim=1)
    return ids.numpy()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--count", type=int, default=16)
    p.add_argument("--length", type=int, default=512)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    model, _ = load_llama2c_model(a.checkpoint)
    gen = torch.Generator().manual_seed(a.seed)
    out = sample(model, a.count, a.length, a.temperature, gen).reshape(-1).astype(np.int32)
    tmp = a.out + ".tmp.npy"
    np.save(tmp, out)
    os.replace(tmp, a.out)
    print(f"wrote {a.out}: {len(out)} tokens ({a.count} x {a.length})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
