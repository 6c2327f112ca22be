"""Float64 numpy reference for the packed-weight layouts of the wq dialect.

Independent of the C++ code: tests pack random codes here, run the compiler's
lowering and compare against `dequantize` below. Layouts (docs/design.md):
  gptq: codes [K*bits/32, N] int32, a little-endian bit stream along K;
        zeros [groups, N*bits/32] int32, the same stream along N.
  awq:  codes [K, N/8] int32, 4-bit, columns 0,2,4,6,1,3,5,7 in nibbles 0..7;
        zeros [groups, N/8] likewise.
"""
import numpy as np

AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]


def pack_stream(q, bits, axis):
    """Pack integer codes along `axis` into int32 words as one bit stream."""
    q = np.moveaxis(np.asarray(q, dtype=np.int64), axis, 0)
    length = q.shape[0]
    assert (length * bits) % 32 == 0, "stream length must fill whole words"
    words = np.zeros((length * bits // 32,) + q.shape[1:], dtype=np.uint64)
    for i in range(length):
        pos = i * bits
        w, off = divmod(pos, 32)
        words[w] |= (q[i].astype(np.uint64) << np.uint64(off)) & np.uint64(0xFFFFFFFF)
        if off + bits > 32:  # the field straddles into the next word
            words[w + 1] |= q[i].astype(np.uint64) >> np.uint64(32 - off)
    return np.moveaxis(words.astype(np.uint32).view(np.int32), 0, axis)


def unpack_stream(words, bits, length, axis):
    words = np.moveaxis(np.asarray(words).view(np.uint32).astype(np.uint64), axis, 0)
    out = np.zeros((length,) + words.shape[1:], dtype=np.int64)
    mask = (1 << bits) - 1
    for i in range(length):
        w, off = divmod(i * bits, 32)
        v = words[w] >> np.uint64(off)
        if off + bits > 32:
            v |= words[w + 1] << np.uint64(32 - off)
        out[i] = (v & np.uint64(mask)).astype(np.int64)
    return np.moveaxis(out, 0, axis)


def pack_awq(q):
    """AutoAWQ's GEMM packing of 4-bit codes [R, N] into [R, N/8]."""
    q = np.asarray(q, dtype=np.uint32)
    rows, n = q.shape
    out = np.zeros((rows, n // 8), dtype=np.uint32)
    for col in range(n // 8):
        for i, c in enumerate(AWQ_ORDER):
            out[:, col] |= q[:, col * 8 + c] << np.uint32(4 * i)
    return out.view(np.int32)


def unpack_awq(words):
    words = np.asarray(words).view(np.uint32)
    rows, nw = words.shape
    out = np.zeros((rows, nw * 8), dtype=np.int64)
    for col in range(nw):
        for i, c in enumerate(AWQ_ORDER):
            out[:, col * 8 + c] = (words[:, col] >> np.uint32(4 * i)) & 15
    return out


def dequantize(codes, scales, zeros, g_idx, bits, group_size, packing, k):
    """w[N, K] in float64 from packed codes, as wq.dequantize defines it."""
    scales = np.asarray(scales, dtype=np.float64)
    n = scales.shape[1]
    if packing == "gptq":
        q = unpack_stream(codes, bits, k, axis=0)  # [K, N]
    else:
        q = unpack_awq(codes)  # [K, N]
    if zeros is None:
        z = np.full(scales.shape, 1 << (bits - 1), dtype=np.int64)
    elif packing == "gptq":
        z = unpack_stream(zeros, bits, n, axis=1)
    else:
        z = unpack_awq(zeros)
    if g_idx is not None:
        g = np.asarray(g_idx, dtype=np.int64)
    elif group_size == -1:
        g = np.zeros(k, dtype=np.int64)
    else:
        g = np.arange(k) // group_size
    w = (q - z[g, :]) * scales[g, :]  # [K, N]
    return w.T
