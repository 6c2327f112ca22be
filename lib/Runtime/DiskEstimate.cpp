//===- DiskEstimate.cpp - the disk a quantization run will fill ------------===//
// Mirrors what CalibrationRecorder::commitLayers, the GPTQ results
// (GPTQResults.cpp) and the activation store write; DiskEstimate's unit
// test holds it to within 10% of a real run's files.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Runtime/DiskEstimate.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>

using namespace quant_mlir;

/// A header entry's JSON: name, dtype, shape and offsets.
static uint64_t headerEntry(llvm::StringRef name) { return name.size() + 80; }

DiskEstimate quant_mlir::estimateDisk(llvm::ArrayRef<DiskLayer> layers,
                                      const DiskPlan &plan) {
  DiskEstimate e;
  uint64_t rows = uint64_t(std::min<int64_t>(
      int64_t(plan.samples) * plan.seqLen, plan.sampleRows));
  for (const DiskLayer &l : layers) {
    uint64_t k = l.k, n = l.n;
    e.statistics += (l.sharesInput ? 2 * l.name.size() + 40 : k * k * 8) +
                    k * 4 + rows * k * 4 + 3 * headerEntry(l.name) + 32 +
                    l.name.size();
    if (l.quantizedInLoop) {
      uint64_t groups = l.groupSize > 0 ? (k + l.groupSize - 1) / l.groupSize
                                        : 1;
      e.gptqResults += k * n + groups * n * 8 + (l.actOrder ? k * 4 : 0) +
                       24 + 5 * headerEntry(l.name) + 200;
    }
  }
  uint64_t boundary = uint64_t(plan.samples) * plan.seqLen * plan.hidden *
                      (plan.f16Activations ? 2 : 4);
  // A stage reads one boundary's file while it writes the next.
  if (plan.resumable || 2 * boundary > plan.maxMemory)
    e.activations = 2 * boundary;
  e.model = 2 * plan.modelBytes;
  if (plan.saveStats)
    e.savedCopy = e.statistics;
  return e;
}

llvm::StringRef DiskEstimate::largest() const {
  std::pair<uint64_t, llvm::StringRef> parts[] = {
      {statistics, "statistics"},
      {gptqResults, "GPTQ results"},
      {activations, "activations"},
      {model, "model archives"},
      {savedCopy, "--save-stats copy"}};
  return std::max_element(std::begin(parts), std::end(parts),
                          [](const auto &a, const auto &b) {
                            return a.first < b.first;
                          })
      ->second;
}

std::string quant_mlir::formatBytes(uint64_t bytes) {
  std::string out;
  llvm::raw_string_ostream os(out);
  const char *units[] = {"KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) {
    os << bytes << " B";
    return out;
  }
  double v = double(bytes) / 1024;
  int u = 0;
  for (; v >= 1024 && u < 3; ++u)
    v /= 1024;
  os << llvm::format(v < 10 ? "%.2f %s" : v < 100 ? "%.1f %s" : "%.0f %s", v,
                     units[u]);
  return out;
}

std::string DiskEstimate::describe() const {
  std::string out;
  auto add = [&](llvm::StringRef name, uint64_t bytes) {
    if (bytes)
      out += (out.empty() ? "" : ", ") + name.str() + " " + formatBytes(bytes);
  };
  add("statistics", statistics);
  add("GPTQ results", gptqResults);
  add("activations", activations);
  add("model archives", model);
  add("--save-stats copy", savedCopy);
  return out;
}
