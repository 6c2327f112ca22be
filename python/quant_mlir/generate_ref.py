#!/usr/bin/env python3
"""float64 numpy references for quant-run's generation and choice scoring.

    /usr/bin/python3 python/quant_mlir/generate_ref.py greedy MODEL.bin TOKENIZER.model \
        --prompt TEXT [--max-new-tokens 64]          -> JSON {"prompt_ids", "ids"}
    /usr/bin/python3 python/quant_mlir/generate_ref.py choices MODEL.bin TOKENIZER.model \
        FILE.jsonl                                   -> JSON {"acc", "acc_norm", "items"}

The model is the llama2.c checkpoint itself, run by check_llama2c.RunC (a
literal float64 port of run.c with its own .bin parser and KV cache), so
nothing is shared with the C++ importer, lowering or runtime; text goes
through the Python sentencepiece package.

greedy: BOS + the prompt's pieces, then argmax (lowest id on ties) for
--max-new-tokens tokens, stopping after EOS (id 2 in llama2.c tokenizers).

choices: lm-evaluation-harness's multiple choice. Per line {"context",
"choices", "answer"}: trailing spaces of the context move to the
continuation " " + choice; context tokens = encode(context) with BOS,
continuation tokens = encode(context + continuation)[len(context tokens):];
the score is the sum of log p(token | everything before it); acc takes the
argmax of the scores, acc_norm of score / len(choice in UTF-8 bytes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import sentencepiece as spm

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from quant_mlir.check_llama2c import RunC  # noqa: E402
else:
    from .check_llama2c import RunC


def log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max()
    return x - m - np.log(np.exp(x - m).sum())


def greedy(model: RunC, sp, prompt: str, n: int) -> dict:
    ids = [sp.bos_id()] + sp.encode(prompt)
    model.reset()
    logits = None
    for pos, t in enumerate(ids):
        logits = model.forward(t, pos)
    out = []
    for _ in range(n):
        tok = int(np.argmax(logits))  # first maximum: lowest id on ties
        out.append(tok)
        if tok == sp.eos_id() or len(ids) + len(out) >= model.seq_len:
            break
        logits = model.forward(tok, len(ids) + len(out) - 1)
    return {"prompt_ids": ids, "ids": out, "text": sp.decode(ids + out)[len(sp.decode(ids)):]}


def choices(model: RunC, sp, path: str) -> dict:
    items, correct, correct_norm = [], 0, 0
    for line in open(path, encoding="utf-8"):
        if not line.strip():
            continue
        doc = json.loads(line)
        ctx = doc["context"]
        stripped = ctx.rstrip()
        moved = ctx[len(stripped):]
        ctx_ids = [sp.bos_id()] + sp.encode(stripped)
        lls = []
        for choice in doc["choices"]:
            whole = [sp.bos_id()] + sp.encode(stripped + moved + " " + choice)
            logits = model.logits_for(whole)
            ll = sum(log_softmax(logits[i - 1])[whole[i]] for i in range(len(ctx_ids), len(whole)))
            lls.append(float(ll))
        pred = int(np.argmax(lls))
        pred_norm = int(np.argmax([ll / len(c.encode("utf-8")) for ll, c in zip(lls, doc["choices"])]))
        correct += pred == doc["answer"]
        correct_norm += pred_norm == doc["answer"]
        items.append({"loglikelihoods": lls, "pred": pred, "pred_norm": pred_norm, "answer": doc["answer"]})
    return {"acc": correct / len(items), "acc_norm": correct_norm / len(items), "items": items}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["greedy", "choices"])
    ap.add_argument("checkpoint")
    ap.add_argument("tokenizer")
    ap.add_argument("file", nargs="?", help="choices: the .jsonl file")
    ap.add_argument("--prompt", default="")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    a = ap.parse_args(argv)
    model = RunC(a.checkpoint)
    sp = spm.SentencePieceProcessor(model_file=a.tokenizer)
    if a.mode == "greedy":
        out = greedy(model, sp, a.prompt, a.max_new_tokens)
    else:
        if not a.file:
            ap.error("choices needs FILE.jsonl")
        out = choices(model, sp, a.file)
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
