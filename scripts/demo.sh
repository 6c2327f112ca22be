#!/usr/bin/env bash
# The README's main command (for now): set up, build, and run a wq pipeline
# on examples/llama_mlp.mlir, printing the IR after each stage.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
OPT="${QUANT_MLIR_BUILD_DIR:-$ROOT/build}/bin/quant-opt"
IN="${1:-$ROOT/examples/llama_mlp.mlir}"

echo "== 1. wq-assign-scheme (4-bit, group 128; lm_head/embeddings skipped)"
"$OPT" "$IN" --wq-assign-scheme="bits=4 group-size=128"
echo "== 2. wq-expand-quantized-linear (reference semantics of packed layers)"
"$OPT" "$IN" --wq-expand-quantized-linear
echo "== 3. weights to arguments, convert-wq-to-linalg, bufferized and lowered to the LLVM dialect"
"$OPT" "$IN" --wq-weights-to-arguments --quant-cpu-lowering \
  | grep -c "llvm\\." | xargs printf "   %s LLVM dialect ops\n"
echo "   weights bound at run time, in argument order:"
"$OPT" "$IN" --wq-weights-to-arguments | grep -o 'wq.weight = "[^"]*"' | sed 's/^/     /'
