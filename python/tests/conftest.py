"""Fixtures of the quant_mlir package tests: one small generated Llama (with
and without the Shakespeare tokenizer's vocabulary), its compiled variants,
and the build's tools, shared by every test of the session."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

quant_mlir = pytest.importorskip("quant_mlir.api", reason="the quant_mlir extension is not built")
import quant_mlir  # noqa: E402

SRC = pathlib.Path(__file__).resolve().parents[2]
SHARED = SRC.parent / "shared" / "data"
BUILD = pathlib.Path(quant_mlir.__file__).resolve().parents[2]
TOOLS = BUILD / "bin"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def export_llama(out: pathlib.Path, vocab: int) -> pathlib.Path:
    subprocess.run([PYTHON, str(SRC / "python/quant_mlir/export_fixtures.py"), "--family", "llama",
                    "--hidden", "64", "--intermediate", "128", "--layers", "2", "--vocab", str(vocab),
                    "-o", str(out)], check=True, stdout=subprocess.DEVNULL)
    return out / "model.onnx"


@pytest.fixture(scope="session")
def work(tmp_path_factory) -> pathlib.Path:
    return tmp_path_factory.mktemp("quant_mlir")


@pytest.fixture(scope="session")
def llama(work) -> pathlib.Path:
    """A 2-layer Llama (hidden 64, vocab 128) with torch reference logits."""
    return export_llama(work / "llama", 128)


@pytest.fixture(scope="session")
def ids(work) -> pathlib.Path:
    path = work / "ids.npy"
    np.save(path, np.random.default_rng(0).integers(0, 128, 4096))
    return path


@pytest.fixture(scope="session")
def gptq(llama, ids, work) -> "quant_mlir.Report":
    return quant_mlir.compile(llama, method="gptq", bits=4, group_size=32, calib_data=ids,
                              out=work / "gptq", calib_samples=8, seq_len=64, quiet=True)


@pytest.fixture(scope="session")
def gptq_model(gptq) -> "quant_mlir.Model":
    return quant_mlir.load(gptq.out_dir)


@pytest.fixture(scope="session")
def tokenizer() -> pathlib.Path:
    path = SHARED / "shakespeare" / "shakespeare-1k.model"
    if not path.exists():
        pytest.skip(f"{path} is not there")
    return path


@pytest.fixture(scope="session")
def text_model(work, tokenizer) -> "quant_mlir.Model":
    """A float Llama with the Shakespeare tokenizer's vocabulary (1024)."""
    onnx = export_llama(work / "llama1k", 1024)
    quant_mlir.compile(onnx, method="none", out=work / "llama1k-float", quiet=True)
    return quant_mlir.load(work / "llama1k-float", tokenizer=tokenizer)


def run_tool(*args: str) -> str:
    return subprocess.run([str(TOOLS / args[0]), *args[1:]], check=True, capture_output=True,
                          text=True).stdout
