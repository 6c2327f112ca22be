//===- Support.cpp - small helpers shared by lib/Export's files ------------===//
// See Support.h.
//===----------------------------------------------------------------------===//

#include "Support.h"

#include "llvm/Support/MemoryBuffer.h"

using namespace llvm;

namespace quant_mlir::hf {

Error makeError(const Twine &msg) {
  return createStringError(inconvertibleErrorCode(), msg);
}

Expected<json::Object> readJSONObject(StringRef path) {
  auto buf = MemoryBuffer::getFile(path);
  if (!buf)
    return makeError("cannot read '" + path + "': " + buf.getError().message());
  auto value = json::parse((*buf)->getBuffer());
  if (!value)
    return makeError("'" + path + "' is not JSON: " +
                     toString(value.takeError()));
  if (!value->getAsObject())
    return makeError("'" + path + "' is not a JSON object");
  return std::move(*value->getAsObject());
}

} // namespace quant_mlir::hf
