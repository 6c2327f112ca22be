//===- KernelsVector.cpp - GEMM drivers around the generated micro-kernels -===//
// The vector kernel family: quant_vcontract_f32 / quant_qlinear_f32 with the
// vector flag. Packs activation tiles (mr rows, k-major) and weight panels
// (nr columns; strided f32 or dequantized from the gptq stream) and calls the
// micro-kernel that MicroKernels.cpp generates and JIT-compiles for the host
// on every mr x nr tile; decode (M below the tile) runs on the generated
// GEMVs, f32 and packed, which stream each weight once. See
// docs/performance-cpu.md.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Runtime/Kernels.h"
#include "KernelsInternal.h"

#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>

using namespace quant_mlir::kernels;
using namespace quant_mlir::kernels::detail;

namespace {
GemmMicroKernel registered;
QGemvMicroKernel registeredGemv;
F32GemvMicroKernel registeredF32Gemv;

/// K rows per packed block: the B panels of one chunk (kKc x kChunkN floats,
/// 128 KiB) stay in L2, one A tile (kKc x mr) in L1.
constexpr i64 kKc = 256;

void callKernel(const GemmMicroKernel &uk, const float *a, const float *b,
                float *c, i64 ldc, i64 kc) {
  // The kernel reads through memref<?xf32> descriptors; sizes are not
  // checked by the generated code, so any upper bound does.
  constexpr i64 big = std::numeric_limits<int32_t>::max();
  auto *pa = const_cast<float *>(a), *pb = const_cast<float *>(b);
  uk.fn(pa, pa, 0, big, 1, pb, pb, 0, big, 1, c, c, 0, big, 1, 0, kc, ldc);
}

void callPack(const GemmMicroKernel &uk, const float *src, i64 ld, float *dst,
              i64 dstLd, i64 blocks) {
  constexpr i64 big = std::numeric_limits<int32_t>::max();
  auto *ps = const_cast<float *>(src);
  uk.packT(ps, ps, 0, big, 1, dst, dst, 0, big, 1, 0, ld, 0, dstLd, blocks);
}

/// A[M, K] (strided) as [ceil(M / mr)][K][mr], rows past M zero, in the
/// calling thread's buffer (reused across calls: no allocation and no
/// zeroing of what is overwritten). Row-major A with vl == 2 * mr (AVX-512:
/// 16 lanes, 8-row tiles) goes through the register transpose, two tiles
/// at a time: a scalar copy writes mr floats apart and costs ~4% of a
/// 100M forward.
const float *packA(const GemmMicroKernel &uk, i64 M, i64 K, const float *a,
                   i64 sam, i64 sak) {
  const i64 mr = uk.mr;
  thread_local std::vector<float> packed, pair;
  i64 blocks = (M + mr - 1) / mr;
  packed.resize(blocks * K * mr);
  const bool paired = sak == 1 && uk.packT && uk.vl == 2 * mr;
  const i64 kFull = paired ? K / uk.vl * uk.vl : 0;
  if (kFull > 0)
    pair.resize(kFull * 2 * mr);
  for (i64 mb = 0; mb < blocks; ++mb) {
    float *dst = packed.data() + mb * K * mr;
    if (kFull > 0 && mb % 2 == 0 && M - mb * mr >= 2 * mr) {
      callPack(uk, a + mb * mr * sam, sam, pair.data(), 2 * mr, kFull / uk.vl);
      float *next = dst + K * mr;
      for (i64 k = 0; k < kFull; ++k) {
        std::memcpy(dst + k * mr, pair.data() + k * 2 * mr, mr * sizeof(float));
        std::memcpy(next + k * mr, pair.data() + k * 2 * mr + mr,
                    mr * sizeof(float));
      }
      // The k tail of both tiles.
      for (i64 i = 0; i < 2 * mr; ++i) {
        const float *src = a + (mb * mr + i) * sam;
        float *d = i < mr ? dst + i : next + (i - mr);
        for (i64 k = kFull; k < K; ++k)
          d[k * mr] = src[k * sak];
      }
      ++mb;
      continue;
    }
    const i64 rows = std::min(mr, M - mb * mr);
    for (i64 i = 0; i < rows; ++i) {
      const float *src = a + (mb * mr + i) * sam;
      for (i64 k = 0; k < K; ++k)
        dst[k * mr + i] = src[k * sak];
    }
    for (i64 i = rows; i < mr; ++i)
      for (i64 k = 0; k < K; ++k)
        dst[k * mr + i] = 0.0f;
  }
  return packed.data();
}

/// Packs rows k0.. (rows of them) and columns j0..j0+cols of B (strides
/// sbk, sbn) into a [rows][nr] panel, zero past cols. B stored transposed
/// (sbk == 1: W[N, K] of a linear layer, K^T in attention) goes through
/// the generated vl x vl register transpose: a column-by-column gather
/// reads nr rows of W at a stride of K floats at once, which for K = 2048
/// maps every row to the same L1 set and misses on nearly every load.
void packPanelF32(const GemmMicroKernel &uk, const float *b, i64 sbk, i64 sbn,
                  i64 k0, i64 rows, i64 j0, i64 cols, float *panel) {
  const i64 nr = uk.nr;
  i64 done = 0;
  if (sbk == 1 && uk.packT && cols == nr && uk.vl > 0 && nr % uk.vl == 0) {
    const i64 vl = uk.vl;
    done = rows / vl * vl;
    if (done > 0)
      for (i64 s = 0; s < nr / vl; ++s)
        callPack(uk, b + (j0 + s * vl) * sbn + k0, sbn, panel + s * vl, nr,
                 done / vl);
  }
  if (sbk == 1 && sbn != 1) {
    // The rest (k tail, edge panels): one row of W at a time, contiguous.
    for (i64 kk = done; kk < rows; ++kk)
      std::fill(panel + kk * nr + cols, panel + (kk + 1) * nr, 0.0f);
    for (i64 j = 0; j < cols; ++j) {
      const float *src = b + (j0 + j) * sbn + k0;
      for (i64 kk = done; kk < rows; ++kk)
        panel[kk * nr + j] = src[kk];
    }
    return;
  }
  for (i64 kk = done; kk < rows; ++kk) {
    const float *src = b + (k0 + kk) * sbk + j0 * sbn;
    float *dst = panel + kk * nr;
    if (sbn == 1)
      std::memcpy(dst, src, cols * sizeof(float));
    else
      for (i64 j = 0; j < cols; ++j)
        dst[j] = src[j * sbn];
    std::fill(dst + cols, dst + nr, 0.0f);
  }
}

/// C[M, N] += Ap * B over fixed kChunkN-column chunks. packB(k0, rows, j0,
/// cols, panel) writes the [rows][nr] panel of B rows k0.. and columns
/// j0..j0+cols (cols <= nr; the rest of each row must be finite).
template <typename PackB>
void runPanels(const GemmMicroKernel &uk, i64 M, i64 N, i64 K, i64 kc,
               const float *ap, float *c, i64 scm, i64 scn, i64 work,
               const PackB &packB) {
  const i64 mr = uk.mr, nr = uk.nr;
  const i64 mBlocks = (M + mr - 1) / mr;
  const i64 chunks = (N + kChunkN - 1) / kChunkN;
  parallelChunks(chunks, work, [&](i64 chunk) {
    const i64 n0 = chunk * kChunkN, nc = std::min(kChunkN, N - n0);
    const i64 panels = (nc + nr - 1) / nr;
    // One B panel at a time, packed and then used by every A tile while it
    // is in L1 (kc x nr floats: 32 KiB with AVX-512); the A tiles (kc x mr
    // each) stream from L2. packB writes every element: no zeroing needed.
    thread_local std::vector<float> bp, tile;
    bp.resize(std::min(kc, K) * nr);
    tile.resize(mr * nr);
    for (i64 k0 = 0; k0 < K; k0 += kc) {
      const i64 rows = std::min(kc, K - k0);
      for (i64 p = 0; p < panels; ++p) {
        const i64 j0 = n0 + p * nr, cols = std::min(nr, nc - p * nr);
        packB(k0, rows, j0, cols, bp.data());
        const float *b = bp.data();
        for (i64 mb = 0; mb < mBlocks; ++mb) {
          const i64 m0 = mb * mr, mrows = std::min(mr, M - m0);
          const float *a = ap + (mb * K + k0) * mr;
          if (mrows == mr && cols == nr && scn == 1) {
            callKernel(uk, a, b, c + m0 * scm + j0, scm, rows);
            continue;
          }
          // Edge tile: the same sums (0 + acc == acc), added afterwards.
          std::fill(tile.begin(), tile.end(), 0.0f);
          callKernel(uk, a, b, tile.data(), nr, rows);
          for (i64 i = 0; i < mrows; ++i)
            for (i64 j = 0; j < cols; ++j)
              c[(m0 + i) * scm + (j0 + j) * scn] += tile[i * nr + j];
        }
      }
    }
  });
}

void callF32Gemv(F32GemvMicroKernel::Fn fn, const float *a, const float *b,
                 float *out, i64 lda, i64 ldb, i64 steps, i64 pf) {
  constexpr i64 big = std::numeric_limits<int32_t>::max();
  auto *pa = const_cast<float *>(a), *pb = const_cast<float *>(b);
  fn(pa, pa, 0, big, 1, pb, pb, 0, big, 1, out, out, 0, big, 1, lda, ldb,
     steps, pf);
}

/// Floats ahead along each weight row that the dot-form GEMV prefetches
/// (4 KiB: about one row of a 1B layer's worth of latency at ~8 GB/s).
constexpr i64 kGemvPrefetch = 1024;

/// Decode, f32: C[M, N] += A * B for M below the GEMM tile's, on the GEMV
/// micro-kernels, which read B where it lies (the GEMM path packs every
/// panel of B, which for one row of A is as much work as the product; the
/// old fallback, OpenBLAS sgemm, repacked the whole weight per token).
/// Returns false (nothing done) when no kernel fits: B needs k or n
/// contiguous. Fixed kChunkN-column tasks as everywhere; every output is
/// summed in the same order whatever the variant that computes it.
bool f32Gemv(i64 M, i64 N, i64 K, const float *a, i64 sam, i64 sak,
             const float *b, i64 sbk, i64 sbn, float *c, i64 scm, i64 scn) {
  const F32GemvMicroKernel &g = registeredF32Gemv;
  if (M < 1 || M > g.maxRows || !g.dot[M] || !g.axpy[M])
    return false;
  const bool dotForm = sbk == 1 && sbn >= K;
  if (!dotForm && sbn != 1)
    return false;
  // x rows with k contiguous (decode's activations already are).
  thread_local std::vector<float> xbuf;
  i64 lda = sam;
  if (sak != 1 || (M > 1 && sam < K)) {
    xbuf.resize(M * K);
    for (i64 r = 0; r < M; ++r)
      for (i64 k = 0; k < K; ++k)
        xbuf[r * K + k] = a[r * sam + k * sak];
    a = xbuf.data();
    lda = K;
  }
  const i64 vl = g.vl;
  const i64 chunks = (N + kChunkN - 1) / kChunkN;
  parallelChunks(chunks, M * N * K, [&](i64 chunk) {
    const i64 n0 = chunk * kChunkN, n1 = std::min(N, n0 + kChunkN);
    float tile[3 * 128];
    auto addTile = [&](i64 j0, i64 cols, i64 width) {
      for (i64 r = 0; r < M; ++r)
        for (i64 j = 0; j < cols; ++j)
          c[r * scm + (j0 + j) * scn] += tile[r * width + j];
    };
    if (dotForm) {
      const i64 kv = K / vl, kt = kv * vl;
      for (i64 j0 = n0; j0 < n1;) {
        const i64 wr = n1 - j0 >= g.dotRows[M] ? g.dotRows[M] : 1;
        callF32Gemv(wr > 1 ? g.dot[M] : g.dot1[M], a, b + j0 * sbn, tile, lda,
                    sbn, kv, kGemvPrefetch);
        // The k tail (K not a multiple of the vector width), in order.
        for (i64 r = 0; r < M; ++r)
          for (i64 j = 0; j < wr; ++j) {
            float &t = tile[r * wr + j];
            for (i64 k = kt; k < K; ++k)
              t += a[r * lda + k] * b[(j0 + j) * sbn + k];
          }
        addTile(j0, wr, wr);
        j0 += wr;
      }
      return;
    }
    for (i64 j0 = n0; j0 < n1;) {
      const i64 wide = g.axpyCols[M];
      if (n1 - j0 >= vl) {
        const bool w = n1 - j0 >= wide;
        const i64 cols = w ? wide : vl;
        callF32Gemv(w ? g.axpy[M] : g.axpy1[M], a, b + j0, tile, lda, sbk, K,
                    0);
        addTile(j0, cols, cols);
        j0 += cols;
        continue;
      }
      // Fewer than vl columns left: the same sequential sums, scalar.
      for (i64 r = 0; r < M; ++r)
        for (i64 j = j0; j < n1; ++j) {
          float t = 0.0f;
          for (i64 k = 0; k < K; ++k)
            t += a[r * lda + k] * b[k * sbk + j];
          c[r * scm + j * scn] += t;
        }
      j0 = n1;
    }
  });
  return true;
}

bool useMicroKernel(i64 M) {
  return registered.fn && M * 2 >= registered.mr;
}

/// The decode path applies: a GEMV kernel for these bits, whole panels,
/// whole words per group, no act-order (its per-row groups would need a
/// scale gather per k).
bool useGemv(i64 m, i64 n, i64 k, unsigned bits, i64 groupSize,
             const int32_t *gIdx) {
  const QGemvMicroKernel &g = registeredGemv;
  return g.nr > 0 && bits <= 8 && 32 % bits == 0 && g.fn[bits][1] && !gIdx &&
         m >= 1 && m <= 8 && n % g.nr == 0 && kChunkN % g.nr == 0 &&
         (groupSize <= 0 || (groupSize * bits) % 32 == 0) &&
         (k * bits) % 32 == 0 && (groupSize <= 0 || k % groupSize == 0);
}

void callGemv(QGemvMicroKernel::Fn fn, const int32_t *q, const float *s,
              const float *nz, const float *x, const float *xs, float *y,
              i64 ldq, i64 ldx, i64 groups, i64 wpg, i64 pf) {
  constexpr i64 big = std::numeric_limits<int32_t>::max();
  auto *pq = const_cast<int32_t *>(q);
  auto *ps = const_cast<float *>(s), *pz = const_cast<float *>(nz),
       *px = const_cast<float *>(x), *pxs = const_cast<float *>(xs);
  fn(pq, pq, 0, big, 1, ps, ps, 0, big, 1, pz, pz, 0, big, 1, px, px, 0, big,
     1, pxs, pxs, 0, big, 1, y, y, 0, big, 1, ldq, ldx, groups, wpg, pf);
}

/// How many calls ahead (in columns of the current call) the packed GEMV
/// prefetches each word row.
constexpr i64 kQGemvAhead = 4;

/// The largest block the integer-dot GEMV takes: its int32 sums stay
/// exact (4-bit: 4096 x 15 x (128 + 256 x 65) < 2^31).
constexpr i64 kQDotMaxBlock = 4096;
/// The integer-dot GEMV's fixed-point block along K where groups are
/// longer (per-channel scales): one exponent per 128 values of x, so that
/// an outlier costs precision only in its own block.
constexpr i64 kQDotBlock = 128;

/// x for the integer-dot GEMV: per row and block of gs values (a group, or
/// kQDotBlock of a longer one), X = round(x * 2^-e) with
/// e chosen so that |X| < 2^22 (24-bit fixed point against the block's
/// largest |x|), split into signed bytes X = d0 + 256 d1 + 65536 d2 (each
/// in [-128, 127]). Per word of codes (32 / bits fields), 3 x sets words
/// of digits: word d * sets + t holds digit d of the fields i * sets + t
/// (i = byte 0..3), the order the kernel's shifted, masked code bytes have.
/// xs gets (the block's f32 sum of x, 2^e) per [block][row]. False (and
/// the float kernel runs) when some x is not finite or a scale would leave
/// the normal range.
bool packDigits(i64 m, i64 k, unsigned bits, i64 gs, const float *x,
                std::vector<int32_t> &xd, std::vector<float> &xs) {
  const i64 per = 32 / bits, sets = 8 / bits, perWord = 3 * sets;
  const i64 ldx = k / per * perWord, numGroups = k / gs;
  xd.assign(m * ldx, 0);
  xs.assign(numGroups * m * 2, 0.0f);
  auto *bytes = reinterpret_cast<uint8_t *>(xd.data());
  for (i64 r = 0; r < m; ++r)
    for (i64 gi = 0; gi < numGroups; ++gi) {
      const float *xg = x + r * k + gi * gs;
      float sum = 0.0f, maxAbs = 0.0f;
      for (i64 i = 0; i < gs; ++i) {
        if (!std::isfinite(xg[i]))
          return false;
        sum += xg[i];
        maxAbs = std::max(maxAbs, std::fabs(xg[i]));
      }
      int e = 0;
      std::frexp(maxAbs, &e);
      if (maxAbs > 0.0f && e - 22 < FLT_MIN_EXP)
        return false;
      xs[(gi * m + r) * 2] = sum;
      xs[(gi * m + r) * 2 + 1] = std::ldexp(1.0f, e - 22);
      // x * 2^(22 - e) is exact in double; adding 1.5 * 2^52 rounds it to
      // the nearest integer (ties to even), which the low 32 bits of the
      // sum then hold in two's complement (no libm call per value).
      const double inv = std::ldexp(1.0, 22 - e), magic = 6755399441055744.0;
      // per and sets are powers of two: shifts and masks, not divisions
      // (three 64-bit divides per value were ~3% of a 1B decode step).
      const int perLog = __builtin_ctzll(uint64_t(per)),
                setsLog = __builtin_ctzll(uint64_t(sets));
      for (i64 i = 0; i < gs; ++i) {
        const i64 kk = gi * gs + i, f = kk & (per - 1);
        const double shifted = double(xg[i]) * inv + magic;
        uint64_t raw;
        std::memcpy(&raw, &shifted, sizeof raw);
        auto v = int32_t(uint32_t(raw));
        int32_t digits[3];
        for (int d = 0; d < 2; ++d) {
          digits[d] = int32_t(int8_t(uint8_t(v & 0xFF)));
          v = (v - digits[d]) / 256;
        }
        digits[2] = v;
        const i64 word = r * ldx + (kk >> perLog) * perWord + (f & (sets - 1));
        for (int d = 0; d < 3; ++d)
          bytes[(word + d * sets) * 4 + (f >> setsLog)] = uint8_t(digits[d]);
      }
    }
  return true;
}

/// Decode, group by group: for each group, every chunk of kChunkN columns
/// (wide calls, narrow ones for a tail) streams the group's word rows, so
/// each row of codes is read left to right in runs of a chunk (sequential
/// streams the hardware prefetcher follows, plus a software prefetch of the
/// next call's columns) instead of one chunk walking down all of K with a
/// stride of N * 4 bytes. A task owns whole chunks; each column sees the
/// same sequence of kernel calls whatever the thread count. M <= 2 on a
/// host with the integer-dot kernels runs those (packDigits); otherwise
/// the float ones.
void qgemv(i64 m, i64 n, i64 k, unsigned bits, i64 groupSize, i64 groups,
           const float *x, const int32_t *codes, const float *scales,
           const int32_t *zeros, float *y) {
  const QGemvMicroKernel &g = registeredGemv;
  const i64 numGroups = groupSize > 0 ? k / groupSize : 1;
  (void)groups;
  const i64 gs = groupSize > 0 ? groupSize : k;
  const i64 zeroWords = n * bits / 32;
  const uint32_t mask = (1u << bits) - 1;
  std::vector<int32_t> xd;
  std::vector<float> xs;
  // Blocks: the K ranges each kernel call covers (groups, or for the
  // integer kernel kQDotBlock pieces of a longer group).
  const i64 dotBlock = gs > kQDotBlock && gs % kQDotBlock == 0 ? kQDotBlock
                                                              : gs;
  const bool useDot = m <= 2 && g.dot[bits][1] &&
                      dotBlock <= kQDotMaxBlock &&
                      dotBlock * bits / 32 % kQDotWords == 0 &&
                      packDigits(m, k, bits, dotBlock, x, xd, xs);
  const i64 block = useDot ? dotBlock : gs;
  const i64 numBlocks = k / block, wpb = block * bits / 32;
  const i64 xStride = useDot ? k / (32 / bits) * 3 * (8 / bits) : k;
  if (!useDot) {
    // xs[g][r]: the group sums of x, in a fixed order (the zero term's
    // factor). A block is a group here.
    xs.assign(numGroups * m, 0.0f);
    for (i64 r = 0; r < m; ++r)
      for (i64 gi = 0; gi < numGroups; ++gi) {
        float sum = 0.0f;
        for (i64 i = 0; i < gs; ++i)
          sum += x[r * k + gi * gs + i];
        xs[gi * m + r] = sum;
      }
  }
  const i64 chunks = (n + kChunkN - 1) / kChunkN;
  // A few chunks per task: long sequential runs, still enough tasks to
  // balance two threads.
  const i64 perTask = std::max<i64>(1, std::min<i64>(8, chunks / 8));
  const i64 tasks = (chunks + perTask - 1) / perTask;
  parallelChunks(tasks, m * n * k + n * k * 8, [&](i64 task) {
    const i64 c0 = task * perTask * kChunkN;
    const i64 c1 = std::min(n, c0 + perTask * kChunkN);
    // -zero * scale per group and column of this task, in the running
    // thread's buffer ([group][n]; only this task's columns are used).
    thread_local std::vector<float> nzs;
    nzs.resize(numGroups * n);
    float *nz = nzs.data();
    // Word by word (c0 is a multiple of 32 / bits): the shifts become
    // constants the compiler unrolls, instead of a bit index per column
    // (this loop was ~5% of a 1B decode step).
    const i64 per = 32 / bits;
    for (i64 gi = 0; gi < numGroups; ++gi) {
      const float *sg = scales + gi * n;
      float *ng = nz + gi * n;
      if (!zeros) {
        const float z = float(1u << (bits - 1));
        for (i64 c = c0; c < c1; ++c)
          ng[c] = -z * sg[c];
        continue;
      }
      const int32_t *zg = zeros + gi * zeroWords;
      for (i64 c = c0; c < c1; c += per) {
        const uint32_t word = uint32_t(zg[c / per]);
        for (i64 f = 0; f < per && c + f < c1; ++f)
          ng[c + f] = -float((word >> (f * bits)) & mask) * sg[c + f];
      }
    }
    for (i64 bi = 0; bi < numBlocks; ++bi) {
      const i64 gi = bi * block / gs;
      const int32_t *q = codes + bi * wpb * n;
      for (i64 r = 0; r < m;) {
        i64 rows = useDot ? m - r : 8;
        while (!useDot && rows > 1 && (rows > m - r || !g.fn[bits][rows]))
          rows /= 2;
        QGemvMicroKernel::Fn narrow = useDot ? g.dot[bits][rows] : g.fn[bits][rows];
        QGemvMicroKernel::Fn wideFn = g.wide[bits][rows];
        const i64 wideCols = g.wideCols[rows];
        // The integer kernel's x and xs: digit words and (sum, scale)
        // pairs, passed through the same pointer arguments.
        const float *xr =
            useDot ? reinterpret_cast<const float *>(xd.data() + r * xStride +
                                                  bi * wpb * 3 * (8 / bits))
                : x + r * k + bi * block;
        const float *xsr = xs.data() + (bi * m + r) * (useDot ? 2 : 1);
        if (useDot) {
          // One call on the task's columns: (c1 - c0) / nr panels.
          callGemv(narrow, q + c0, scales + gi * n + c0, nz + gi * n + c0, xr,
                   xsr, y + r * n + c0, n, xStride,
                   /*groups (panels)=*/(c1 - c0) / g.nr, wpb,
                   kQGemvAhead * g.nr);
          r += rows;
          continue;
        }
        for (i64 j0 = c0; j0 < c1;) {
          const bool wide = wideFn && wideCols > 0 && c1 - j0 >= wideCols;
          const i64 cols = wide ? wideCols : g.nr;
          callGemv(wide ? wideFn : narrow, q + j0, scales + gi * n + j0,
                   nz + gi * n + j0, xr, xsr, y + r * n + j0, n, xStride,
                   /*groups=*/1, wpb, kQGemvAhead * cols);
          j0 += cols;
        }
        r += rows;
      }
    }
  });
}
} // namespace

