#!/usr/bin/env bash
# The README's main command: quantize the real model in ../shared/data
# (stories260K, llama2.c format) with GPTQ and evaluate it beside fp32 on the
# CPU. Arguments after the script are passed to quant-compile (e.g. --bits 3).
set -euo pipefail
EXTRA=("$@")
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
BIN="${QUANT_MLIR_BUILD_DIR:-$ROOT/build}/bin"
CKPT="${QUANT_MLIR_MODEL:-$ROOT/../shared/data/stories260K.bin}"
WORK="${QUANT_MLIR_BUILD_DIR:-$ROOT/build}/real-model"
PY=/usr/bin/python3
mkdir -p "$WORK"

# 1. The llama2.c checkpoint enters like a user's model: as ONNX.
[ -f "$WORK/onnx/model.onnx" ] ||
  "$PY" "$ROOT/python/quant_mlir/llama2c_to_onnx.py" "$CKPT" -o "$WORK/onnx" >/dev/null
# 2. It ships no text: calibration and evaluation tokens are sampled from the
#    fp model (disjoint seeds), once, and cached.
for spec in "calib 0" "eval 1"; do
  read -r name seed <<<"$spec"
  [ -f "$WORK/$name.npy" ] || { echo "[run] sampling 16 x 512 $name tokens from the model (once)" >&2;
    "$PY" "$ROOT/python/quant_mlir/sample_tokens.py" "$CKPT" -o "$WORK/$name.npy" --count 16 --length 512 --seed "$seed" >/dev/null; }
done

# 3. fp32 baseline and the quantized model. hidden 64 cannot hold group 128,
#    down_proj's K = 172 packs only at 8 bits per channel, and the MLP's N = 172
#    rules out packed zero points (symmetric, as AutoGPTQ's default).
"$BIN/quant-compile" "$WORK/onnx/model.onnx" --method none --force --quiet -o "$WORK/fp32" >/dev/null
"$BIN/quant-compile" "$WORK/onnx/model.onnx" --method gptq --bits 4 --group-size 32 \
  --desc-act --damp-percent 0.01 --calib-data "$WORK/calib.npy" \
  --calib-samples 32 --seq-len 512 --overrides '*.down_proj:bits=8:group-size=-1' \
  --force -o "$WORK/gptq-w4g32" "${EXTRA[@]}"

# 4. Evaluate both on the held-out tokens.
printf '\n%-12s %12s %10s %12s\n' model perplexity tokens/s "weights MiB"
for m in fp32 gptq-w4g32; do
  "$BIN/quant-run" "$WORK/$m" --eval-data "$WORK/eval.npy" --seq-len 512 --json --quiet |
    "$PY" -c "import json,sys,os; r=json.load(sys.stdin); print('%-12s %12.4f %10.1f %12.3f' % ('$m', r['perplexity'], r['tokens_per_second'], os.path.getsize('$WORK/$m/model.safetensors')/2**20))"
done
