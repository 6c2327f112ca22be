//===- SystemMemory.cpp - the machine's physical memory ---------------------===//
// sysconf on Unix; unknown (0) elsewhere.
//===----------------------------------------------------------------------===//

#include "quant-mlir/Support/SystemMemory.h"

#include "llvm/Config/llvm-config.h" // LLVM_ON_UNIX
#if LLVM_ON_UNIX
#include <unistd.h>
#endif

uint64_t quant_mlir::physicalMemory() {
#if LLVM_ON_UNIX
  long pages = ::sysconf(_SC_PHYS_PAGES), size = ::sysconf(_SC_PAGESIZE);
  if (pages > 0 && size > 0)
    return uint64_t(pages) * uint64_t(size);
#endif
  return 0;
}
