"""Compares quant-run --json generation / choice output with a reference.

    check_generate.py same-ids REF.json OUT.json     greedy ids equal the numpy reference
    check_generate.py seeded A.json B.json C.json     A == B (same seed), A != C (other seed)
    check_generate.py choices REF.json OUT.json      acc, acc_norm, predictions and
                                                     log-likelihoods (1e-3) equal the reference
    check_generate.py each BATCH.json A.json B.json   result i of a --prompts run equals the
                                                     single-prompt run i (the cache is reset)
"""
import json
import sys

mode, *paths = sys.argv[1:]
docs = [json.load(open(p)) for p in paths]


def ids(doc):
    return doc["ids"] if "ids" in doc else [r["ids"] for r in doc["results"]][0]


if mode == "same-ids":
    ref, out = ids(docs[0]), ids(docs[1])
    first = next((i for i, (a, b) in enumerate(zip(ref, out)) if a != b), None)
    assert ref == out, f"differs at token {first}: reference {ref} vs quant-run {out}"
    print(f"OK: {len(out)} tokens equal the reference")
elif mode == "each":
    batch = [r["ids"] for r in docs[0]["results"]]
    single = [ids(d) for d in docs[1:]]
    assert batch == single, f"--prompts gave {batch}, one prompt at a time {single}"
    print(f"OK: {len(batch)} prompts equal their single runs")
elif mode == "seeded":
    a, b, c = (ids(d) for d in docs)
    assert a == b, f"same seed, different tokens: {a} vs {b}"
    assert a != c, f"another seed gave the same tokens: {a}"
    assert len(set(a)) > 1, f"degenerate sample {a}"
    print("OK: seeded sampling reproducible")
elif mode == "choices":
    ref, out = docs
    assert len(ref["items"]) == len(out["items"])
    for i, (r, o) in enumerate(zip(ref["items"], out["items"])):
        for a, b in zip(r["loglikelihoods"], o["loglikelihoods"]):
            assert abs(a - b) <= 1e-3, f"item {i}: log-likelihood {b} vs reference {a}"
        assert r["pred"] == o["pred"] and r["pred_norm"] == o["pred_norm"], f"item {i}: {o} vs {r}"
    assert abs(ref["acc"] - out["acc"]) < 1e-12 and abs(ref["acc_norm"] - out["acc_norm"]) < 1e-12
    print(f"OK: acc {out['acc']:.4f} acc_norm {out['acc_norm']:.4f} equal the reference")
else:
    sys.exit(f"unknown mode {mode}")
