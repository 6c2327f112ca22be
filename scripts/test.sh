#!/usr/bin/env bash
# Sets up if needed, then runs every test (lit + gtest) through ctest.
#
#   scripts/test.sh [--sanitize] [CTEST ARGS...]
#
# --sanitize: the same suite on an AddressSanitizer + UBSan build of the whole
# project in build-sanitize/ (configured and built on first use; UBSan
# findings abort, leak checking is off: MLIR keeps process-lifetime caches).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
if [[ "${1:-}" == "--sanitize" ]]; then
  shift
  BUILD="$ROOT/build-sanitize"
  if [[ ! -f "$BUILD/build.ninja" ]]; then
    # ccache where the machine has it (not one of setup.sh's packages).
    launcher=()
    if command -v ccache >/dev/null; then
      launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    fi
    # -O1 -g1 (line tables): about half the compile time of -O2 -g, and
    # still symbolized stack traces.
    cmake -G Ninja -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_CXX_FLAGS_RELEASE="-O1 -g1 -DNDEBUG" \
      -DCMAKE_C_FLAGS_RELEASE="-O1 -g1 -DNDEBUG" \
      "${launcher[@]}" \
      -DQUANT_MLIR_SANITIZE=ON >/dev/null
  fi
  ninja -C "$BUILD" -j"${QUANT_MLIR_JOBS:-2}"
  # allow_user_poisoning=0: LLVM's BumpPtrAllocator poisons slabs from our
  # instrumented inline code and allocates from them in the uninstrumented
  # libMLIR.so, a false use-after-poison (scripts/fuzz.sh says the same).
  export ASAN_OPTIONS="abort_on_error=1:detect_leaks=0:allow_user_poisoning=0"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  cd "$BUILD"
  # python: the instrumented extension cannot load into Debian's
  # uninstrumented interpreter (ASan's runtime must come first in the process).
  exec ctest --output-on-failure -E '^(fuzz|python)$' "$@"
fi
# The libFuzzer targets (clang-14, build-fuzz/), so that ctest's `fuzz` entry
# runs each for a minute and fails on a crash, as CI must.
"$ROOT/scripts/fuzz.sh" --build-only
cd "${QUANT_MLIR_BUILD_DIR:-$ROOT/build}"
exec ctest --output-on-failure "$@"
