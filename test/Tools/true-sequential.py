# GPTQ true-sequential (quant-compile --true-sequential): every layer's
# Hessian equals a float64 torch reference computed with the layers before
# it in AutoGPTQ's order quantized -- all earlier blocks, and within a block
# the groups [q, k, v] -> [o] -> [gate, up] -> [down] -- to rel. 1e-4; the
# plain fp Hessians differ (negative control). The packed run uses the very
# same Hessians as the fake-quant run, and wq-gptq true-sequential=1 refuses
# statistics recorded without (or for another configuration of) the loop.
# RUN: rm -rf %t && mkdir -p %t
# RUN: %python %src_root/python/quant_mlir/export_fixtures.py --family llama --layers 2 --hidden 64 --intermediate 128 -o %t/fx > /dev/null
# RUN: %python -c "import numpy as np; np.save('%t/calib.npy', np.random.default_rng(5).integers(0, 128, 400))"
# RUN: quant-compile %t/fx/model.onnx --method gptq --bits 3 --group-size 32 --desc-act --calib-data %t/calib.npy --calib-samples 6 --seq-len 24 --true-sequential --fake-quant --quiet -o %t/fake > /dev/null
# RUN: quant-compile %t/fx/model.onnx --method gptq --bits 3 --group-size 32 --desc-act --calib-data %t/calib.npy --calib-samples 6 --seq-len 24 --true-sequential --quiet -o %t/packed > /dev/null
# RUN: %python %s %t/fx %t/fake %t/packed %src_root | FileCheck %s
# CHECK: model.layers.0.self_attn.q_proj {{.*}} OK
# CHECK: model.layers.1.mlp.down_proj {{.*}} OK
# CHECK: 14 layers match the sequential reference; plain fp statistics differ by up to {{.*}}
# CHECK: packed run: same Hessians
# RUN: quant-compile %t/fx/model.onnx --method gptq --bits 3 --group-size 32 --calib-data %t/calib.npy --calib-samples 6 --seq-len 24 --quiet -o %t/plain > /dev/null
# RUN: not quant-opt %t/plain/model.mlir --wq-gptq="true-sequential=1 bits=3 group-size=32 output=q.safetensors base-dir=%t/plain" 2>&1 | FileCheck %s --check-prefix=NOTSEQ
# NOTSEQ: true-sequential=1: the statistics were not recorded with this quantization in the loop (run quant-compile --true-sequential); they say '<none>'
# RUN: not quant-opt %t/packed/model.mlir --wq-gptq="true-sequential=1 bits=4 group-size=32 output=q.safetensors base-dir=%t/packed" 2>&1 | FileCheck %s --check-prefix=OTHER
# OTHER: they say 'method=gptq bits=3 group-size=32 zero-point=0 desc-act=1
# OTHER-SAME: the pass is 'method=gptq bits=4 group-size=32 zero-point=0 desc-act=0
# RUN: not quant-compile %t/fx/model.onnx --method rtn --true-sequential -o %t/rtn 2>&1 | FileCheck %s --check-prefix=RTN
# RTN: --true-sequential applies to --method gptq only
import json
import os
import sys

import numpy as np

fx, fake, packed, src = sys.argv[1:5]
sys.path.insert(0, os.path.join(src, "python"))
import torch  # noqa: E402
from quant_mlir import models, safetensors_io  # noqa: E402


cfg = json.load(open(os.path.join(fx, "config.json")))
cfg.pop("export")
model = models.build_model(models.DecoderConfig(**cfg)).double()
fp = {k: v.detach().clone() for k, v in model.state_dict().items()}
quantized = safetensors_io.load(os.path.join(fake, "model.safetensors"))
stats = safetensors_io.load_archive(os.path.join(fake, "stats.safetensors"))
meta = safetensors_io.read_metadata(os.path.join(fake, "stats.safetensors"))
assert "true_sequential" in meta, meta
seq_len = int(meta["seq_len"])
starts = [int(s) for s in meta["sample_starts"].split(",")]
ids = np.load(os.path.join(os.path.dirname(fx), "calib.npy"))
batch = torch.from_numpy(np.stack([ids[s:s + seq_len] for s in starts]).astype(np.int64))

# AutoGPTQ's true-sequential order for a Llama block.
groups = [["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
          ["self_attn.o_proj"], ["mlp.gate_proj", "mlp.up_proj"], ["mlp.down_proj"]]
order = [[f"model.layers.{b}.{name}" for name in g]
         for b in range(cfg["num_layers"]) for g in groups]

linears = dict(model.named_modules())
captured = {}


def hook(name):
    def fn(module, inputs, output):
        captured[name] = inputs[0].reshape(-1, inputs[0].shape[-1]).detach()
    return fn


for group in order:
    for name in group:
        linears[name].register_forward_hook(hook(name))


def hessians(quantized_layers):
    state = dict(fp)
    for name in quantized_layers:
        state[name + ".weight"] = torch.from_numpy(quantized[name + ".weight"].astype(np.float64))
    model.load_state_dict(state)
    with torch.no_grad():
        model(batch)
    return {n: (2.0 / len(x) * (x.T @ x)).numpy() for n, x in captured.items()}


plain = hessians([])
done, worst_control, count = [], 0.0, 0
for group in order:
    ref = hessians(done)
    for name in group:
        h = stats[name + ".hessian"]
        scale = np.abs(ref[name]).max()
        err = np.abs(h - ref[name]).max() / scale
        control = np.abs(h - plain[name]).max() / scale
        if done:
            worst_control = max(worst_control, control)
        status = "OK" if err < 1e-4 else "MISMATCH"
        print(f"{name} rel. err {err:.2e} (vs fp statistics {control:.2e}) {status}")
        count += status == "OK"
    done += group
if worst_control < 1e-2:
    print("negative control failed: the fp statistics are as close as the reference")
    sys.exit(1)
print(f"{count} layers match the sequential reference; plain fp statistics "
      f"differ by up to {worst_control:.2e}")

other = safetensors_io.load_archive(os.path.join(packed, "stats.safetensors"))
same = all(np.array_equal(other[k], stats[k]) for k in stats if k.endswith(".hessian"))
print("packed run: same Hessians" if same else "packed run: Hessians differ")
