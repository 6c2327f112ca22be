#!/usr/bin/env bash
# The README's main command: quantize the real Shakespeare model in
# ../shared/data/shakespeare (3.7M Llama, llama2.c format, its sentencepiece
# tokenizer) with GPTQ and AWQ at 4 and 3 bits (group 128), calibrated on text
# from train.txt, and evaluate each beside fp32 on valid.txt on the CPU.
# Arguments after the script are passed to every quant-compile (e.g. --seed 1).
set -euo pipefail
EXTRA=("$@")
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
BIN="${QUANT_MLIR_BUILD_DIR:-$ROOT/build}/bin"
DATA="${QUANT_MLIR_DATA:-$ROOT/../shared/data/shakespeare}"
TOKENIZER="$DATA/shakespeare-1k.model"
WORK="${QUANT_MLIR_BUILD_DIR:-$ROOT/build}/real-model"
PY=/usr/bin/python3
CALIB=(--calib-data "$DATA/train.txt" --tokenizer "$TOKENIZER" --calib-samples 128 --seq-len 256)
MODELS=(fp32)
mkdir -p "$WORK"

# 1. The llama2.c checkpoint enters like a user's model: as ONNX.
convert() {
  [ -f "$WORK/onnx/model.onnx" ] ||
    "$PY" "$ROOT/python/quant_mlir/llama2c_to_onnx.py" "$DATA/shakespeare-llama-3.7M.bin" \
      -o "$WORK/onnx" >/dev/null
}

# 2. fp32 and the quantized models: asymmetric (zero point) 4 and 3 bits,
#    group 128, GPTQ and AWQ, each calibrated on the same 128 x 256 tokens of
#    train.txt (same seed: the same windows). AWQ's 4-bit layers are packed
#    in #wq.packing<awq>, its 3-bit ones and GPTQ's in gptq packing.
compile() {
  "$BIN/quant-compile" "$WORK/onnx/model.onnx" --method none --force --quiet -o "$WORK/fp32" >/dev/null
  local bits method
  for bits in 4 3; do
    for method in gptq awq; do
      echo "[run] $method ${bits}-bit g128" >&2
      "$BIN/quant-compile" "$WORK/onnx/model.onnx" --method "$method" --bits "$bits" \
        --group-size 128 --zero-point "${CALIB[@]}" --force --quiet \
        -o "$WORK/$method-w${bits}g128" "${EXTRA[@]}" >/dev/null
      MODELS+=("$method-w${bits}g128")
    done
  done
}

# 3. Perplexity on all of valid.txt (windows of 256), tokens/s, weight size.
evaluate() {
  printf '\n%-14s %12s %10s %12s\n' model perplexity tokens/s "weights MiB"
  local m
  for m in "${MODELS[@]}"; do
    "$BIN/quant-run" "$WORK/$m" --eval-data "$DATA/valid.txt" --tokenizer "$TOKENIZER" \
      --seq-len 256 --json --quiet |
      "$PY" -c "import json,sys,os; r=json.load(sys.stdin); print('%-14s %12.4f %10.1f %12.3f' % ('$m', r['perplexity'], r['tokens_per_second'], os.path.getsize('$WORK/$m/model.safetensors')/2**20))"
  done
}

# 4. What the models write: greedy from the same prompt, 64 new tokens, with
#    the KV cache the compiler derives (wq-derive-kv-cache).
sample() {
  local m
  for m in fp32 gptq-w4g128 awq-w4g128 gptq-w3g128; do
    printf '\n--- %s ---\n' "$m"
    "$BIN/quant-run" "$WORK/$m" --tokenizer "$TOKENIZER" --prompt $'KING HENRY:\nWhat says' \
      --max-new-tokens 64 --max-seq-len 128 --quiet
    echo
  done
}

convert
compile
evaluate
sample
