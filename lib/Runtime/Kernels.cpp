//===- Kernels.cpp - CPU kernels that lowered code calls ---------------------===//
// quant_contract_f32: C += A * B over up to two batch and two M dims with
// arbitrary strides, through cblas_sgemm. quant_qlinear_f32: a gptq-packed
// linear layer, dequantizing a block of K rows into an f32 buffer and
// multiplying it with cblas_sgemm (the [N, K] float weight never exists).
// quant_vcontract_f32 and the qlinear vector flag dispatch to the vector
// family (KernelsVector.cpp). Emitted by convert-linalg-to-blas /
// convert-wq-to-cpu-kernels; registered in the JIT by CPUModule::compile.
// See docs/performance-cpu.md.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Runtime/Kernels.h"
#include "KernelsInternal.h"

#include <cblas.h>
#include <malloc.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

using namespace quant_mlir::kernels::detail;

namespace {

/// Row-major M x K operand with strides (sm, sk): a BLAS layout if one fits.
struct Layout {
  bool ok = false;
  CBLAS_TRANSPOSE trans = CblasNoTrans;
  i64 ld = 0;
};

Layout layoutFor(i64 rows, i64 cols, i64 sr, i64 sc) {
  Layout l;
  if ((sc == 1 || cols == 1) && (rows == 1 || sr >= std::max<i64>(cols, 1))) {
    l.ok = true;
    l.trans = CblasNoTrans;
    l.ld = rows == 1 ? std::max<i64>(cols, 1) : sr;
  } else if ((sr == 1 || rows == 1) &&
             (cols == 1 || sc >= std::max<i64>(rows, 1))) {
    l.ok = true;
    l.trans = CblasTrans;
    l.ld = cols == 1 ? std::max<i64>(rows, 1) : sc;
  }
  return l;
}

/// Copies a strided rows x cols matrix to a dense row-major buffer.
void pack(const float *src, i64 rows, i64 cols, i64 sr, i64 sc, float *dst) {
  for (i64 r = 0; r < rows; ++r)
    for (i64 c = 0; c < cols; ++c)
      dst[r * cols + c] = src[r * sr + c * sc];
}

/// C[M,N] += A[M,K] * B[K,N], all strided.
void gemm(i64 M, i64 N, i64 K, const float *a, i64 sam, i64 sak,
          const float *b, i64 sbk, i64 sbn, float *c, i64 scm, i64 scn) {
  if (M <= 0 || N <= 0 || K <= 0)
    return;
  if (M * N * K < kSmallGemm) {
    smallGemm(M, N, K, a, sam, sak, b, sbk, sbn, c, scm, scn);
    return;
  }
  Layout lc = layoutFor(M, N, scm, scn);
  if (!lc.ok || lc.trans != CblasNoTrans) {
    // C^T = B^T A^T when C is column-major; otherwise a dense temporary.
    if (lc.ok) {
      gemm(N, M, K, b, sbn, sbk, a, sak, sam, c, scn, scm);
      return;
    }
    std::vector<float> tmp(M * N);
    pack(c, M, N, scm, scn, tmp.data());
    gemm(M, N, K, a, sam, sak, b, sbk, sbn, tmp.data(), N, 1);
    for (i64 m = 0; m < M; ++m)
      for (i64 n = 0; n < N; ++n)
        c[m * scm + n * scn] = tmp[m * N + n];
    return;
  }
  std::vector<float> packedA, packedB;
  Layout la = layoutFor(M, K, sam, sak);
  if (!la.ok) {
    packedA.resize(M * K);
    pack(a, M, K, sam, sak, packedA.data());
    a = packedA.data();
    la = {true, CblasNoTrans, K};
  }
  Layout lb = layoutFor(K, N, sbk, sbn);
  if (!lb.ok) {
    packedB.resize(K * N);
    pack(b, K, N, sbk, sbn, packedB.data());
    b = packedB.data();
    lb = {true, CblasNoTrans, N};
  }
  i64 chunks = (N + kChunkN - 1) / kChunkN;
  parallelChunks(chunks, M * N * K, [&](i64 chunk) {
    i64 n0 = chunk * kChunkN, nc = std::min(kChunkN, N - n0);
    const float *bc = lb.trans == CblasNoTrans ? b + n0 : b + n0 * lb.ld;
    cblas_sgemm(CblasRowMajor, la.trans, lb.trans, int(M), int(nc), int(K),
                1.0f, a, int(la.ld), bc, int(lb.ld), 1.0f, c + n0,
                int(lc.ld));
  });
}

} // namespace

