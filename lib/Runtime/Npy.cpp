//===- Npy.cpp - numpy .npy files as host tensors -------------------------===//
// Format: magic "\x93NUMPY", version, header length, a Python dict literal
// with 'descr', 'fortran_order' and 'shape', padded to 64 bytes.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Runtime/Npy.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/ToolOutputFile.h"

using namespace quant_mlir;
using llvm::StringRef;

static llvm::Error fail(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

static const struct {
  const char *descr;
  safetensors::DType dtype;
} kDescrs[] = {{"<f8", safetensors::DType::F64}, {"<f4", safetensors::DType::F32},
               {"<f2", safetensors::DType::F16}, {"<i8", safetensors::DType::I64},
               {"<i4", safetensors::DType::I32}, {"|i1", safetensors::DType::I8},
               {"|u1", safetensors::DType::U8},  {"|b1", safetensors::DType::BOOL}};

llvm::Expected<HostTensor> quant_mlir::readNpy(StringRef path) {
  auto buf = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                         /*RequiresNullTerminator=*/false);
  if (!buf)
    return fail("cannot read '" + path + "': " + buf.getError().message());
  StringRef data = (*buf)->getBuffer();
  if (data.size() < 10 || !data.starts_with("\x93NUMPY"))
    return fail("'" + path + "' is not a .npy file");
  size_t len, off;
  if (data[6] == 1) {
    len = uint8_t(data[8]) | (size_t(uint8_t(data[9])) << 8);
    off = 10;
  } else {
    if (data.size() < 12)
      return fail("'" + path + "': truncated header");
    len = uint8_t(data[8]) | (size_t(uint8_t(data[9])) << 8) |
          (size_t(uint8_t(data[10])) << 16) | (size_t(uint8_t(data[11])) << 24);
    off = 12;
  }
  if (off + len > data.size())
    return fail("'" + path + "': header runs past the end");
  StringRef header = data.substr(off, len);
  if (header.contains("'fortran_order': True"))
    return fail("'" + path + "': Fortran-order arrays are not supported");
  HostTensor t;
  bool known = false;
  for (const auto &d : kDescrs)
    if (header.contains((llvm::Twine("'descr': '") + d.descr + "'").str())) {
      t.dtype = d.dtype;
      known = true;
    }
  if (!known)
    return fail("'" + path + "': unsupported dtype in header " + header.trim());
  size_t at = header.find("'shape': (");
  if (at == StringRef::npos)
    return fail("'" + path + "': no shape in header");
  StringRef dims = header.drop_front(at + 10);
  dims = dims.take_until([](char c) { return c == ')'; });
  llvm::SmallVector<StringRef> parts;
  dims.split(parts, ',', -1, false);
  uint64_t numel = 1;
  for (StringRef p : parts) {
    p = p.trim();
    if (p.empty())
      continue;
    int64_t d;
    if (p.getAsInteger(10, d) || d < 0 || (d > 0 && numel > (uint64_t(1) << 40) / uint64_t(d)))
      return fail("'" + path + "': bad dim '" + p + "'");
    t.shape.push_back(d);
    numel *= uint64_t(d);
  }
  uint64_t bytes = numel * safetensors::dtypeSize(t.dtype);
  if (off + len + bytes != data.size())
    return fail("'" + path + "': " + llvm::Twine(data.size() - off - len) +
                " data bytes for " + llvm::Twine(bytes) + " expected");
  const uint8_t *p = reinterpret_cast<const uint8_t *>(data.data()) + off + len;
  t.data.assign(p, p + bytes);
  return t;
}

llvm::Error quant_mlir::writeNpy(StringRef path, const HostTensor &t) {
  const char *descr = nullptr;
  for (const auto &d : kDescrs)
    if (d.dtype == t.dtype)
      descr = d.descr;
  if (!descr)
    return fail("cannot write " + safetensors::dtypeName(t.dtype) + " as .npy");
  std::string shape;
  for (int64_t d : t.shape)
    shape += std::to_string(d) + ", ";
  std::string header = std::string("{'descr': '") + descr +
                       "', 'fortran_order': False, 'shape': (" + shape + "), }";
  size_t total = 10 + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ') + "\n";
  std::error_code ec;
  llvm::ToolOutputFile out(path, ec, llvm::sys::fs::OF_None);
  if (ec)
    return llvm::createStringError(ec, "cannot write '" + path + "'");
  out.os() << "\x93NUMPY" << char(1) << char(0) << char(header.size() & 0xff)
           << char(header.size() >> 8) << header;
  out.os().write(reinterpret_cast<const char *>(t.data.data()), t.data.size());
  out.keep();
  return llvm::Error::success();
}
