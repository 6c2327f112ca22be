//===- Generate.h - quant-run's generation and choice-scoring modes -*- C++ -*-===//
// The --prompt / --prompt-ids / --prompts / --choices command-line modes of
// quant-run, kept apart from the perplexity driver in quant-run.cpp.
//===----------------------------------------------------------------------===//

#ifndef QUANT_RUN_GENERATE_H
#define QUANT_RUN_GENERATE_H

#include "quant-mlir/Runtime/CPURunner.h"

#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/CommandLine.h"

#include <cstdint>
#include <string>

namespace quant_mlir::data {
class Tokenizer;
} // namespace quant_mlir::data

namespace quant_run {

extern llvm::cl::OptionCategory generationCategory;

/// Whether a generation or choice-scoring flag was given.
bool generationRequested();

/// Runs the requested mode on the model directory; returns the exit code.
int runGeneration(mlir::MLIRContext &context, const std::string &modelDir,
                  const quant_mlir::data::Tokenizer *tokenizer,
                  const std::string &func, uint64_t seed, bool json,
                  const quant_mlir::CPUCompileOptions &compile);

} // namespace quant_run

#endif // QUANT_RUN_GENERATE_H