void quant_mlir::kernels::detail::blasGemm(i64 M, i64 N, i64 K,
                                           const float *a, i64 sam, i64 sak,
                                           const float *b, i64 sbk, i64 sbn,
                                           float *c, i64 scm, i64 scn) {
  gemm(M, N, K, a, sam, sak, b, sbk, sbn, c, scm, scn);
}

namespace {
/// Field `idx` of `bits` bits of the little-endian bit stream whose 32-bit
/// words are `words[w * wordStride]` (numWords of them).
inline uint32_t field(const int32_t *words, i64 wordStride, i64 numWords,
                      i64 idx, unsigned bits) {
  i64 bit = idx * bits;
  i64 w = bit / 32;
  unsigned off = unsigned(bit % 32);
  uint64_t v = uint32_t(words[w * wordStride]);
  if (off + bits > 32 && w + 1 < numWords)
    v |= uint64_t(uint32_t(words[(w + 1) * wordStride])) << 32;
  return uint32_t(v >> off) & ((1u << bits) - 1);
}

} // namespace

void quant_mlir::kernels::detail::dequantBlock(
    i64 N, i64 K, unsigned bits, i64 groupSize, i64 groups,
    const int32_t *codes, const float *scales, const int32_t *zeros,
    const int32_t *gIdx, i64 k0, i64 kb, i64 n0, i64 nc, float *dst,
    i64 dstStride, std::vector<float> &zeroRow) {
  const i64 codeRows = K * bits / 32;
  const i64 zeroWords = N * bits / 32;
  const uint32_t mask = (1u << bits) - 1;
  i64 currentGroup = -1;
  for (i64 kk = 0; kk < kb; ++kk) {
    i64 k = k0 + kk;
    i64 g = gIdx ? i64(gIdx[k]) : groupSize > 0 ? k / groupSize : 0;
    g = std::clamp<i64>(g, 0, groups - 1);
    if (g != currentGroup) {
      currentGroup = g;
      for (i64 n = 0; n < nc; ++n)
        zeroRow[n] = zeros ? float(field(zeros + g * zeroWords, 1, zeroWords,
                                         n0 + n, bits))
                           : float(1u << (bits - 1));
    }
    const float *s = scales + g * N + n0;
    const float *z = zeroRow.data();
    float *out = dst + kk * dstStride;
    i64 bit = k * bits;
    i64 w = bit / 32;
    unsigned off = unsigned(bit % 32);
    const int32_t *row = codes + w * N + n0;
    if (off + bits <= 32) {
      for (i64 n = 0; n < nc; ++n) {
        uint32_t q = (uint32_t(row[n]) >> off) & mask;
        out[n] = (float(int32_t(q)) - z[n]) * s[n];
      }
    } else {
      const int32_t *next = w + 1 < codeRows ? row + N : nullptr;
      for (i64 n = 0; n < nc; ++n) {
        uint64_t v = uint32_t(row[n]);
        if (next)
          v |= uint64_t(uint32_t(next[n])) << 32;
        uint32_t q = uint32_t(v >> off) & mask;
        out[n] = (float(int32_t(q)) - z[n]) * s[n];
      }
    }
  }
}

