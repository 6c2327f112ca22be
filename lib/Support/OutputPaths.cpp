//===- OutputPaths.cpp - where tools may write -----------------------------===//

#include "quant-mlir/Support/OutputPaths.h"
#include "quant-mlir/Support/InputFiles.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <optional>

using namespace llvm;
namespace fs = llvm::sys::fs;

namespace quant_mlir {

static Error fail(const Twine &msg) {
  return createStringError(inconvertibleErrorCode(), msg);
}

Expected<std::string> resolveOutputInside(StringRef dir, StringRef name,
                                          StringRef option) {
  Expected<std::string> path = resolveInside(dir, name);
  if (!path) {
    consumeError(path.takeError());
    return fail(option + " '" + name + "' must name a file inside '" + dir +
                "' (no absolute path, '..' or symlink leading out)");
  }
  return path;
}

Error checkNotAnInput(StringRef output, ArrayRef<std::string> inputs,
                      StringRef option) {
  std::string out = resolvePathForCreation(output);
  for (const std::string &input : inputs) {
    if (input.empty() || !fs::exists(input))
      continue;
    std::string in = resolvePathForCreation(input);
    bool same = false;
    if (fs::exists(output))
      (void)fs::equivalent(output, input, same);
    if (same || in == out)
      return fail(option + " '" + output + "' would overwrite the input '" +
                  input + "'");
    if (isPathWithin(in, out))
      return fail(option + " '" + output + "' would replace the directory "
                  "holding the input '" + input + "'");
  }
  return Error::success();
}

std::string joinPath(StringRef dir, StringRef name) {
  SmallString<256> p(dir);
  sys::path::append(p, name);
  return p.str().str();
}

Error syncToDisk(StringRef path) {
  std::string p = path.str();
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fail("cannot open '" + path + "' to sync it: " +
                std::strerror(errno));
  int rc = ::fsync(fd), err = errno;
  ::close(fd);
  // Some file systems cannot sync a directory (EINVAL): nothing to flush.
  if (rc != 0 && err != EINVAL)
    return fail("cannot sync '" + path + "': " + std::strerror(err));
  return Error::success();
}

// The start time of process `pid` in clock ticks since boot (field 22 of
// /proc/PID/stat), or 0 when it cannot be read. A pid and its start time
// name a process uniquely, even after the pid is reused.
static unsigned long long processStartTime(pid_t pid) {
  auto buf = llvm::MemoryBuffer::getFileAsStream("/proc/" + Twine(pid) + "/stat");
  if (!buf)
    return 0;
  // The command name (field 2) may hold spaces and ')': fields 3.. follow
  // the last ')'.
  StringRef text = (*buf)->getBuffer();
  size_t close = text.rfind(')');
  if (close == StringRef::npos)
    return 0;
  SmallVector<StringRef> fields;
  text.drop_front(close + 1).split(fields, ' ', -1, /*KeepEmpty=*/false);
  unsigned long long start = 0;
  if (fields.size() < 20 || fields[19].getAsInteger(10, start))
    return 0;
  return start;
}

std::string temporaryModel(StringRef base) {
  // Not cached: a forked child has its own pid and start time.
  return (base + ".tmp-" + Twine(::getpid()) + "." +
          Twine(processStartTime(::getpid())) + "-%%%%%%")
      .str();
}

namespace {
/// Who made a temporary: `<prefix>.tmp-<pid>.<start>-...` (or the older
/// `<prefix>.tmp-<pid>-...`, start 0).
struct Owner {
  pid_t pid = 0;
  unsigned long long start = 0;
};
} // namespace

static std::optional<Owner> temporaryOwner(StringRef name, StringRef prefix) {
  size_t at = name.rfind(".tmp-");
  if (at == StringRef::npos)
    return std::nullopt;
  // Without a prefix only hidden names, as TempDir creates them.
  if (prefix.empty() ? !name.starts_with(".") : name.take_front(at) != prefix)
    return std::nullopt;
  StringRef rest = name.drop_front(at + 5);
  StringRef digits = rest.take_while(isDigit);
  rest = rest.drop_front(digits.size());
  long long pid;
  if (digits.empty() || digits.getAsInteger(10, pid) || pid <= 0 ||
      pid > INT32_MAX)
    return std::nullopt;
  Owner owner{pid_t(pid), 0};
  if (rest.consume_front(".")) {
    StringRef startDigits = rest.take_while(isDigit);
    rest = rest.drop_front(startDigits.size());
    if (startDigits.empty() || startDigits.getAsInteger(10, owner.start))
      return std::nullopt;
  }
  if (!rest.starts_with("-"))
    return std::nullopt;
  return owner;
}

/// Whether the process that made a temporary has ended: kill(pid, 0) fails
/// with ESRCH only if no such process exists; a live pid with another start
/// time is a reused pid, so the maker is gone too.
static bool ownerIsDead(const Owner &owner) {
  if (owner.pid == ::getpid())
    return false;
  if (::kill(owner.pid, 0) != 0 && errno == ESRCH)
    return true;
  if (owner.start == 0)
    return false; // older name: the pid alone cannot tell
  unsigned long long now = processStartTime(owner.pid);
  return now != 0 && now != owner.start;
}

unsigned removeDeadTemporaries(StringRef dir, StringRef prefix) {
  unsigned removed = 0;
  std::error_code ec;
  SmallVector<std::string> dead;
  for (fs::directory_iterator it(dir.empty() ? "." : dir, ec), end;
       !ec && it != end; it.increment(ec)) {
    StringRef name = sys::path::filename(it->path());
    std::optional<Owner> owner = temporaryOwner(name, prefix);
    if (owner && ownerIsDead(*owner))
      dead.push_back(it->path());
  }
  for (const std::string &path : dead)
    if (!fs::remove_directories(path) || !fs::remove(path))
      ++removed;
  return removed;
}

//===----------------------------------------------------------------------===//
// Removal on signals
//===----------------------------------------------------------------------===//

namespace {
struct Slot {
  char path[4096];
  std::atomic<bool> used{false};
};
Slot slots[16];
// The interrupts, and the crashes (whose removal LLVM does for files only).
constexpr int kSignals[] = {SIGINT,  SIGTERM, SIGHUP, SIGABRT,
                            SIGSEGV, SIGBUS,  SIGILL, SIGFPE};
constexpr int kNumSignals = sizeof(kSignals) / sizeof(kSignals[0]);
struct sigaction previous[kNumSignals];
std::atomic<bool> installed{false};
} // namespace

// Removes the tree at `name` (relative to `parent`) with raw system calls
// only: no allocation, nothing that takes a lock.
static void removeTreeAt(int parent, const char *name, int depth) {
  if (::unlinkat(parent, name, 0) == 0)
    return;
  if ((errno != EISDIR && errno != EPERM) || depth > 16)
    return;
  int fd = ::openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                                      O_CLOEXEC);
  if (fd < 0)
    return;
  alignas(8) char buf[4096];
  // Two sweeps: removing entries while reading may make getdents skip some.
  for (int sweep = 0; sweep < 2; ++sweep, ::lseek(fd, 0, SEEK_SET)) {
   for (;;) {
    long n = ::syscall(SYS_getdents64, fd, buf, sizeof(buf));
    if (n <= 0)
      break;
    for (long off = 0; off < n;) {
      struct Entry {
        uint64_t ino;
        int64_t off;
        unsigned short reclen;
        unsigned char type;
        char name[1];
      };
      auto *e = reinterpret_cast<Entry *>(buf + off);
      off += e->reclen;
      if (std::strcmp(e->name, ".") == 0 || std::strcmp(e->name, "..") == 0)
        continue;
      removeTreeAt(fd, e->name, depth + 1);
    }
   }
  }
  ::close(fd);
  ::unlinkat(parent, name, AT_REMOVEDIR);
}