namespace quant_mlir::kernels {
void setGemmMicroKernel(const GemmMicroKernel &kernel) { registered = kernel; }
void setQGemvMicroKernels(const QGemvMicroKernel &kernels) {
  registeredGemv = kernels;
}
void setF32GemvMicroKernels(const F32GemvMicroKernel &kernels) {
  registeredF32Gemv = kernels;
}
const F32GemvMicroKernel &f32GemvMicroKernel() { return registeredF32Gemv; }
const QGemvMicroKernel &qgemvMicroKernels() { return registeredGemv; }
const GemmMicroKernel &gemmMicroKernel() { return registered; }

void vcontractF32(int64_t M, int64_t N, int64_t K, const float *a,
                  int64_t sam, int64_t sak, const float *b, int64_t sbk,
                  int64_t sbn, float *c, int64_t scm, int64_t scn) {
  if (M <= 0 || N <= 0 || K <= 0)
    return;
  if (M * N * K < kSmallGemm) {
    smallGemm(M, N, K, a, sam, sak, b, sbk, sbn, c, scm, scn);
    return;
  }
  if (!useMicroKernel(M)) {
    if (!f32Gemv(M, N, K, a, sam, sak, b, sbk, sbn, c, scm, scn))
      blasGemm(M, N, K, a, sam, sak, b, sbk, sbn, c, scm, scn);
    return;
  }
  const GemmMicroKernel uk = registered;
  const float *ap = packA(uk, M, K, a, sam, sak);
  runPanels(uk, M, N, K, kKc, ap, c, scm, scn, M * N * K,
            [&](i64 k0, i64 rows, i64 j0, i64 cols, float *panel) {
              packPanelF32(uk, b, sbk, sbn, k0, rows, j0, cols, panel);
            });
}

void vqlinearF32(int64_t m, int64_t n, int64_t k, unsigned bits,
                 int64_t groupSize, int64_t groups, const float *x,
                 const int32_t *codes, const float *scales,
                 const int32_t *zeros, const int32_t *gIdx, const float *bias,
                 float *y) {
  if (useGemv(m, n, k, bits, groupSize, gIdx)) {
    for (i64 r = 0; r < m; ++r)
      for (i64 c = 0; c < n; ++c)
        y[r * n + c] = bias ? bias[c] : 0.0f;
    qgemv(m, n, k, bits, groupSize, groups, x, codes, scales, zeros, y);
    return;
  }
  if (!useMicroKernel(m) || n == 0 || k == 0) {
    qlinearF32(m, n, k, bits, groupSize, groups, x, codes, scales, zeros,
               gIdx, bias, y);
    return;
  }
  for (i64 r = 0; r < m; ++r)
    for (i64 c = 0; c < n; ++c)
      y[r * n + c] = bias ? bias[c] : 0.0f;
  const GemmMicroKernel uk = registered;
  // K blocks hold whole groups, so each block row reads one scale row.
  i64 kc = groupSize > 0 ? std::max(groupSize, kKc / groupSize * groupSize)
                         : kKc;
  const float *ap = packA(uk, m, k, x, k, 1);
  const i64 nr = uk.nr;
  const i64 numGroups = std::max<i64>(groups, 1);
  runPanels(uk, m, n, k, kc, ap, y, n, 1, m * n * k + n * k * 8,
            [&](i64 k0, i64 rows, i64 j0, i64 cols, float *panel) {
              thread_local std::vector<float> zeroRow;
              zeroRow.resize(nr);
              dequantBlock(n, k, bits, groupSize, numGroups, codes, scales,
                           zeros, gIdx, k0, rows, j0, cols, panel, nr,
                           zeroRow);
              if (cols < nr)
                for (i64 kk = 0; kk < rows; ++kk)
                  std::fill(panel + kk * nr + cols, panel + (kk + 1) * nr,
                            0.0f);
            });
}
} // namespace quant_mlir::kernels
