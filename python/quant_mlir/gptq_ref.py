"""Float64 numpy reference of RTN and GPTQ (Frantar et al., arXiv 2210.17323).

Written from the paper and the reference implementation (IST-DASLab/gptq,
gptq.py `fasterquant` and quant.py `Quantizer`; AutoGPTQ/GPTQModel for
static groups and g_idx), independently of the C++ code in lib/Quant, which
the lit test test/Quant/gptq-vs-numpy.py checks against it.

Layouts: W is [N, K] (nn.Linear: out x in), H is [K, K]. Results, as
quant-layer writes them: q [K, N] codes, scales [G, N] float32, zeros [G, N]
int32, g_idx [K] int32 (None unless act-order).

Conventions shared with the C++ code, where the reference leaves a choice:
  * the scale is rounded to float32 (its stored precision) right after
    find_params, and that grid is the one used for codes and error feedback;
    zero = round(-xmin / scale) uses the unrounded float64 scale;
  * act-order sorts diag(H) descending with a *stable* sort (ties keep
    ascending index order; torch.argsort(descending=True) is not stable);
  * H is symmetrized as (H + H^T) / 2.
"""
import numpy as np


def maxq(bits):
    return (1 << bits) - 1


def find_params(x, bits, sym):
    """quant.py Quantizer.find_params(perchannel=True) on rows of x [N, C]:
    one (scale, zero) per row."""
    x = np.asarray(x, dtype=np.float64)
    q = maxq(bits)
    xmin = np.minimum(x.min(axis=1), 0.0)
    xmax = np.maximum(x.max(axis=1), 0.0)
    if sym:
        xmax = np.maximum(np.abs(xmin), xmax)
        neg = xmin < 0
        xmin[neg] = -xmax[neg]
    both_zero = (xmin == 0) & (xmax == 0)
    xmin[both_zero] = -1.0
    xmax[both_zero] = +1.0
    scale = (xmax - xmin) / q
    if sym:
        zero = np.full(scale.shape, (q + 1) // 2, dtype=np.int64)
    else:
        zero = np.round(-xmin / scale).astype(np.int64)
    scale = scale.astype(np.float32)
    scale[scale == 0] = np.float32(np.finfo(np.float32).smallest_subnormal)
    return scale.astype(np.float64), zero


def quantize(x, scale, zero, bits):
    """Codes clamp(round(x / scale) + zero, 0, maxq); round = half to even."""
    return np.clip(np.round(x / scale) + zero, 0, maxq(bits)).astype(np.int64)


def dequantize(q, scale, zero):
    return scale * (q - zero)


def rtn(W, bits, group_size, sym, act_order=False):
    """Round-to-nearest: find_params + quantize per row and group of W, no
    error feedback. act_order only adds the identity g_idx (no H)."""
    W = np.asarray(W, dtype=np.float64)
    N, K = W.shape
    gs = K if group_size == -1 else group_size
    G = K // gs
    q = np.zeros((N, K), dtype=np.int64)
    scales = np.zeros((G, N))
    zeros = np.zeros((G, N), dtype=np.int64)
    for g in range(G):
        cols = slice(g * gs, (g + 1) * gs)
        s, z = find_params(W[:, cols], bits, sym)
        scales[g], zeros[g] = s, z
        q[:, cols] = quantize(W[:, cols], s[:, None], z[:, None], bits)
    g_idx = (np.arange(K) // gs).astype(np.int32) if act_order else None
    return pack_result(q, scales, zeros, g_idx)


def pack_result(q_nk, scales, zeros, g_idx):
    return {
        "q": np.ascontiguousarray(q_nk.T).astype(np.uint8),
        "scales": scales.astype(np.float32),
        "zeros": zeros.astype(np.int32),
        "g_idx": g_idx,
    }


def dead(H, W):
    """Dead inputs (diag H == 0): H_ii = 1, W[:, i] = 0 (in place)."""
    d = np.diag(H) == 0
    H[d, d] = 1.0
    W[:, d] = 0.0


def act_order_perm(H):
    """Columns by diag(H) descending, stable."""
    return np.argsort(-np.diag(H), kind="stable")


def damp(H, percdamp):
    """H + lambda I, lambda = percdamp * mean(diag H) (in place)."""
    H[np.diag_indices_from(H)] += percdamp * np.mean(np.diag(H))


def Hinv(H):
    """Upper Cholesky factor U of H^-1 (H^-1 = U^T U), as the reference's
    cholesky -> cholesky_inverse -> cholesky(upper=True)."""
    L = np.linalg.cholesky(H)  # raises LinAlgError unless positive definite
    Linv = np.linalg.inv(L)
    Hi = Linv.T @ Linv  # (L L^T)^-1
    return np.linalg.cholesky(Hi).T


def g_idx(perm, group_size, K, static_groups):
    """g_idx[perm[i]] = i // group_size; static groups: k // group_size."""
    gs = K if group_size == -1 else group_size
    if static_groups or group_size == -1:
        return (np.arange(K) // gs).astype(np.int32)
    out = np.empty(K, dtype=np.int32)
    out[perm] = np.arange(K) // gs
    return out


def gptq(W, H, bits, group_size, sym, act_order=False, static_groups=False,
         percdamp=0.01, blocksize=128):
    """GPTQ, Algorithm 1 with lazy batches of `blocksize` columns.

    Returns the same dict as rtn() plus "x_over_scale" [K, N], the value
    x / scale each code was rounded from (for spotting rounding ties)."""
    W = np.array(W, dtype=np.float64)
    H = np.array(H, dtype=np.float64)
    H = 0.5 * (H + H.T)
    N, K = W.shape
    per_channel = group_size == -1
    gs = K if per_channel else group_size
    G = K // gs
    static_groups = static_groups and not per_channel
    scales = np.zeros((G, N))
    zeros = np.zeros((G, N), dtype=np.int64)

    if per_channel:  # before the dead-column fix, as the reference
        scales[0], zeros[0] = find_params(W, bits, sym)
    dead(H, W)
    if static_groups:
        for g in range(G):
            scales[g], zeros[g] = find_params(W[:, g * gs:(g + 1) * gs], bits, sym)
    perm = act_order_perm(H) if act_order else np.arange(K)
    W = W[:, perm]
    H = H[perm][:, perm]
    damp(H, percdamp)
    U = Hinv(H)

    def slot(i):
        if per_channel:
            return 0
        return perm[i] // gs if static_groups else i // gs

    Q = np.zeros((N, K), dtype=np.int64)
    X = np.zeros((N, K))
    for i1 in range(0, K, blocksize):
        i2 = min(i1 + blocksize, K)
        W1 = W[:, i1:i2].copy()
        Err1 = np.zeros_like(W1)
        U1 = U[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = i1 + i
            if not per_channel and not static_groups and col % gs == 0:
                # the reference reads W, not W1: the block-start weights
                scales[col // gs], zeros[col // gs] = find_params(
                    W[:, col:col + gs], bits, sym)
            s, z = scales[slot(col)], zeros[slot(col)]
            w = W1[:, i]
            X[:, col] = w / s
            q = quantize(w, s, z, bits)
            Q[:, col] = q
            err = (w - dequantize(q, s, z)) / U1[i, i]
            W1[:, i:] -= np.outer(err, U1[i, i:])
            Err1[:, i] = err
        W[:, i2:] -= Err1 @ U[i1:i2, i2:]

    invperm = np.argsort(perm)
    out = pack_result(Q[:, invperm], scales, zeros,
                      g_idx(perm, group_size, K, static_groups) if act_order else None)
    out["x_over_scale"] = np.ascontiguousarray(X[:, invperm].T)
    return out


def dequantize_result(r, bits, group_size):
    """w [N, K] float64 from a result dict (wq.dequantize's semantics)."""
    q = r["q"].astype(np.int64)
    K = q.shape[0]
    if r["g_idx"] is not None:
        g = np.asarray(r["g_idx"], dtype=np.int64)
    else:
        g = np.arange(K) // (K if group_size == -1 else group_size)
    s = r["scales"].astype(np.float64)
    z = r["zeros"].astype(np.int64)
    return ((q - z[g, :]) * s[g, :]).T
