"""AWQ in float64 numpy, the reference for the wq-awq pass (shares no code with it).

Written from the paper (Lin et al., "AWQ: Activation-aware Weight Quantization",
arXiv 2306.00978, sec. 3.2: s = s_X^alpha searched on a grid, folded into the
previous op) and AutoAWQ's defaults as issue 12 lists them:
  x_mean = mean |x| per input channel; w_mean = mean over output rows of
  |w| / (group absmax + 1e-6); alpha = i / 20; duo: s = x^a / (w^(1-a) + 1e-4),
  clamp(min 1e-4), s /= sqrt(max s * min s); loss = mean squared error of the
  outputs of the group's linears (here from H = 2/n X^T X: tr(D H D^T) / 2 per
  token); clip: per row and group shrink 1, 0.95, .., 0.55 on <= 512 strided
  tokens, error = mean over tokens of the squared group partial product error;
  quantizer (pseudo_quantize_tensor): zero point: scale = max(max - min, 1e-5) /
  (2^b - 1), zero = clamp(-round(min / scale), 0, 2^b - 1); symmetric: scale =
  max(|w|, 1e-5) / (2^(b-1) - 1). Conventions shared with the project's
  numerics (docs/awq.md): scales stored as float32 and used as such, scaled
  weights rounded to float32 before quantizing, s rounded to float32 before
  folding.
"""
import numpy as np


def _groups(w, group):
    n, k = w.shape
    g = k if group == -1 else group
    return w.reshape(n, k // g, g), g


def quantize(w, bits, group, zero_point):
    """-> (dequantized float64 [N, K], codes [N, K] in [0, 2^b), scales [N, G], zeros [N, G])."""
    w = np.asarray(w, dtype=np.float32).astype(np.float64)
    n, k = w.shape
    wg, g = _groups(w, group)
    if zero_point:
        max_int = 2 ** bits - 1
        mx = wg.max(axis=2, keepdims=True)
        mn = wg.min(axis=2, keepdims=True)
        scale = np.maximum(mx - mn, 1e-5) / max_int
        scale = scale.astype(np.float32).astype(np.float64)
        zero = np.clip(-np.round(mn / scale), 0, max_int)
        q = np.clip(np.round(wg / scale) + zero, 0, max_int)
        deq = (q - zero) * scale
        codes, zeros = q, zero
    else:
        max_int = 2 ** (bits - 1) - 1
        amax = np.maximum(np.abs(wg).max(axis=2, keepdims=True), 1e-5)
        scale = (amax / max_int).astype(np.float32).astype(np.float64)
        q = np.clip(np.round(wg / scale), -max_int - 1, max_int)
        deq = q * scale
        codes, zeros = q + 2 ** (bits - 1), np.full(scale.shape, 2.0 ** (bits - 1))
    return (deq.reshape(n, k), codes.reshape(n, k).astype(np.int64),
            scale[:, :, 0], zeros[:, :, 0].astype(np.int64))


def w_mean(weights, group):
    rows = []
    for w in weights:
        wg, _ = _groups(np.abs(np.asarray(w, dtype=np.float64)), group)
        rows.append((wg / (wg.max(axis=2, keepdims=True) + 1e-6)).reshape(w.shape))
    return np.concatenate(rows, axis=0).mean(axis=0)


def candidate(x_mean, wm, ratio, duo):
    x = np.asarray(x_mean, dtype=np.float64)
    s = x ** ratio / (wm ** (1 - ratio) + 1e-4) if duo else x ** ratio
    s = np.maximum(s, 1e-4)
    s = s / np.sqrt(s.max() * s.min())
    s[~np.isfinite(s)] = 1.0
    return s


def loss(weights, s, H, bits, group, zero_point):
    total, rows = 0.0, 0
    for w in weights:
        w64 = np.asarray(w, dtype=np.float64)
        scaled = (w64 * s).astype(np.float32)
        d = w64 - quantize(scaled, bits, group, zero_point)[0] / s
        total += np.einsum("ij,jk,ik->", d, H, d) / 2
        rows += w.shape[0]
    return total / rows


def search_scale(x_mean, H, weights, bits, group, zero_point, n_grid=20, duo="true"):
    """-> (alpha, duo used, s [K], loss, history)."""
    wm = w_mean(weights, group)
    best = (None, None, None, np.inf)
    history = []
    for d in ([True] if duo == "true" else [False] if duo == "false" else [True, False]):
        for i in range(n_grid):
            s = candidate(x_mean, wm, i / n_grid, d)
            l = loss(weights, s, H, bits, group, zero_point)
            history.append(l)
            if l < best[3]:
                best = (i / n_grid, d, s, l)
    return best + (history,)


def search_clip(w, X, bits, group, zero_point, n_grid=20, max_shrink=0.5, n_tokens=512):
    """Clip thresholds [N, G] for w [N, K] on input rows X [M, K] (already / s)."""
    w = np.asarray(w, dtype=np.float32)
    n, k = w.shape
    step = max(1, X.shape[0] // n_tokens)
    X = np.asarray(X, dtype=np.float64)[::step]
    wg, g = _groups(w.astype(np.float64), group)
    xg = X.reshape(X.shape[0], k // g, g)
    org = np.einsum("tgi,ngi->ntg", xg, wg)
    org_max = np.abs(wg).max(axis=2)
    best = org_max.copy()
    min_err = np.full(org_max.shape, 1e9)
    for i in range(int(max_shrink * n_grid)):
        mv = org_max * (1 - i / n_grid)
        cur = np.clip(wg, -mv[:, :, None], mv[:, :, None]).astype(np.float32)
        q = quantize(cur.reshape(n, k), bits, group, zero_point)[0]
        out = np.einsum("tgi,ngi->ntg", xg, q.reshape(n, k // g, g))
        err = ((out - org) ** 2).mean(axis=1)
        better = err < min_err
        min_err[better] = err[better]
        best[better] = mv[better]
    return best


def apply_clip(w, t, group):
    wg, g = _groups(np.asarray(w, dtype=np.float64), group)
    return np.clip(wg, -t[:, :, None], t[:, :, None]).astype(np.float32).reshape(w.shape)


def search_scale_module(x_mean, module, X, weights, bits, group, zero_point, n_grid=20, duo="true"):
    """AutoAWQ's _search_best_scale with module2inspect: the loss of a
    candidate is mean((module(X, W) - module(X, Q(W s) / s))^2) over the
    module output's elements, `module(X, ws)` computing the inspected module
    with the group's weights `ws` (every other weight float).
    -> (alpha, duo used, s [K], loss, history)."""
    wm = w_mean(weights, group)
    w64 = [np.asarray(w, dtype=np.float64) for w in weights]
    ref = module(X, w64)
    best = (None, None, None, np.inf)
    history = []
    for d in ([True] if duo == "true" else [False] if duo == "false" else [True, False]):
        for i in range(n_grid):
            s = candidate(x_mean, wm, i / n_grid, d)
            qw = [quantize((w * s).astype(np.float32), bits, group, zero_point)[0] / s for w in w64]
            l = float(((module(X, qw) - ref) ** 2).mean())
            history.append(l)
            if l < best[3]:
                best = (i / n_grid, d, s, l)
    return best + (history,)
