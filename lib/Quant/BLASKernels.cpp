//===- BLASKernels.cpp - Make OpenBLAS use this CPU's kernels -------------===//
//
// See BLASKernels.h for why. OpenBLAS exports its dynamic-arch entry points
// (driver/others/dynamic.c: gotoblas_dynamic_init reads OPENBLAS_CORETYPE,
// points `gotoblas` at that core's kernel table and sets its blocking
// parameters; gotoblas_dynamic_quit clears the table). They are declared weak
// so a BLAS without them (a single-architecture build, another library)
// links and is left alone.
//
//===----------------------------------------------------------------------===//

#include "quant-mlir/Quant/BLASKernels.h"

#include <cstdlib>
#include <cstring>
#include <mutex>

extern "C" {
char *openblas_get_corename(void) __attribute__((weak));
void gotoblas_dynamic_init(void) __attribute__((weak));
void gotoblas_dynamic_quit(void) __attribute__((weak));
}

namespace quant_mlir::quant {

static const char *bestCoreType() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return "Haswell";
  return nullptr;
}

std::string configureBLASKernels() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (!openblas_get_corename || !gotoblas_dynamic_init ||
        !gotoblas_dynamic_quit)
      return;
    // Only the fallback is replaced: a core OpenBLAS recognised, or one the
    // user forced, is what they get.
    if (std::getenv("OPENBLAS_CORETYPE") ||
        std::strcmp(openblas_get_corename(), "Prescott") != 0)
      return;
    const char *core = bestCoreType();
    if (!core)
      return;
    // gotoblas_dynamic_init reads the choice from the environment; the
    // variable is removed again so child processes select for themselves.
    ::setenv("OPENBLAS_CORETYPE", core, /*overwrite=*/0);
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
    ::unsetenv("OPENBLAS_CORETYPE");
  });
  return openblas_get_corename ? openblas_get_corename() : "unknown";
}

} // namespace quant_mlir::quant