static void onSignal(int sig) {
  int savedErrno = errno;
  for (Slot &slot : slots)
    if (slot.used.exchange(false))
      removeTreeAt(AT_FDCWD, slot.path, 0);
  // Hand the signal on to whoever handled it before (LLVM's file removal,
  // or the default action that ends the process).
  for (int i = 0; i < kNumSignals; ++i)
    if (kSignals[i] == sig)
      ::sigaction(sig, &previous[i], nullptr);
  errno = savedErrno;
  ::raise(sig);
}

static void installHandlers() {
  if (installed.exchange(true))
    return;
  struct sigaction action;
  std::memset(&action, 0, sizeof(action));
  action.sa_handler = onSignal;
  // LLVM's alternate stack, where set up: a stack overflow can still clean up.
  action.sa_flags = SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  for (int i = 0; i < kNumSignals; ++i)
    ::sigaction(kSignals[i], &action, &previous[i]);
}

void removeTreeOnSignal(StringRef path) {
  SmallString<256> abs(path);
  fs::make_absolute(abs);
  if (abs.size() >= sizeof(Slot::path))
    return;
  installHandlers();
  for (Slot &slot : slots) {
    if (slot.used.load())
      continue;
    std::memcpy(slot.path, abs.c_str(), abs.size() + 1);
    slot.used.store(true);
    return;
  }
}

