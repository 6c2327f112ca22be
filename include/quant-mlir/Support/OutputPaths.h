//===- OutputPaths.h - where tools may write --------------------*- C++ -*-===//
// Shared by the tools that write files: output names stay inside the
// directory they are relative to, outputs never replace an input, and
// temporaries are removed on SIGINT/SIGTERM/SIGHUP and, when a run was
// killed outright (SIGKILL), by the next run.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_SUPPORT_OUTPUTPATHS_H
#define QUANT_MLIR_SUPPORT_OUTPUTPATHS_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>

namespace quant_mlir {

/// `dir`/`name` for an output named by `option` (e.g. "--stats-archive"),
/// resolved; an error unless it stays inside `dir` after resolving symlinks.
llvm::Expected<std::string> resolveOutputInside(llvm::StringRef dir,
                                                llvm::StringRef name,
                                                llvm::StringRef option);

/// An error if writing (or, for a directory, replacing) `output` would
/// destroy one of `inputs`: the same file (also via links), or an input that
/// lies inside the `output` directory. Inputs that do not exist are ignored.
llvm::Error checkNotAnInput(llvm::StringRef output,
                            llvm::ArrayRef<std::string> inputs,
                            llvm::StringRef option);

/// `dir`/`name` with the platform's separator.
std::string joinPath(llvm::StringRef dir, llvm::StringRef name);

/// Flushes a file's data, or a directory's entries (the renames into it),
/// to the disk (fsync; a file system that cannot sync a directory has
/// nothing to flush). What a later step trusts after power loss is synced
/// before that step names it.
llvm::Error syncToDisk(llvm::StringRef path);

/// Puts the file `from` at `to` atomically: a hard link when both are on
/// one file system, else a copy; through a temporaryModel(to) renamed into
/// place, so `to` is never half-written and a dead run's temporary is found.
llvm::Error linkOrCopyAtomically(llvm::StringRef from, llvm::StringRef to);

/// Temporary names carry the creating process id and its start time,
/// `<base>.tmp-<pid>.<start>-XXXXXX`, so that a later run can tell
/// temporaries of dead processes from those of running ones, even when the
/// pid has been reused.
std::string temporaryModel(llvm::StringRef base);

/// Removes the entries of `dir` named `<prefix>.tmp-<pid>[.<start>]-...`
/// (any hidden `.<name>.tmp-...` if `prefix` is empty) whose process no
/// longer exists or whose pid now belongs to a process started at another
/// time; returns how many.
unsigned removeDeadTemporaries(llvm::StringRef dir,
                               llvm::StringRef prefix = "");

/// Registers a file or directory tree for removal if the process receives
/// SIGINT, SIGTERM or SIGHUP, or crashes (SIGSEGV, SIGABRT, ...); the handler
/// then passes the signal on to the previous handler. Up to 16 paths at a
/// time; the removal uses only async-signal-safe calls.
void removeTreeOnSignal(llvm::StringRef path);
void dontRemoveTreeOnSignal(llvm::StringRef path);

/// A directory `.<name>.tmp-<pid>.<start>-XXXXXX` beside `target`, removed with its
/// contents on destruction or on a signal unless keep() is called. Creating
/// one first sweeps the dead runs' temporaries from the same parent.
class TempDir {
public:
  static llvm::Expected<TempDir> createBeside(llvm::StringRef target);
  TempDir(TempDir &&other);
  TempDir &operator=(TempDir &&) = delete;
  ~TempDir();
  const std::string &path() const { return dirPath; }
  /// After it was renamed into place: nothing to remove any more.
  void keep();

private:
  TempDir() = default;
  std::string dirPath;
};

} // namespace quant_mlir

#endif // QUANT_MLIR_SUPPORT_OUTPUTPATHS_H
