#!/usr/bin/env python3
"""Export small decoder LMs (see models.py) to ONNX test fixtures.

Usage (always with /usr/bin/python3, which has torch + onnx)::

    /usr/bin/python3 python/quant_mlir/export_fixtures.py --family llama \
        --hidden 64 --layers 2 --heads 4 --kv-heads 2 --vocab 128 \
        --intermediate 172 --opset 17 [--external-data] [--seed 0] -o OUT_DIR

Writes into OUT_DIR:

* ``model.onnx``        the graph (input ``input_ids`` int64 [batch, seq],
                        output ``logits`` float32 [batch, seq, vocab]; both
                        axes dynamic).
* ``model.onnx.data``   only with ``--external-data``: every initializer
                        (size_threshold=0) in one file, referenced by
                        ``location="model.onnx.data"``.
* ``reference.npz``     ``input_ids`` (int64 [2, 16]) and ``logits``
                        (float32 [2, 16, vocab]) computed by torch in float32.
* ``config.json``       the model config (family, sizes, eps, ...), plus the
                        export settings.

Export settings and why
-----------------------
``torch.onnx.export(..., do_constant_folding=False, opset_version=N,
export_params=True, keep_initializers_as_inputs=False,
dynamic_axes={batch, seq})``, traced with an input of shape [3, 5] (neither
dimension 1, and different from the reference shape, so that a shape that got
baked in as a constant would be caught by the reference comparison).

``do_constant_folding=False`` is chosen so that an importer can recover the
Hugging Face parameter names.  With torch 1.13:

* folding OFF (our choice): each ``nn.Linear`` weight is an initializer named
  exactly like the HF parameter, e.g. ``model.layers.0.self_attn.q_proj.weight``
  with shape [out, in], consumed by a ``Transpose`` (perm=[1, 0]) node named
  ``/model/layers.0/self_attn/q_proj/Transpose`` whose output feeds
  ``/model/layers.0/self_attn/q_proj/MatMul``.  Linear biases are separate
  initializers (``...q_proj.bias``) added by an ``Add`` node after the MatMul.
  GPT-2 ``Conv1D`` weights ([in, out]) feed MatMul directly (no Transpose).
* folding ON (``--fold-constants``, for importer robustness tests only): the
  Transpose is folded into an anonymous pre-transposed [in, out] initializer
  such as ``onnx::MatMul_578``; the HF module path survives only in the
  consuming node's name (``/model/layers.0/self_attn/q_proj/MatMul``).
  Non-Linear parameters (embeddings, norm weights, biases) keep their HF names
  either way.

Folding off leaves a few more trivial nodes in the graph (extra
Unsqueeze/Constant for shape arithmetic), which is harmless for an importer.
RoPE inverse frequencies are non-persistent buffers and appear as ``Constant``
nodes (not initializers) in both modes; cos/sin are computed in-graph
(Range -> Cast -> Mul -> Concat -> Cos/Sin) so any sequence length works.
Tied weights (GPT-2 ``lm_head`` = ``wte``, or ``--tie`` for llama/qwen2)
appear once, under the embedding's name (``transformer.wte.weight``), which
then feeds both the Gather and the lm_head Transpose/MatMul.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
from typing import Optional

import numpy as np
import onnx
import torch

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from quant_mlir.models import FAMILIES, DecoderConfig, build_model  # noqa: E402
else:
    from .models import FAMILIES, DecoderConfig, build_model

MIN_OPSET, MAX_OPSET = 14, 17
TRACE_SHAPE = (3, 5)
REF_SHAPE = (2, 16)


def reference_input_ids(vocab_size: int, shape=REF_SHAPE, seed: int = 1234) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, vocab_size, size=shape, dtype=np.int64)


def export_onnx(
    model: torch.nn.Module,
    out_dir: str,
    vocab_size: int,
    opset: int = 17,
    external_data: bool = False,
    fold_constants: bool = False,
    ref_input_ids: Optional[np.ndarray] = None,
    extra_config: Optional[dict] = None,
) -> dict:
    """Export `model` to OUT_DIR/model.onnx (+ .data) and write reference.npz.

    Returns a dict with paths and the reference arrays."""
    if not (MIN_OPSET <= opset <= MAX_OPSET):
        raise ValueError(f"opset must be in [{MIN_OPSET}, {MAX_OPSET}]")
    os.makedirs(out_dir, exist_ok=True)
    model.eval()
    onnx_path = os.path.join(out_dir, "model.onnx")
    data_name = "model.onnx.data"
    data_path = os.path.join(out_dir, data_name)
    # onnx appends to an existing external-data file: always start clean.
    for p in (onnx_path, data_path):
        if os.path.exists(p):
            os.remove(p)

    trace_ids = torch.from_numpy(reference_input_ids(vocab_size, TRACE_SHAPE, seed=99))
    # Over 2 GiB (the 1B Llama) protobuf cannot serialize to a buffer: torch
    # then needs a file path and writes one external file per tensor, which
    # are gathered into data_name below.
    big = external_data and sum(p.numel() * p.element_size() for p in model.parameters()) > (1 << 30)
    tmp_dir = os.path.join(out_dir, ".export-tmp")
    buf = os.path.join(tmp_dir, "model.onnx") if big else io.BytesIO()
    if big:
        os.makedirs(tmp_dir, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            model,
            (trace_ids,),
            buf,
            input_names=["input_ids"],
            output_names=["logits"],
            dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}},
            opset_version=opset,
            do_constant_folding=fold_constants,
            export_params=True,
            keep_initializers_as_inputs=False,
        )
    if big:
        proto = onnx.load_model(buf)  # reads the per-tensor files back
        shutil.rmtree(tmp_dir)
    else:
        proto = onnx.load_model_from_string(buf.getvalue())
    proto.producer_name = "quant_mlir.export_fixtures"
    if external_data:
        onnx.save_model(
            proto,
            onnx_path,
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=data_name,
            size_threshold=0,
        )
    else:
        onnx.save_model(proto, onnx_path)
    onnx.checker.check_model(onnx_path)  # path form: handles external data

    if ref_input_ids is None:
        ref_input_ids = reference_input_ids(vocab_size)
    with torch.no_grad():
        logits = model(torch.from_numpy(ref_input_ids)).float().numpy()
    np.savez(os.path.join(out_dir, "reference.npz"), input_ids=ref_input_ids, logits=logits)

    cfg = dict(extra_config or {})
    cfg["export"] = {
        "opset": opset,
        "external_data": external_data,
        "do_constant_folding": fold_constants,
        "torch_version": torch.__version__,
        "onnx_version": onnx.__version__,
    }
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    return {
        "onnx": onnx_path,
        "data": data_path if external_data else None,
        "input_ids": ref_input_ids,
        "logits": logits,
    }


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--family", choices=FAMILIES, required=True)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=None, help="llama/qwen2 only (GQA); default = heads")
    p.add_argument("--vocab", type=int, default=128)
    p.add_argument("--intermediate", type=int, default=172)
    p.add_argument("--max-pos", type=int, default=256)
    p.add_argument("--eps", type=float, default=None, help="norm eps (default: llama 1e-5, qwen2 1e-6, ln 1e-5)")
    p.add_argument("--rotary-pct", type=float, default=0.25, help="gptneox only")
    p.add_argument("--tie", action="store_true", help="tie lm_head to the embedding (llama/qwen2/gptneox)")
    p.add_argument("--init-std", type=float, default=0.05)
    p.add_argument("--opset", type=int, default=17, choices=range(MIN_OPSET, MAX_OPSET + 1))
    p.add_argument("--external-data", action="store_true")
    p.add_argument("--fold-constants", action="store_true",
                   help="torch do_constant_folding=True (Linear weights become anonymous "
                        "pre-transposed initializers); default off to keep HF names")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--out-dir", required=True)
    return p.parse_args(argv)


def config_from_args(a) -> DecoderConfig:
    kw = dict(
        family=a.family,
        vocab_size=a.vocab,
        hidden_size=a.hidden,
        intermediate_size=a.intermediate,
        num_layers=a.layers,
        num_heads=a.heads,
        num_kv_heads=a.kv_heads,
        max_position_embeddings=a.max_pos,
        rotary_pct=a.rotary_pct,
        init_std=a.init_std,
        seed=a.seed,
    )
    if a.family == "qwen2":
        kw["rms_norm_eps"] = 1e-6
    if a.eps is not None:
        kw["rms_norm_eps"] = a.eps
        kw["layer_norm_eps"] = a.eps
    if a.tie:
        kw["tie_word_embeddings"] = True
    return DecoderConfig(**kw)


def main(argv=None) -> int:
    a = parse_args(argv)
    cfg = config_from_args(a)
    model = build_model(cfg)
    res = export_onnx(
        model,
        a.out_dir,
        cfg.vocab_size,
        opset=a.opset,
        external_data=a.external_data,
        fold_constants=a.fold_constants,
        extra_config=cfg.to_dict(),
    )
    print(f"wrote {res['onnx']}" + (f" (+ {res['data']})" if res["data"] else "")
          + f"; reference logits {tuple(res['logits'].shape)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