void dontRemoveTreeOnSignal(StringRef path) {
  SmallString<256> abs(path);
  fs::make_absolute(abs);
  for (Slot &slot : slots)
    if (slot.used.load() && abs == slot.path)
      slot.used.store(false);
}

//===----------------------------------------------------------------------===//
// TempDir
//===----------------------------------------------------------------------===//

Expected<TempDir> TempDir::createBeside(StringRef target) {
  SmallString<256> abs(target);
  fs::make_absolute(abs);
  sys::path::remove_dots(abs, /*remove_dot_dot=*/true);
  StringRef parent = sys::path::parent_path(abs);
  std::string name = ("." + sys::path::filename(abs)).str();
  removeDeadTemporaries(parent);
  SmallString<256> model(parent);
  sys::path::append(model, temporaryModel(name));
  SmallString<256> work;
  std::error_code ec;
  for (int attempt = 0; attempt < 16; ++attempt) {
    if ((ec = fs::getPotentiallyUniqueFileName(model, work)))
      break;
    if (!(ec = fs::create_directory(work, /*IgnoreExisting=*/false)))
      break;
  }
  if (ec)
    return fail("cannot create a temporary directory beside '" + target +
                "': " + ec.message());
  TempDir dir;
  dir.dirPath = std::string(work);
  removeTreeOnSignal(dir.dirPath);
  return dir;
}

TempDir::TempDir(TempDir &&other) : dirPath(std::move(other.dirPath)) {
  other.dirPath.clear();
}

TempDir::~TempDir() {
  if (dirPath.empty())
    return;
  dontRemoveTreeOnSignal(dirPath);
  (void)fs::remove_directories(dirPath);
}

void TempDir::keep() {
  dontRemoveTreeOnSignal(dirPath);
  dirPath.clear();
}

Error linkOrCopyAtomically(StringRef from, StringRef to) {
  SmallString<256> tmpPath;
  int fd;
  if (std::error_code ec =
          fs::createUniqueFile(temporaryModel(to), fd, tmpPath))
    return createStringError("cannot create a temporary beside '" + to +
                             "': " + ec.message());
  fs::closeFile(fd);
  fs::remove(tmpPath);
  if (fs::create_hard_link(from, tmpPath))
    if (std::error_code ec = fs::copy_file(from, tmpPath)) {
      fs::remove(tmpPath);
      return createStringError("cannot copy '" + from + "' to '" + to +
                               "': " + ec.message());
    }
  if (std::error_code ec = fs::rename(tmpPath, to)) {
    fs::remove(tmpPath);
    return createStringError("cannot write '" + to + "': " + ec.message());
  }
  return Error::success();
}

} // namespace quant_mlir
