//===- LayerError.cpp - relative errors of a quantized layer ----------------===//
// tr(D H D^T) = sum_ij (D H)_ij D_ij: one BLAS dsymm for D and W stacked,
// instead of the n * k^2 scalar loop it replaces (issue 14, item 6). GPTQ
// layers take the sums from GPTQ itself (GPTQOutputError) instead.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Quant/LayerError.h"

#include <cblas.h>

#include <cmath>
#include <vector>

using namespace quant_mlir::quant;

LayerError quant_mlir::quant::measureLayerError(llvm::ArrayRef<float> w,
                                                llvm::ArrayRef<float> wq,
                                                int64_t n, int64_t k,
                                                llvm::ArrayRef<double> h) {
  LayerError e;
  size_t size = size_t(n) * size_t(k);
  double num = 0, den = 0;
  for (size_t i = 0; i < size; ++i) {
    double wi = w[i], d = wi - double(wq[i]);
    num += d * d;
    den += wi * wi;
  }
  e.weight = den > 0 ? std::sqrt(num / den) : 0;
  if (h.empty() || n == 0 || k == 0)
    return e;
  // Rows 0..n-1: dW = W - Wq; rows n..2n-1: W.
  std::vector<double> dw(2 * size);
  for (size_t i = 0; i < size; ++i) {
    dw[i] = double(w[i]) - double(wq[i]);
    dw[size + i] = w[i];
  }
  std::vector<double> prod(2 * size);
  cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, 2 * n, k, 1.0, h.data(),
              k, dw.data(), k, 0.0, prod.data(), k);
  double outNum = 0, outDen = 0;
  for (size_t i = 0; i < size; ++i) {
    outNum += prod[i] * dw[i];
    outDen += prod[size + i] * dw[size + i];
  }
  e.output = relativeOutputError(outNum, outDen);
  return e;
}
