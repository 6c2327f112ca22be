//===- Progress.cpp - progress bar with ETA on stderr -----------------------===//

#include "quant-mlir/Support/Progress.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/raw_ostream.h"

using namespace quant_mlir;

static Progress::Sink &sink() {
  static Progress::Sink s;
  return s;
}

void Progress::setSink(Sink s) { sink() = std::move(s); }

Progress::Progress(llvm::StringRef label, int64_t total, bool enabled)
    : label(label.str()), total(total > 0 ? total : 1),
      shown(enabled &&
            (sink() || llvm::sys::Process::StandardErrIsDisplayed())),
      toSink(bool(sink())), start(std::chrono::steady_clock::now()),
      lastDraw() {
  if (shown)
    draw();
}

Progress::~Progress() { finish(); }

double Progress::elapsedSeconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

std::string Progress::formatDuration(double seconds) {
  auto s = static_cast<int64_t>(seconds + 0.5);
  std::string out;
  llvm::raw_string_ostream os(out);
  if (s >= 3600)
    os << s / 3600 << ":" << llvm::format("%02d:%02d", int((s / 60) % 60), int(s % 60));
  else
    os << llvm::format("%02d:%02d", int(s / 60), int(s % 60));
  return out;
}

std::string Progress::render(llvm::StringRef label, int64_t done, int64_t total,
                             double elapsed, llvm::StringRef detail,
                             unsigned width) {
  double frac = total > 0 ? std::min(1.0, double(done) / double(total)) : 1.0;
  auto filled = static_cast<unsigned>(frac * width);
  std::string out;
  llvm::raw_string_ostream os(out);
  os << label << " [" << std::string(filled, '#')
     << std::string(width - filled, '.') << "] " << done << "/" << total
     << llvm::format(" %3d%%", int(frac * 100)) << " " << formatDuration(elapsed);
  if (done > 0 && done < total)
    os << " ETA " << formatDuration(elapsed * double(total - done) / double(done));
  if (!detail.empty())
    os << " " << detail;
  return out;
}

void Progress::advance(int64_t n) {
  done += n;
  if (!shown)
    return;
  auto now = std::chrono::steady_clock::now();
  if (done >= total || now - lastDraw > std::chrono::milliseconds(100))
    draw();
}

void Progress::draw() {
  lastDraw = std::chrono::steady_clock::now();
  if (toSink) {
    if (sink())
      sink()(render(label, done, total, elapsedSeconds(), detail), false);
    return;
  }
  llvm::errs() << "\r" << render(label, done, total, elapsedSeconds(), detail) << "\x1b[K";
  llvm::errs().flush();
}

void Progress::finish() {
  if (!shown)
    return;
  shown = false;
  if (toSink) {
    if (sink())
      sink()(render(label, done, total, elapsedSeconds(), detail), true);
    return;
  }
  llvm::errs() << "\r\x1b[K";
  llvm::errs().flush();
  shown = false;
}