namespace {
struct Dim {
  i64 role, size, sa, sb, sc;
};

/// Folds adjacent dims of one role that every operand indexing them lays
/// out densely (outer stride = inner size * inner stride).
void foldDims(std::vector<Dim> &dims) {
  auto dense = [](const Dim &outer, const Dim &inner) {
    return outer.sa == inner.size * inner.sa &&
           outer.sb == inner.size * inner.sb &&
           outer.sc == inner.size * inner.sc;
  };
  bool changed = true;
  while (changed) {
    changed = false;
    for (size_t i = 0; i < dims.size() && !changed; ++i)
      for (size_t j = 0; j < dims.size() && !changed; ++j) {
        if (i == j || dims[i].role != dims[j].role || !dense(dims[i], dims[j]))
          continue;
        dims[j].size *= dims[i].size; // i is outer, j inner
        dims.erase(dims.begin() + i);
        changed = true;
      }
  }
}

/// Runs the contraction: the innermost-strided remaining M, N, K dims make
/// the GEMM, every other dim is a loop around it.
void contract(std::vector<Dim> dims, const float *A, const float *B,
              float *C, bool vector) {
  for (const Dim &d : dims)
    if (d.size <= 0)
      return;
  dims.erase(std::remove_if(dims.begin(), dims.end(),
                            [](const Dim &d) { return d.size == 1; }),
             dims.end());
  foldDims(dims);
  // Pick one dim per GEMM role: the one with the smallest nonzero stride in
  // the operand that must be contiguous-ish (A for K, B for N, C for M).
  int pick[4] = {-1, -1, -1, -1};
  for (size_t i = 0; i < dims.size(); ++i) {
    const Dim &d = dims[i];
    if (d.role == 0)
      continue;
    i64 key = d.role == 1 ? d.sc : d.role == 2 ? d.sc : d.sa;
    int &p = pick[d.role];
    if (p < 0) {
      p = int(i);
      continue;
    }
    const Dim &q = dims[p];
    i64 qkey = q.role == 1 ? q.sc : q.role == 2 ? q.sc : q.sa;
    if (key < qkey)
      p = int(i);
  }
  Dim none{0, 1, 0, 0, 0};
  const Dim &m = pick[1] >= 0 ? dims[pick[1]] : none;
  const Dim &n = pick[2] >= 0 ? dims[pick[2]] : none;
  const Dim &k = pick[3] >= 0 ? dims[pick[3]] : none;
  std::vector<Dim> loops;
  for (size_t i = 0; i < dims.size(); ++i)
    if (int(i) != pick[1] && int(i) != pick[2] && int(i) != pick[3])
      loops.push_back(dims[i]);
  i64 count = 1;
  for (const Dim &l : loops)
    count *= l.size;
  auto one = [&](i64 flat) {
    i64 oa = 0, ob = 0, oc = 0;
    for (size_t l = loops.size(); l-- > 0;) {
      i64 i = flat % loops[l].size;
      flat /= loops[l].size;
      oa += i * loops[l].sa;
      ob += i * loops[l].sb;
      oc += i * loops[l].sc;
    }
    (vector ? quant_mlir::kernels::vcontractF32 : gemm)(
        m.size, n.size, k.size, A + oa, m.sa, k.sa, B + ob, k.sb, n.sb,
        C + oc, m.sc, n.sc);
  };
  // Attention's per-head GEMMs have 1-2 column chunks each (PV: N = the
  // head dim): the heads are the tasks then, each GEMM on one thread (its
  // nested parallelChunks runs serially). Every GEMM is the same sequence
  // of operations either way, so the result does not depend on the split.
  const i64 chunks = (n.size + kChunkN - 1) / kChunkN;
  if (count > 1 && chunks <= 4) {
    parallelChunks(count, count * m.size * n.size * k.size, one);
    return;
  }
  for (i64 i = 0; i < count; ++i)
    one(i);
}
} // namespace

namespace {
void contractEntry(bool vector, const i64 *args) {
  std::vector<Dim> dims;
  for (i64 d = 0, n = std::clamp<i64>(args[0], 0, 8); d < n; ++d) {
    const i64 *slot = args + 7 + 5 * d;
    dims.push_back({slot[0], slot[1], slot[2], slot[3], slot[4]});
  }
  contract(std::move(dims), reinterpret_cast<const float *>(args[1]) + args[2],
           reinterpret_cast<const float *>(args[3]) + args[4],
           reinterpret_cast<float *>(args[5]) + args[6], vector);
}
} // namespace

#define QUANT_CONTRACT_PARAMS                                                  \
  i64 numDims, i64 aPtr, i64 aOff, i64 bPtr, i64 bOff, i64 cPtr, i64 cOff,     \
      i64 role0, i64 size0, i64 sa0, i64 sb0, i64 sc0, i64 role1, i64 size1,   \
      i64 sa1, i64 sb1, i64 sc1, i64 role2, i64 size2, i64 sa2, i64 sb2,       \
      i64 sc2, i64 role3, i64 size3, i64 sa3, i64 sb3, i64 sc3, i64 role4,     \
      i64 size4, i64 sa4, i64 sb4, i64 sc4, i64 role5, i64 size5, i64 sa5,     \
      i64 sb5, i64 sc5, i64 role6, i64 size6, i64 sa6, i64 sb6, i64 sc6,       \
      i64 role7, i64 size7, i64 sa7, i64 sb7, i64 sc7
#define QUANT_CONTRACT_ARGS                                                    \
  {numDims, aPtr,  aOff,  bPtr,  bOff,  cPtr,  cOff,  role0, size0, sa0,       \
   sb0,     sc0,   role1, size1, sa1,   sb1,   sc1,   role2, size2, sa2,       \
   sb2,     sc2,   role3, size3, sa3,   sb3,   sc3,   role4, size4, sa4,       \
   sb4,     sc4,   role5, size5, sa5,   sb5,   sc5,   role6, size6, sa6,       \
   sb6,     sc6,   role7, size7, sa7,   sb7,   sc7}

extern "C" void quant_contract_f32(QUANT_CONTRACT_PARAMS) {
  const i64 args[] = QUANT_CONTRACT_ARGS;
  contractEntry(/*vector=*/false, args);
}

