//===- GPTQ.h - GPTQ weight quantization ------------------------*- C++ -*-===//
// GPTQ (Frantar et al., "GPTQ: Accurate Post-Training Quantization for
// Generative Pre-trained Transformers", arXiv 2210.17323), Algorithm 1, with
// the options of the reference implementation (IST-DASLab/gptq, gptq.py) and
// of AutoGPTQ/GPTQModel: groups, act-order (desc_act) with g_idx, static
// groups, damping, lazy batch updates.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_QUANT_GPTQ_H
#define QUANT_MLIR_QUANT_GPTQ_H

#include "quant-mlir/Quant/Quantizer.h"

#include "llvm/ADT/StringRef.h"

namespace quant_mlir::quant {

struct GPTQOptions {
  /// lambda = dampPercent * mean(diag H) is added to diag H (the paper's
  /// Step 3, "Cholesky Reformulation": mild dampening).
  double dampPercent = 0.01;
  /// B, the lazy-batch width (Step 2, "Lazy Batch-Updates").
  int64_t blockSize = 128;
  /// Compute every group's grid up front on the original (unpermuted,
  /// dead-column-zeroed) weights instead of when the group is reached
  /// (AutoGPTQ's static_groups; applies with or without act-order). Under
  /// act-order g_idx is then k / group_size. Ignored per channel.
  bool staticGroups = false;
  /// Scratch for GPTQOutputError's product W0 L, done over chunks of rows
  /// of this many bytes (at least one row): each chunk reads all of L, so
  /// small chunks make it memory-bound.
  int64_t errorChunkBytes = int64_t(64) << 20;
};

/// GPTQ's own measure of its output error (the report's output_rel_err
/// without a K x K product per row): with H' the Hessian the algorithm
/// factors (dead diagonals set to 1, damped by lambda, permuted by act-order)
/// and U the upper Cholesky factor of H'^-1, W0 - Q = E U for the errors
/// E_ij = (x - q) / U_jj of Algorithm 1 (W0: W with dead columns zeroed), so
/// tr((W0 - Q) H' (W0 - Q)^T) = sum E_ij^2. H' - H is diagonal, which gives
/// the error under the undamped H; the reference tr(W H W^T) is ||W0 L||_F^2
/// (H' = L L^T, the factor dpotrf computes before dpotri) less the same
/// diagonal term. Q is GPTQ's float64 grid (scales before rounding to f32 or
/// a stored scale dtype).
struct GPTQOutputError {
  /// tr((W - Q) H (W - Q)^T) and tr(W H W^T), H the symmetrized input.
  double error = 0, reference = 0;
  /// False when the identity does not apply: a zero diagonal H_ii whose row
  /// is not zero (H is then not a Gram matrix; the caller measures directly).
  bool valid = false;
  /// The float64 scales of Q, [G][N] as QuantizedWeight::scales (which holds
  /// them rounded to f32), so that a check can rebuild Q exactly.
  std::vector<double> gridScales;
  /// Wall seconds of the reference's triangular product, the one part of
  /// the measure that is not O(N K) (for bench/gptq/bench_report_error.py).
  double referenceSeconds = 0;
};

/// Quantizes `w` ([N][K] row-major, nn.Linear layout) with GPTQ against the
/// layer Hessian `hessian` ([K][K] row-major, H = 2 X X^T up to scale; it is
/// symmetrized as (H + H^T) / 2, exact for a symmetric input). Computes in
/// float64; uses OpenBLAS/LAPACK, whose thread count the caller controls
/// (openblas_set_num_threads); the result does not depend on it.
///
/// Stages, in the reference's order (lib/Quant/GPTQ.cpp names them):
///  1. per-channel grid (group_size = -1) on the original weights;
///  2. dead input channels (H_ii == 0): H_ii = 1, W[:, i] = 0;
///  3. static groups: every group's grid on the (unpermuted) weights;
///  4. act-order: columns sorted by diag H descending, a *stable* sort (ties
///     keep their original order; torch.argsort(descending=True) is not
///     stable, so the reference may order ties differently);
///  5. dampening, then Hinv = the upper Cholesky factor of H^-1;
///  6. Algorithm 1 with lazy batches of blockSize columns.
/// A group's grid (non-static) is fixed when the group's first column is
/// reached, from the weights as the reference reads them: W[:, i:i+group]
/// with the updates of all previous blocks applied (the in-block updates of
/// the current block live in the reference's W1 copy and are not seen).
///
/// With `outputError`, also fills it: one triangular product W0 L (N K^2
/// flops, as many as Algorithm 1's lazy-batch GEMMs and a quarter of the
/// dsymm measureLayerError needs) and O(N K) sums.
///
/// Fails, naming `layerName`, on bad shapes/schemes/options, non-finite
/// inputs, or an H that is not positive definite after damping.
llvm::Expected<QuantizedWeight>
quantizeGPTQ(llvm::ArrayRef<float> w, int64_t n, int64_t k,
             llvm::ArrayRef<double> hessian, const Scheme &scheme,
             const GPTQOptions &options, llvm::StringRef layerName,
             GPTQOutputError *outputError = nullptr);

/// The act-order permutation: input channels by diag(H) descending, ties in
/// ascending index order (stable). diag(H) is taken after the dead-column
/// fix (H_ii == 0 -> 1), as in the reference.
std::vector<int64_t> actOrderPermutation(llvm::ArrayRef<double> hessianDiag);

} // namespace quant_mlir::quant

#endif // QUANT_MLIR_QUANT_GPTQ_H
