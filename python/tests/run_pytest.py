#!/usr/bin/env python3
"""ctest's entry for the quant_mlir package tests: runs pytest on this
directory with the build's package first on the path, or exits 77 (ctest:
skipped) when the extension was not built or pytest is missing."""

import importlib.util
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
build_python = sys.argv[1]
sys.path.insert(0, build_python)
os.environ["PYTHONPATH"] = build_python + os.pathsep + os.environ.get("PYTHONPATH", "")
if importlib.util.find_spec("pytest") is None:
    print("skipped: pytest is not installed (Debian: python3-pytest)")
    sys.exit(77)
if not os.path.exists(os.path.join(build_python, "quant_mlir")) or not any(
        f.startswith("_quant_mlir") for f in os.listdir(os.path.join(build_python, "quant_mlir"))):
    print(f"skipped: the quant_mlir extension is not built in {build_python} (needs pybind11-dev)")
    sys.exit(77)
import pytest  # noqa: E402

sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "--rootdir", here, here] + sys.argv[2:]))
