//===- Progress.h - progress bar with ETA on stderr --------------*- C++ -*-===//
// For long work (calibration, evaluation, quantization): shown only when
// stderr is a terminal and not silenced, so logs and CI output stay clean.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_SUPPORT_PROGRESS_H
#define QUANT_MLIR_SUPPORT_PROGRESS_H

#include "llvm/ADT/StringRef.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace quant_mlir {

class Progress {
public:
  /// `enabled` is usually `!quiet`; the bar is also off when stderr is not a
  /// terminal and no sink is set.
  Progress(llvm::StringRef label, int64_t total, bool enabled = true);
  ~Progress();

  /// Advances by `n` units and redraws at most ~10 times a second.
  void advance(int64_t n = 1);
  /// Text after the counts (e.g. "block 3/32, 1850 tok/s"), kept until
  /// replaced; shown at the next redraw.
  void setDetail(std::string text) { detail = std::move(text); }
  /// Erases the bar (idempotent).
  void finish();
  bool isShown() const { return shown; }

  /// Where every bar goes instead of stderr while set (process-wide): the
  /// rendered line on each redraw, then once with `finished`. The Python
  /// package draws bars in notebooks through it, or silences them with a
  /// sink that does nothing. An empty function restores stderr.
  using Sink = std::function<void(llvm::StringRef line, bool finished)>;
  static void setSink(Sink sink);
  double elapsedSeconds() const;

  /// Formats "mm:ss" (or "h:mm:ss").
  static std::string formatDuration(double seconds);
  /// The line drawn for `done` of `total` after `elapsed` seconds.
  static std::string render(llvm::StringRef label, int64_t done, int64_t total,
                            double elapsed, llvm::StringRef detail = "",
                            unsigned width = 30);

private:
  void draw();

  std::string label, detail;
  int64_t total, done = 0;
  bool shown, toSink;
  std::chrono::steady_clock::time_point start, lastDraw;
};

} // namespace quant_mlir

#endif // QUANT_MLIR_SUPPORT_PROGRESS_H
