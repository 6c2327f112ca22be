"""AutoGPTQ's GPTQ (GPTQ.fasterquant and Quantizer, auto_gptq/quantization/
gptq.py and quantizer.py) in torch float32, as AutoGPTQ runs it, for
bench_gptq.py's speed comparison. Asymmetric min/max per group of the
permuted weight (act-order, groups not static), the lazy block update with
the upper Cholesky factor of H^-1; returns the dequantized weight and the
time of the quantization alone (as quant-layer's quantize_seconds)."""
import time

import torch


def _params(x, maxq):
    # Quantizer.find_params(weight=True), asymmetric, per row of the group.
    xmin = torch.minimum(x.min(1).values, torch.zeros(x.shape[0]))
    xmax = torch.maximum(x.max(1).values, torch.zeros(x.shape[0]))
    tmp = (xmin == 0) & (xmax == 0)
    xmin[tmp], xmax[tmp] = -1, +1
    scale = (xmax - xmin) / maxq
    zero = torch.round(-xmin / scale)
    return scale.unsqueeze(1), zero.unsqueeze(1)


def _quantize(x, scale, zero, maxq):
    q = torch.clamp(torch.round(x / scale) + zero, 0, maxq)
    return scale * (q - zero)


def fasterquant(w_np, h_np, bits=4, group_size=128, blocksize=128, percdamp=0.01, actorder=True):
    W = torch.from_numpy(w_np).float().clone()
    H = torch.from_numpy(h_np).float().clone()
    start = time.perf_counter()
    maxq = 2 ** bits - 1
    columns = W.shape[1]
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    if actorder:
        perm = torch.argsort(torch.diag(H), descending=True)
        W = W[:, perm]
        H = H[perm][:, perm]
        invperm = torch.argsort(perm)
    Q = torch.zeros_like(W)
    damp = percdamp * torch.mean(torch.diag(H))
    diag = torch.arange(columns)
    H[diag, diag] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    Hinv = torch.linalg.cholesky(H, upper=True)
    scale = zero = None
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if (i1 + i) % group_size == 0:
                scale, zero = _params(W[:, (i1 + i):(i1 + i + group_size)], maxq)
            q = _quantize(w.unsqueeze(1), scale, zero, maxq).flatten()
            Q1[:, i] = q
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        Q[:, i1:i2] = Q1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    if actorder:
        Q = Q[:, invperm]
    return Q.numpy(), time.perf_counter() - start
