#!/usr/bin/env bash
# Sets up if needed, then runs every test (lit + gtest) through ctest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
cd "${QUANT_MLIR_BUILD_DIR:-$ROOT/build}"
exec ctest --output-on-failure "$@"
