//===- KernelsVector.cpp - GEMM drivers around the generated micro-kernels -===//
// The vector kernel family: quant_vcontract_f32 / quant_qlinear_f32 with the
// vector flag. Packs activation tiles (mr rows, k-major) and weight panels
// (nr columns; strided f32 or dequantized from the gptq stream) and calls the
// micro-kernel that MicroKernels.cpp generates and JIT-compiles for the host
// on every mr x nr tile. See docs/performance-cpu.md.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Runtime/Kernels.h"
#include "KernelsInternal.h"

#include <cstring>
#include <limits>

using namespace quant_mlir::kernels;
using namespace quant_mlir::kernels::detail;

namespace {
GemmMicroKernel registered;
QGemvMicroKernel registeredGemv;

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

/// A[M, K] (strided) as [ceil(M / mr)][K][mr], rows past M zero.
std::vector<float> packA(i64 M, i64 K, i64 mr, const float *a, i64 sam,
                         i64 sak) {
  i64 blocks = (M + mr - 1) / mr;
  std::vector<float> packed(blocks * K * mr, 0.0f);
  for (i64 mb = 0; mb < blocks; ++mb) {
    float *dst = packed.data() + mb * K * mr;
    i64 rows = std::min(mr, M - mb * mr);
    for (i64 i = 0; i < rows; ++i) {
      const float *src = a + (mb * mr + i) * sam;
      for (i64 k = 0; k < K; ++k)
        dst[k * mr + i] = src[k * sak];
    }
  }
  return packed;
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
    std::vector<float> bp(panels * std::min(kc, K) * nr, 0.0f);
    std::vector<float> tile(mr * nr);
    for (i64 k0 = 0; k0 < K; k0 += kc) {
      const i64 rows = std::min(kc, K - k0);
      for (i64 p = 0; p < panels; ++p)
        packB(k0, rows, n0 + p * nr, std::min(nr, nc - p * nr),
              bp.data() + p * rows * nr);
      for (i64 mb = 0; mb < mBlocks; ++mb) {
        const i64 m0 = mb * mr, mrows = std::min(mr, M - m0);
        const float *a = ap + (mb * K + k0) * mr;
        for (i64 p = 0; p < panels; ++p) {
          const i64 j0 = n0 + p * nr, cols = std::min(nr, nc - p * nr);
          const float *b = bp.data() + p * rows * nr;
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
              i64 ldq, i64 ldx, i64 groups, i64 wpg) {
  constexpr i64 big = std::numeric_limits<int32_t>::max();
  auto *pq = const_cast<int32_t *>(q);
  auto *ps = const_cast<float *>(s), *pz = const_cast<float *>(nz),
       *px = const_cast<float *>(x), *pxs = const_cast<float *>(xs);
  fn(pq, pq, 0, big, 1, ps, ps, 0, big, 1, pz, pz, 0, big, 1, px, px, 0, big,
     1, pxs, pxs, 0, big, 1, y, y, 0, big, 1, ldq, ldx, groups, wpg);
}

/// Decode: each chunk of kChunkN columns computes its -zero * scale rows,
/// then streams its codes once per row block (rows 8 / 4 / 2 / 1).
void qgemv(i64 m, i64 n, i64 k, unsigned bits, i64 groupSize, i64 groups,
           const float *x, const int32_t *codes, const float *scales,
           const int32_t *zeros, float *y) {
  const QGemvMicroKernel &g = registeredGemv;
  const i64 numGroups = groupSize > 0 ? k / groupSize : 1;
  (void)groups;
  const i64 wpg = (groupSize > 0 ? groupSize : k) * bits / 32;
  const i64 zeroWords = n * bits / 32;
  const uint32_t mask = (1u << bits) - 1;
  std::vector<float> nzs(numGroups * n), xs(m * numGroups);
  // The group sums of x, in a fixed order (the zero term's factor).
  const i64 gs = groupSize > 0 ? groupSize : k;
  for (i64 r = 0; r < m; ++r)
    for (i64 gi = 0; gi < numGroups; ++gi) {
      float sum = 0.0f;
      for (i64 i = 0; i < gs; ++i)
        sum += x[r * k + gi * gs + i];
      xs[r * numGroups + gi] = sum;
    }
  const i64 chunks = (n + kChunkN - 1) / kChunkN;
  parallelChunks(chunks, m * n * k + n * k * 8, [&](i64 chunk) {
    const i64 n0 = chunk * kChunkN, nc = std::min(kChunkN, n - n0);
    for (i64 gi = 0; gi < numGroups; ++gi)
      for (i64 c = n0; c < n0 + nc; ++c) {
        float z = float(1u << (bits - 1));
        if (zeros) {
          i64 bit = c * bits;
          z = float((uint32_t(zeros[gi * zeroWords + bit / 32]) >>
                     (bit % 32)) & mask);
        }
        nzs[gi * n + c] = -z * scales[gi * n + c];
      }
    for (i64 j0 = n0; j0 < n0 + nc; j0 += g.nr)
      for (i64 r = 0; r < m;) {
        i64 rows = 8;
        while (rows > 1 && (rows > m - r || !g.fn[bits][rows]))
          rows /= 2;
        callGemv(g.fn[bits][rows], codes + j0, scales + j0, nzs.data() + j0,
                 x + r * k, xs.data() + r * numGroups, y + r * n + j0, n, k,
                 numGroups, wpg);
        r += rows;
      }
  });
}
} // namespace

namespace quant_mlir::kernels {
void setGemmMicroKernel(const GemmMicroKernel &kernel) { registered = kernel; }
void setQGemvMicroKernels(const QGemvMicroKernel &kernels) {
  registeredGemv = kernels;
}
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
    blasGemm(M, N, K, a, sam, sak, b, sbk, sbn, c, scm, scn);
    return;
  }
  const GemmMicroKernel uk = registered;
  std::vector<float> ap = packA(M, K, uk.mr, a, sam, sak);
  const i64 nr = uk.nr;
  runPanels(uk, M, N, K, kKc, ap.data(), c, scm, scn, M * N * K,
            [&](i64 k0, i64 rows, i64 j0, i64 cols, float *panel) {
              for (i64 kk = 0; kk < rows; ++kk) {
                const float *src = b + (k0 + kk) * sbk + j0 * sbn;
                float *dst = panel + kk * nr;
                if (sbn == 1)
                  std::memcpy(dst, src, cols * sizeof(float));
                else
                  for (i64 j = 0; j < cols; ++j)
                    dst[j] = src[j * sbn];
                std::fill(dst + cols, dst + nr, 0.0f);
              }
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
  std::vector<float> ap = packA(m, k, uk.mr, x, k, 1);
  const i64 nr = uk.nr;
  const i64 numGroups = std::max<i64>(groups, 1);
  runPanels(uk, m, n, k, kc, ap.data(), y, n, 1, m * n * k + n * k * 8,
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
