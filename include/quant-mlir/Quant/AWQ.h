//===- AWQ.h - activation-aware weight quantization --------------*- C++ -*-===//
// AWQ (Lin et al., "AWQ: Activation-aware Weight Quantization for LLM
// Compression and Acceleration", arXiv 2306.00978) as AutoAWQ implements it
// (awq/quantize/quantizer.py: pseudo_quantize_tensor, _search_best_scale,
// _compute_best_scale, _compute_best_clip), on float64. The defaults are
// AutoAWQ's; each is cited where it is used (lib/Quant/AWQ.cpp).
//
// The loss of a scale candidate is either the mean squared error of the
// outputs of the group's own linear layers over all calibration tokens,
// computed exactly from their Hessian H = 2/n sum x x^T as tr(D H D^T) / 2,
// or (AutoAWQ's) that of the module it inspects, measured by running the
// transformer block (Runtime/AWQCalibration.h; docs/awq.md).
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_QUANT_AWQ_H
#define QUANT_MLIR_QUANT_AWQ_H

#include "quant-mlir/Quant/Quantizer.h"

#include "llvm/ADT/StringRef.h"

namespace quant_mlir::quant {

enum class DuoScaling { On, Off, Both };

struct AWQOptions {
  /// Scale candidates alpha = i / nGrid, i = 0..nGrid-1 (AutoAWQ n_grid=20).
  int64_t nGrid = 20;
  /// On: s = x_mean^a / (w_mean^(1-a) + 1e-4); Off: s = x_mean^a; Both:
  /// the better of the two (llm-compressor's duo_scaling="both").
  DuoScaling duo = DuoScaling::On;
  /// Clip search: shrink factors 1 - i / clipGrid for i < maxShrink *
  /// clipGrid, on clipTokens tokens taken with a fixed stride (AutoAWQ
  /// _compute_best_clip: n_grid=20, max_shrink=0.5, n_sample_token=512).
  int64_t clipGrid = 20;
  double maxShrink = 0.5;
  int64_t clipTokens = 512;
};

/// AutoAWQ's pseudo_quantize_tensor of one [N][K] weight per row and group:
/// zero-point: scale = max(max - min, 1e-5) / (2^b - 1), zero =
/// clamp(-round(min / scale), 0, 2^b - 1); symmetric: scale = max(|w|max,
/// 1e-5) / (2^(b-1) - 1), codes offset by 2^(b-1). Rounding is to nearest,
/// ties to even (torch.round). As the rest of lib/Quant, the scale is
/// rounded to float32 (its stored precision) before the codes are taken.
/// Act-order is not an AWQ notion: g_idx is the identity grouping when set.
llvm::Expected<QuantizedWeight> quantizeAWQRTN(llvm::ArrayRef<float> w,
                                               int64_t n, int64_t k,
                                               const Scheme &scheme);

/// One balanced layer of a scaling group: its current float weight [N][K].
struct AWQLinear {
  llvm::ArrayRef<float> w;
  int64_t n = 0;
  Scheme scheme;
};

struct AWQScaleResult {
  /// s [K]: the balanced layers' input columns are multiplied by s, their
  /// input divided by s.
  std::vector<double> scales;
  double alpha = 0;
  bool duo = true;
  double loss = 0;
  /// Loss of every candidate, in search order (duo first under Both).
  std::vector<double> history;
};

/// One scale candidate of _compute_best_scale.
struct AWQCandidate {
  double alpha = 0;
  bool duo = true;
  std::vector<double> scales; // [K]
};

/// The candidates in search order (duo first under Both): s = x_mean^a /
/// (w_mean^(1-a) + 1e-4) (or x_mean^a), clamped at 1e-4, normalised by
/// sqrt(max s * min s). `xMean` is mean |x| per input channel over all
/// calibration tokens; w_mean is taken over the rows of every layer.
llvm::Expected<std::vector<AWQCandidate>>
awqCandidates(llvm::ArrayRef<float> xMean, int64_t k,
              llvm::ArrayRef<AWQLinear> layers, const AWQOptions &options,
              llvm::StringRef group);

/// out = Q(W s) / s for one [N][K] weight, with W s rounded to float32
/// before quantization (what a candidate's layer computes with).
void awqScaledFakeQuant(llvm::ArrayRef<float> w, int64_t n, int64_t k,
                        llvm::ArrayRef<double> s, const Scheme &scheme,
                        llvm::MutableArrayRef<double> out);

/// The group's s = argmin over the candidates of their loss: by default
/// (`moduleLoss` empty) the group's own linear outputs,
///   sum_l tr(D_l H D_l^T) / 2 / sum_l N_l,  D_l = W_l - Q(W_l s) / s,
/// with `hessian` [K][K] the group's shared H; or the losses measured on
/// the module's output (one per candidate, in awqCandidates' order;
/// Runtime/AWQCalibration.h). Fails, naming `group`, on bad shapes.
llvm::Expected<AWQScaleResult>
searchAWQScales(llvm::ArrayRef<float> xMean, llvm::ArrayRef<double> hessian,
                int64_t k, llvm::ArrayRef<AWQLinear> layers,
                const AWQOptions &options, llvm::StringRef group,
                llvm::ArrayRef<double> moduleLoss = {});

/// AutoAWQ's clip search for one [N][K] weight on input rows `x` [M][K]
/// (already divided by the layer's scales): per output row and group, the
/// clip threshold among max|w| * (1 - i / clipGrid) whose quantized group
/// partial products have the least mean squared error over the strided
/// tokens. Returns the thresholds [N][G].
std::vector<double> searchAWQClip(llvm::ArrayRef<float> w, int64_t n,
                                  int64_t k, llvm::ArrayRef<double> x,
                                  int64_t m, const Scheme &scheme,
                                  const AWQOptions &options);

/// w[r][c] = clamp(w[r][c], -t, t) with t = thresholds[r][group of c],
/// rounded to float32.
void applyAWQClip(llvm::MutableArrayRef<float> w, int64_t n, int64_t k,
                  llvm::ArrayRef<double> thresholds, const Scheme &scheme);

} // namespace quant_mlir::quant

#endif // QUANT_MLIR_QUANT_AWQ_H
