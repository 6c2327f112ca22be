#!/usr/bin/env bash
# Installs everything quant-mlir needs (Debian packages, a project-local
# onnxruntime-node) and builds it. Idempotent: on a set-up machine it only
# checks, then lets ninja find nothing to do.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${QUANT_MLIR_BUILD_DIR:-$ROOT/build}"
ORT_DIR="$ROOT/.deps/onnxruntime"
ORT_VERSION="1.30.0"

PACKAGES=(
  cmake ninja-build g++ git
  llvm-22-dev llvm-22-tools libmlir-22-dev mlir-22-tools
  libonnx-dev libonnx-testdata libprotobuf-dev protobuf-compiler
  libopenblas-dev liblapacke-dev libsentencepiece-dev libgtest-dev
  python3-onnx python3-numpy python3-torch python3-sentencepiece python3-matplotlib
  pybind11-dev python3-pytest
  clang-14 libclang-rt-14-dev
  nodejs
)

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

log() { printf '[setup] %s\n' "$*" >&2; }

# 1. Debian packages: apt-get runs only when something is missing.
missing=()
for pkg in "${PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)"
  [ "${status:0:2}" = "ii" ] || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v npm >/dev/null || { log "npm not found (it ships with Debian's/NodeSource's nodejs)"; exit 1; }

# 2. onnxruntime-node, the independent CPU reference runtime, project-local.
#    --ignore-scripts: its install script would try to reach a download host.
if [ ! -f "$ORT_DIR/node_modules/onnxruntime-node/package.json" ] ||
   ! grep -q "\"version\": \"$ORT_VERSION\"" "$ORT_DIR/node_modules/onnxruntime-node/package.json"; then
  log "installing onnxruntime-node@$ORT_VERSION into $ORT_DIR"
  mkdir -p "$ORT_DIR"
  npm install --prefix "$ORT_DIR" --ignore-scripts --no-audit --no-fund \
    --loglevel=error "onnxruntime-node@$ORT_VERSION" >/dev/null
fi

# 3. Configure once (Ninja, shared libMLIR.so/libLLVM.so), then build.
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  log "configuring $BUILD_DIR"
  cmake -G Ninja -S "$ROOT" -B "$BUILD_DIR" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ \
    -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir >/dev/null
fi
ninja -C "$BUILD_DIR" ${QUANT_MLIR_JOBS:+-j "$QUANT_MLIR_JOBS"} | { grep -v '^ninja: no work to do' || true; }
log "ready: $BUILD_DIR/bin"