extern "C" void quant_vcontract_f32(QUANT_CONTRACT_PARAMS) {
  const i64 args[] = QUANT_CONTRACT_ARGS;
  contractEntry(/*vector=*/true, args);
}

extern "C" void quant_qlinear_f32(i64 m, i64 n, i64 k, i64 bits,
                                  i64 groupSize, i64 groups, i64 actOrder,
                                  i64 flags, i64 xPtr, i64 codesPtr,
                                  i64 scalesPtr, i64 zerosPtr, i64 gIdxPtr,
                                  i64 biasPtr, i64 outPtr) {
  const float *x = reinterpret_cast<const float *>(xPtr);
  const int32_t *codes = reinterpret_cast<const int32_t *>(codesPtr);
  const float *scales = reinterpret_cast<const float *>(scalesPtr);
  const int32_t *zeros = reinterpret_cast<const int32_t *>(zerosPtr);
  const int32_t *gIdx =
      actOrder ? reinterpret_cast<const int32_t *>(gIdxPtr) : nullptr;
  const float *bias = reinterpret_cast<const float *>(biasPtr);
  float *y = reinterpret_cast<float *>(outPtr);
  (flags & 1 ? quant_mlir::kernels::vqlinearF32
              : quant_mlir::kernels::qlinearF32)(m, n, k, unsigned(bits),
                                                 groupSize, groups, x, codes,
                                                 scales, zeros, gIdx, bias, y);
}

namespace quant_mlir::kernels {
void configureAllocator() {
#if defined(__GLIBC__) && defined(M_MMAP_THRESHOLD)
  static bool done = [] {
    // Lowered code mallocs and frees every intermediate of a forward; with
    // glibc's defaults the big ones are fresh mmaps (page faults on every
    // run) and freed tops are trimmed. Keep them in the heap for reuse.
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    mallopt(M_TOP_PAD, 64 << 20);
    return true;
  }();
  (void)done;
#endif
}

int64_t qlinearBlockK(int64_t n, int64_t groupSize) {
  // Keep the dequantized block near 512 KiB (L2) and a multiple of the group.
  int64_t kb = std::max<int64_t>(32, (128 * 1024) / std::max<int64_t>(n, 1));
  if (groupSize > 0)
    kb = std::max<int64_t>(groupSize, kb / groupSize * groupSize);
  return std::min<int64_t>(kb, 1024);
}

void qlinearF32(int64_t m, int64_t n, int64_t k, unsigned bits,
                int64_t groupSize, int64_t groups, const float *x,
                const int32_t *codes, const float *scales,
                const int32_t *zeros, const int32_t *gIdx, const float *bias,
                float *y) {
  for (i64 r = 0; r < m; ++r)
    for (i64 c = 0; c < n; ++c)
      y[r * n + c] = bias ? bias[c] : 0.0f;
  if (m == 0 || n == 0 || k == 0)
    return;
  i64 kb = qlinearBlockK(kChunkN, groupSize);
  i64 chunks = (n + kChunkN - 1) / kChunkN;
  // Each task owns kChunkN output columns: dequantize a [kb, kChunkN] block
  // of W^T (L1/L2-sized) and accumulate it into y with one SGEMM.
  parallelChunks(chunks, m * n * k + n * k * 8, [&](i64 chunk) {
    i64 n0 = chunk * kChunkN, nc = std::min(kChunkN, n - n0);
    std::vector<float> block(std::min(kb, k) * nc), zeroRow(nc);
    for (i64 k0 = 0; k0 < k; k0 += kb) {
      i64 rows = std::min(kb, k - k0);
      dequantBlock(n, k, bits, groupSize, std::max<i64>(groups, 1), codes,
                   scales, zeros, gIdx, k0, rows, n0, nc, block.data(), nc,
                   zeroRow);
      if (m == 1)
        cblas_sgemv(CblasRowMajor, CblasTrans, int(rows), int(nc), 1.0f,
                    block.data(), int(nc), x + k0, 1, 1.0f, y + n0, 1);
      else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m),
                    int(nc), int(rows), 1.0f, x + k0, int(k), block.data(),
                    int(nc), 1.0f, y + n0, int(n));
    }
  });
}

void contractF32(int64_t m, int64_t n, int64_t k, const float *a, int64_t sam,
                 int64_t sak, const float *b, int64_t sbk, int64_t sbn,
                 float *c, int64_t scm, int64_t scn) {
  gemm(m, n, k, a, sam, sak, b, sbk, sbn, c, scm, scn);
}
} // namespace quant_mlir::kernels
