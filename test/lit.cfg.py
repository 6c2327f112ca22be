# lit configuration for quant-mlir: FileCheck tests of every pass, conversion
# and tool, run against the build tree's binaries.
import os

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "QUANT_MLIR"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test", ".py"]
config.excludes = ["lit.cfg.py", "lit.site.cfg.py", "Inputs"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.quant_mlir_obj_root, "test")

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%python", config.python_executable))
config.substitutions.append(("%src_root", config.quant_mlir_src_root))
config.substitutions.append(("%shared_data",
                             os.path.join(config.quant_mlir_src_root, "..", "shared", "data")))

llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP"])
llvm_config.use_default_substitutions()

tool_dirs = [config.quant_mlir_tools_dir, config.llvm_tools_dir]
tools = ["quant-opt", "quant-run", "quant-layer", "quant-import", "quant-compile", "quant-onnx-conformance", "quant-export", "mlir-opt", "mlir-runner"]
llvm_config.add_tool_substitutions(tools, tool_dirs)
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.quant_mlir_tools_dir, append_path=True)

# CUDA's assembler, when the toolkit is installed (it is on the project's
# machines; the GPU itself is never needed by the tests).
ptxas = os.environ.get("QUANT_MLIR_PTXAS", "/usr/local/cuda/bin/ptxas")
if os.path.exists(ptxas):
    config.available_features.add("ptxas")

# ONNX's backend node tests, from Debian's libonnx-testdata (scripts/setup.sh).
onnx_node_tests = "/usr/share/libonnx-testdata/data/node"
config.substitutions.append(("%onnx_node_tests", onnx_node_tests))
if os.path.isdir(onnx_node_tests):
    config.available_features.add("onnx-node-tests")
# scripts/test.sh --sanitize: ASan + UBSan build (lib/Data/TokenData.cpp says
# why sentencepiece and the importer cannot share a process there).
if getattr(config, "quant_mlir_sanitize", False):
    config.available_features.add("asan")
