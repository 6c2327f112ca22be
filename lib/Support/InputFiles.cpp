//===- InputFiles.cpp - opening untrusted input files safely ---------------===//

#include "quant-mlir/Support/InputFiles.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

using namespace llvm;

namespace quant_mlir {

namespace {
class InputFileCategory : public std::error_category {
public:
  const char *name() const noexcept override { return "quant-mlir input"; }
  std::string message(int code) const override {
    switch (InputFileError(code)) {
    case InputFileError::Fifo:
      return "is a FIFO, not a regular file";
    case InputFileError::Device:
      return "is a device, not a regular file";
    case InputFileError::Socket:
      return "is a socket, not a regular file";
    case InputFileError::NotRegular:
      break;
    }
    return "is not a regular file";
  }
};
} // namespace

std::error_code make_error_code(InputFileError e) {
  static const InputFileCategory category;
  return {int(e), category};
}

// Classifies an fstat result; success for regular files.
static std::error_code classify(const struct stat &st) {
  if (S_ISREG(st.st_mode))
    return {};
  if (S_ISDIR(st.st_mode))
    return std::make_error_code(std::errc::is_a_directory);
  if (S_ISFIFO(st.st_mode))
    return InputFileError::Fifo;
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
    return InputFileError::Device;
  if (S_ISSOCK(st.st_mode))
    return InputFileError::Socket;
  return InputFileError::NotRegular;
}

ErrorOr<std::unique_ptr<MemoryBuffer>>
getRegularFile(const Twine &path, bool requiresNullTerminator) {
  SmallString<256> storage;
  StringRef p = path.toNullTerminatedStringRef(storage);
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
  int fd = ::open(p.data(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    return std::error_code(errno, std::generic_category());
  struct stat st;
  std::error_code ec;
  if (::fstat(fd, &st) != 0)
    ec = std::error_code(errno, std::generic_category());
  else
    ec = classify(st);
  if (ec) {
    ::close(fd);
    return ec;
  }
  // A regular file: O_NONBLOCK has no effect on its reads or mapping.
  auto buffer = MemoryBuffer::getOpenFile(sys::fs::convertFDToNativeFile(fd),
                                          p, uint64_t(st.st_size),
                                          requiresNullTerminator,
                                          /*IsVolatile=*/false);
  ::close(fd); // a mapping outlives the descriptor
  return buffer;
}

Error checkRegularFile(const Twine &path) {
  std::string p = path.str();
  struct stat st;
  if (::stat(p.c_str(), &st) != 0)
    return createStringError(std::error_code(errno, std::generic_category()),
                             "cannot open '" + p + "': " +
                                 std::strerror(errno));
  if (std::error_code ec = classify(st))
    return createStringError(ec, "cannot open '" + p + "': " + ec.message());
  return Error::success();
}

Error checkJSONNesting(StringRef text, unsigned maxDepth) {
  unsigned depth = 0;
  bool inString = false, escaped = false;
  for (char c : text) {
    if (inString) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        inString = false;
      continue;
    }
    if (c == '"') {
      inString = true;
    } else if (c == '{' || c == '[') {
      if (++depth > maxDepth)
        return createStringError(inconvertibleErrorCode(),
                                 "JSON nests deeper than " + Twine(maxDepth) +
                                     " levels");
    } else if ((c == '}' || c == ']') && depth) {
      --depth; // unbalanced input is left to the parser to report
    }
  }
  return Error::success();
}

bool isPathWithin(StringRef path, StringRef dir) {
  dir = dir.rtrim('/');
  if (!path.starts_with(dir))
    return false;
  return path.size() == dir.size() || path[dir.size()] == '/';
}

std::string resolvePathForCreation(StringRef path) {
  SmallString<256> abs(path);
  sys::fs::make_absolute(abs);
  sys::path::remove_dots(abs, /*remove_dot_dot=*/false);
  // Walk up to the longest prefix that exists and resolve that.
  SmallString<256> prefix(abs), rest;
  while (!prefix.empty()) {
    SmallString<256> real;
    if (!sys::fs::real_path(prefix, real)) {
      if (!rest.empty())
        sys::path::append(real, rest);
      sys::path::remove_dots(real, /*remove_dot_dot=*/true);
      return std::string(real);
    }
    StringRef name = sys::path::filename(prefix);
    SmallString<256> newRest(name);
    if (!rest.empty())
      sys::path::append(newRest, rest);
    rest = newRest;
    StringRef parent = sys::path::parent_path(prefix);
    if (parent == prefix)
      break;
    prefix = SmallString<256>(parent);
  }
  sys::path::remove_dots(abs, /*remove_dot_dot=*/true);
  return std::string(abs);
}

Expected<std::string> resolveInside(StringRef dir, StringRef relative) {
  auto refuse = [&] {
    return createStringError(std::make_error_code(std::errc::permission_denied),
                             "'" + relative +
                                 "' must be a relative path inside '" + dir +
                                 "' (no absolute path, '..' or symlink "
                                 "leading out)");
  };
  if (relative.empty() || sys::path::is_absolute(relative))
    return refuse();
  for (StringRef part : make_range(sys::path::begin(relative),
                                   sys::path::end(relative)))
    if (part == "..")
      return refuse();
  std::string base = resolvePathForCreation(dir.empty() ? "." : dir);
  SmallString<256> joined(dir.empty() ? "." : dir);
  sys::path::append(joined, relative);
  std::string target = resolvePathForCreation(joined);
  if (!isPathWithin(target, base) || target == base)
    return refuse();
  return target;
}

} // namespace quant_mlir
