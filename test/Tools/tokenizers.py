# Text data is tokenized like the reference implementations: sentencepiece's
# own Python binding for tokenizer.model, and a Python port of llama2.c's
# run.c encoder for a tokenizer.bin built here.
# RUN: rm -rf %t && mkdir -p %t
# RUN: %python %s prepare %t %shared_data
# RUN: quant-run %t/none --eval-data %t/text.txt --tokenizer %shared_data/llama-tokenizer.model --print-tokens > %t/sp.out
# RUN: quant-run %t/none --eval-data %t/docs.jsonl --tokenizer %shared_data/llama-tokenizer.model --print-tokens > %t/sp-jsonl.out
# RUN: quant-run %t/none --eval-data %t/text.txt --tokenizer %t/tokenizer.bin --print-tokens > %t/l2c.out
# RUN: %python %s check %t %shared_data
# RUN: not quant-run %t/none --eval-data %t/text.txt --tokenizer %t/truncated.bin --print-tokens 2>&1 | FileCheck %s
# CHECK: truncated llama2.c tokenizer at token
import json
import os
import struct
import sys

import sentencepiece as spm

mode, tmp, shared = sys.argv[1:4]
TEXT = "Once upon a time, there was a little girl named Lily. She loved to play outside in the sunshine.\nÜber café ☃!"
DOCS = ["Hello world", "The quick brown fox jumps over the lazy dog."]


def l2c_vocab():
    vocab = ["<unk>", "<s>", "</s>"] + [bytes([b]).decode("latin-1") for b in range(256)]
    scores = [0.0] * len(vocab)
    merges = [" O", "nc", "e ", " Onc", "up", "on", " up", " a", " t", "im", "th", "the", "er", " th"]
    for i, m in enumerate(merges):
        vocab.append(m)
        scores.append(float(len(merges) - i))
    return vocab, scores


def l2c_encode(text, vocab, scores):
    """run.c's encode(): leading space, code points to ids (byte fallback +3), best-score merges."""
    index = {v: i for i, v in enumerate(vocab)}
    ids = [index[" "]] if text else []
    raw = text.encode("utf-8")
    i = 0
    while i < len(raw):
        n = 1
        while i + n < len(raw) and (raw[i + n] & 0xC0) == 0x80 and n < 4:
            n += 1
        piece = raw[i:i + n].decode("latin-1")
        if piece in index:
            ids.append(index[piece])
        else:
            ids.extend(b + 3 for b in raw[i:i + n])
        i += n
    while True:
        best, best_id, best_at = -1e10, -1, -1
        for j in range(len(ids) - 1):
            cand = vocab[ids[j]] + vocab[ids[j + 1]]
            if cand in index and scores[index[cand]] > best:
                best, best_id, best_at = scores[index[cand]], index[cand], j
        if best_at < 0:
            break
        ids[best_at:best_at + 2] = [best_id]
    return [1] + ids


if mode == "prepare":
    open(os.path.join(tmp, "text.txt"), "w", encoding="utf-8").write(TEXT)
    with open(os.path.join(tmp, "docs.jsonl"), "w") as f:
        for d in DOCS:
            f.write(json.dumps({"text": d}) + "\n")
    vocab, scores = l2c_vocab()
    blob = struct.pack("<i", max(len(v.encode("latin-1")) for v in vocab))
    for v, s in zip(vocab, scores):
        b = v.encode("latin-1")
        blob += struct.pack("<fi", s, len(b)) + b
    open(os.path.join(tmp, "tokenizer.bin"), "wb").write(blob)
    open(os.path.join(tmp, "truncated.bin"), "wb").write(blob[:300])
else:
    sp = spm.SentencePieceProcessor(model_file=os.path.join(shared, "llama-tokenizer.model"))
    got = list(map(int, open(os.path.join(tmp, "sp.out")).read().split()))
    want = [sp.bos_id()] + sp.encode(TEXT)
    assert got == want, f"sentencepiece mismatch:\n got {got}\nwant {want}"
    got = list(map(int, open(os.path.join(tmp, "sp-jsonl.out")).read().split()))
    want = sum(([sp.bos_id()] + sp.encode(d) for d in DOCS), [])
    assert got == want, f"jsonl text mismatch:\n got {got}\nwant {want}"
    vocab, scores = l2c_vocab()
    got = list(map(int, open(os.path.join(tmp, "l2c.out")).read().split()))
    want = l2c_encode(TEXT, vocab, scores)
    assert got == want, f"llama2.c mismatch:\n got {got}\nwant {want}"
    assert any(i > 258 for i in got), "no merge applied"
