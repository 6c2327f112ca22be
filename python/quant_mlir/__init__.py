"""quant-mlir from Python: compile, evaluate, generate, and plug in your own quantizer.

    import quant_mlir
    report = quant_mlir.compile("model.onnx", method="gptq", bits=4, group_size=128,
                                calib_data="train.txt", tokenizer="tok.model", out="out")
    m = quant_mlir.load("out", tokenizer="tok.model")
    m.perplexity(open("valid.txt").read(), seq_len=256)

The API (compile, load, Stats, register_quantizer, ...) lives in
quant_mlir.api and needs the compiled extension quant_mlir._quant_mlir,
which the CMake build places in build/python/quant_mlir (docs/python.md).
The package's other modules (fixtures, references, converters) are plain
scripts used by the test suite and import without it.
"""

from __future__ import annotations

__all__ = [
    "compile",
    "load",
    "load_tokens",
    "Model",
    "Report",
    "Stats",
    "LayerStats",
    "Scheme",
    "Error",
    "QuantizerError",
    "register_quantizer",
    "unregister_quantizer",
    "registered_quantizers",
]


def __getattr__(name: str):
    # Lazy: the fixture scripts import quant_mlir.models etc. from the source
    # tree, where the extension is not built.
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'quant_mlir' has no attribute '{name}'")


def __dir__():
    return sorted(list(globals()) + __all__)
