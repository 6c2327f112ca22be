#!/usr/bin/env bash
# Builds the libFuzzer targets (clang-14, ASan + UBSan, in build-fuzz/) and
# runs each for SECONDS (default 60); exits non-zero if any target crashes,
# leaks, times out or runs out of memory.
#
#   scripts/fuzz.sh [--no-build | --build-only] [--keep-going] [--seed N]
#                   [SECONDS] [TARGET...]
#
# Seeds come from the test fixtures (fuzz/make_seeds.py) and are regenerated
# on every run; what the fuzzers find is kept in build-fuzz/fuzz/<target>/
# corpus, crash reproducers in build-fuzz/fuzz/<target>/artifacts. Every
# reproducer once fixed is committed under fuzz/regress/<target>/ and rerun
# before each target fuzzes, so a fixed crash stays fixed whatever the
# fuzzer's random walk reaches. --seed N fixes libFuzzer's random seed
# (ctest's entry does, so CI walks the same path on every clean clone).
# --no-build (ctest's `fuzz` entry): exit 77 (skipped) when build-fuzz/ holds
# no fuzzers instead of building them. --build-only (scripts/test.sh, so CI's
# ctest runs them): build, run nothing. --keep-going: fork mode that goes on
# after a crash (each reproducer saved), for long runs that collect them all.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${QUANT_MLIR_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
CLANG=/usr/lib/llvm-14/bin
ALL=(safetensors-fuzzer onnx-fuzzer tokens-fuzzer wq-mlir-fuzzer)

build=1 run=1 keep=() seed=()
while [[ "${1:-}" == --* ]]; do
  case "$1" in
    --no-build) build=0 ;;
    --build-only) run=0 ;;
    --keep-going) keep=(-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1) ;;
    --seed) seed=(-seed="$2"); shift ;;
    *) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
seconds="${1:-60}"
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${ALL[@]}")

if [[ $build == 1 ]]; then
  if [[ ! -f "$BUILD/build.ninja" ]]; then
    # ccache where the machine has it (not one of setup.sh's packages).
    launcher=()
    if command -v ccache >/dev/null; then
      launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    fi
    cmake -G Ninja -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_C_COMPILER="$CLANG/clang" -DCMAKE_CXX_COMPILER="$CLANG/clang++" \
      "${launcher[@]}" \
      -DQUANT_MLIR_FUZZ=ON >/dev/null
  fi
  ninja -C "$BUILD" -j"${QUANT_MLIR_JOBS:-2}" quant-fuzzers | { grep -v '^ninja: no work to do' || true; }
  [[ $run == 1 ]] || exit 0
else
  for t in "${targets[@]}"; do
    if [[ ! -x "$BUILD/bin/$t" ]]; then
      echo "fuzz: $BUILD/bin/$t not built (run scripts/fuzz.sh once); skipped"
      exit 77
    fi
  done
fi

SEEDS="$BUILD/fuzz/seeds"
rm -rf "$SEEDS"
/usr/bin/python3 "$ROOT/fuzz/make_seeds.py" "$SEEDS"

# abort_on_error: a UBSan finding is a crash; detect_leaks stays on.
# allow_user_poisoning=0: LLVM's BumpPtrAllocator poisons its slabs from our
# instrumented inline code but allocates from them inside the uninstrumented
# libMLIR.so, which reads as use-after-poison (a false positive).
export ASAN_OPTIONS="abort_on_error=1:symbolize=1:allow_user_poisoning=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$ROOT/fuzz/lsan.supp"
export ASAN_SYMBOLIZER_PATH="$CLANG/llvm-symbolizer"
status=0
for t in "${targets[@]}"; do
  dir="$BUILD/fuzz/$t"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  log="$dir/last-run.log"
  limits=(-timeout=20 -rss_limit_mb=2560 -malloc_limit_mb=2560)
  regress=("$ROOT"/fuzz/regress/"$t"/*)
  if [[ -e "${regress[0]}" ]] &&
     ! "$BUILD/bin/$t" "${limits[@]}" "${regress[@]}" >"$dir/regress.log" 2>&1; then
    status=1
    echo "fuzz: $t: a committed reproducer crashes again (log: $dir/regress.log)"
    grep -E "ERROR|SUMMARY|Running:" "$dir/regress.log" | tail -5 || true
    continue
  fi
  # One process (-jobs would need more cores); -timeout catches hangs,
  # -rss_limit_mb runaway allocations.
  if "$BUILD/bin/$t" "$dir/corpus" "$SEEDS/$t" "${keep[@]}" "${seed[@]}" \
       -max_total_time="$seconds" "${limits[@]}" -max_len=65536 \
       -print_final_stats=1 -artifact_prefix="$dir/artifacts/" >"$log" 2>&1; then
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' ||
            grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#' || echo '?')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    crashes=$(ls "$dir/artifacts" | wc -l)
    echo "fuzz: $t: $execs executions in ${seconds} s ($cov), $crashes reproducers in $dir/artifacts"
    [[ ${#keep[@]} -eq 0 || $crashes -eq 0 ]] || status=1
  else
    status=1
    echo "fuzz: $t: FAILED (log: $log)"
    grep -E "ERROR|SUMMARY|Test unit written" "$log" | head -5 || true
  fi
done
exit $status
