//===- FuzzFile.h - hand fuzzer bytes to path-based readers -----*- C++ -*-===//
// The readers under test take paths (they mmap, and pick the format by the
// extension), so each input is written to a file in a per-process scratch
// directory that is removed when the fuzzer exits.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_FUZZ_FUZZFILE_H
#define QUANT_MLIR_FUZZ_FUZZFILE_H

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <fcntl.h>
#include <unistd.h>

namespace quant_mlir::fuzz {

/// A scratch directory under /dev/shm (tmpfs) or $TMPDIR-less /tmp.
inline const std::string &scratchDir() {
  static const std::string dir = [] {
    std::string model = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    model += "/quant-mlir-fuzz-XXXXXX";
    if (!mkdtemp(model.data()))
      std::abort();
    std::string path = model;
    static std::string cleanupPath = path;
    std::atexit([] {
      std::string cmd = "rm -rf '" + cleanupPath + "'";
      (void)std::system(cmd.c_str());
    });
    return path;
  }();
  return dir;
}

/// Writes `data` to `<scratch>/<name>` (replacing it) and returns the path.
inline std::string writeInput(const std::string &name, const uint8_t *data,
                              size_t size) {
  std::string path = scratchDir() + "/" + name;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    std::abort();
  for (size_t off = 0; off < size;) {
    ssize_t n = ::write(fd, data + off, size - off);
    if (n <= 0)
      std::abort();
    off += size_t(n);
  }
  ::close(fd);
  return path;
}

} // namespace quant_mlir::fuzz

#endif // QUANT_MLIR_FUZZ_FUZZFILE_H
