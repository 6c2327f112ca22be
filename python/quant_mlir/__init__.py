"""quant-mlir Python helpers used by the test suite (fixture models, ONNX export, llama2.c conversion, numpy references)."""
