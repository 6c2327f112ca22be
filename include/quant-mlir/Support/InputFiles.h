//===- InputFiles.h - opening untrusted input files safely ------*- C++ -*-===//
// What every reader of user-supplied files shares: open only regular files
// (a FIFO would block open() or read() forever, a device never ends), bound
// the nesting of JSON before llvm::json::parse recurses into it, and keep
// paths named inside a model (ONNX external data) inside its directory after
// resolving symlinks.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_SUPPORT_INPUTFILES_H
#define QUANT_MLIR_SUPPORT_INPUTFILES_H

#include "llvm/ADT/StringRef.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/ErrorOr.h"
#include "llvm/Support/MemoryBuffer.h"

#include <memory>
#include <string>
#include <system_error>

namespace quant_mlir {

/// Why a path that exists was not opened; message() reads e.g. "is a FIFO,
/// not a regular file", so callers' "cannot open 'x': <message>" stays whole.
enum class InputFileError { Fifo = 1, Device, Socket, NotRegular };
std::error_code make_error_code(InputFileError e);

/// MemoryBuffer::getFile for untrusted paths: opens without blocking
/// (O_NONBLOCK, so a FIFO cannot hang open()), refuses anything fstat does
/// not call a regular file, then maps or reads it like getFile.
llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>>
getRegularFile(const llvm::Twine &path, bool requiresNullTerminator = false);

/// The same checks without reading: an error naming `path` unless it is a
/// regular file (after following symlinks).
llvm::Error checkRegularFile(const llvm::Twine &path);

/// llvm::json::parse recurses once per nesting level, so deeply nested input
/// overflows the stack. Real inputs nest a few levels; this scans brackets
/// (outside strings) and fails with "JSON nests deeper than N levels".
constexpr unsigned kMaxJSONDepth = 64;
llvm::Error checkJSONNesting(llvm::StringRef text,
                             unsigned maxDepth = kMaxJSONDepth);

/// `dir`/`relative`, resolved with realpath, if it lies inside realpath(dir);
/// otherwise an error (absolute paths, `..`, and symlinks leading out are all
/// refused). `relative` need not exist; its existing prefix is resolved.
llvm::Expected<std::string> resolveInside(llvm::StringRef dir,
                                          llvm::StringRef relative);

/// True if `path` equals `dir` or lies below it (both already resolved).
bool isPathWithin(llvm::StringRef path, llvm::StringRef dir);

/// realpath of the longest existing prefix of `path`, with the rest appended
/// (made absolute first): what `path` will be once created.
std::string resolvePathForCreation(llvm::StringRef path);

} // namespace quant_mlir

namespace std {
template <> struct is_error_code_enum<quant_mlir::InputFileError> : true_type {};
} // namespace std

#endif // QUANT_MLIR_SUPPORT_INPUTFILES_H
