# quant-layer's errors: a Hessian that is not positive definite after damping
# names the layer and suggests --damp-percent; every failure exits non-zero
# and leaves no output file.
# RUN: rm -rf %t && mkdir -p %t
# RUN: %python %s %t %src_root
# RUN: not quant-layer --method gptq --bits 4 --group-size 32 --weight %t/in.safetensors:model.layers.3.mlp.down_proj.weight --hessian %t/in.safetensors:neg_identity -o %t/out.safetensors 2>&1 | FileCheck %s --check-prefix=NEGI
# NEGI: quant-layer: error: layer 'model.layers.3.mlp.down_proj': Hessian is not positive definite after damping (damp-percent 0.01); try a larger --damp-percent
# RUN: not test -e %t/out.safetensors
# RUN: not quant-layer --method gptq --bits 4 --group-size 32 --damp-percent 0.05 --weight %t/in.safetensors:model.layers.3.mlp.down_proj.weight --hessian %t/in.safetensors:indefinite -o %t/out.safetensors 2>&1 | FileCheck %s --check-prefix=INDEF
# INDEF: layer 'model.layers.3.mlp.down_proj': Hessian is not positive definite after damping (damp-percent 0.05); try a larger --damp-percent
# RUN: not test -e %t/out.safetensors
# The same indefinite H is fine once the damping is large enough.
# RUN: quant-layer --method gptq --bits 4 --group-size 32 --damp-percent 2 --weight %t/in.safetensors:model.layers.3.mlp.down_proj.weight --hessian %t/in.safetensors:indefinite -o %t/out.safetensors
# RUN: test -e %t/out.safetensors && rm %t/out.safetensors
# RUN: not quant-layer --method gptq --bits 4 --group-size 32 --weight %t/in.safetensors:model.layers.3.mlp.down_proj.weight --hessian %t/in.safetensors:small -o %t/out.safetensors 2>&1 | FileCheck %s --check-prefix=SHAPE
# SHAPE: quant-layer: error: layer 'model.layers.3.mlp.down_proj': Hessian must be [64, 64]
# RUN: not quant-layer --method gptq --bits 4 --group-size 32 --weight %t/in.safetensors:model.layers.3.mlp.down_proj.weight --hessian %t/in.safetensors:nan -o %t/out.safetensors 2>&1 | FileCheck %s --check-prefix=NAN
# NAN: layer 'model.layers.3.mlp.down_proj': Hessian has a non-finite value
# RUN: not quant-layer --method gptq --bits 4 --group-size 32 --weight %t/in.safetensors:missing --hessian %t/in.safetensors:neg_identity -o %t/out.safetensors 2>&1 | FileCheck %s --check-prefix=MISSING
# MISSING: quant-layer: error: no tensor 'missing' in {{.*}}in.safetensors
# RUN: not quant-layer --method gptq --bits 4 --group-size 32 --weight %t/in.safetensors:model.layers.3.mlp.down_proj.weight -o %t/out.safetensors 2>&1 | FileCheck %s --check-prefix=NOH
# NOH: quant-layer: error: --method gptq needs --hessian FILE:NAME
# RUN: not quant-layer --method rtn --bits 5 --group-size 32 --weight %t/in.safetensors:model.layers.3.mlp.down_proj.weight -o %t/out.safetensors 2>&1 | FileCheck %s --check-prefix=BITS
# BITS: layer 'model.layers.3.mlp.down_proj': bits must be 2, 3, 4 or 8, got 5
# RUN: not quant-layer --method rtn --bits 4 --group-size 48 --weight %t/in.safetensors:model.layers.3.mlp.down_proj.weight -o %t/out.safetensors 2>&1 | FileCheck %s --check-prefix=GROUP
# GROUP: layer 'model.layers.3.mlp.down_proj': K = 64 is not divisible by group size 48
# RUN: not quant-layer --method awq --weight %t/in.safetensors:model.layers.3.mlp.down_proj.weight -o %t/out.safetensors 2>&1 | FileCheck %s --check-prefix=METHOD
# METHOD: quant-layer: error: --method must be rtn or gptq, got 'awq'
# RUN: not test -e %t/out.safetensors
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(sys.argv[2], "python"))
from quant_mlir import safetensors_io  # noqa: E402

k = 64
rng = np.random.default_rng(0)
# Positive diagonal, indefinite: 2x2 blocks [[1, 2], [2, 1]] (eigenvalues 3, -1).
indefinite = np.kron(np.eye(k // 2), np.array([[1.0, 2.0], [2.0, 1.0]]))
nan = np.eye(k)
nan[5, 7] = nan[7, 5] = np.nan
safetensors_io.save(os.path.join(sys.argv[1], "in.safetensors"), {
    "model.layers.3.mlp.down_proj.weight": rng.standard_normal((32, k)).astype(np.float32),
    "neg_identity": -np.eye(k),
    "indefinite": indefinite,
    "small": np.eye(k - 32),
    "nan": nan,
})
