//===- WQ.td - the weight-quantization dialect -------------*- tablegen -*-===//
// The `wq` dialect: linear layers, their quantization schemes, calibration
// statistics and packed weights as first-class IR, with weights kept outside.
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_DIALECT_WQ_IR_WQ_TD
#define QUANT_MLIR_DIALECT_WQ_IR_WQ_TD

include "mlir/IR/OpBase.td"

def WQ_Dialect : Dialect {
  let name = "wq";
  let cppNamespace = "::quant_mlir::wq";
  let summary = "Weight quantization: linear layers, schemes, statistics, packed weights";
  let description = [{
    Weights never live in the IR: `wq.weight` names a tensor of the module's
    safetensors archive (`wq.archive` on the module). Calibration statistics
    are named the same way (`wq.stats_archive`). Quantization passes rewrite
    `wq.linear` into `wq.quantized_linear`, whose codes, scales and zeros are
    again archive references.
  }];
  let useDefaultAttributePrinterParser = 1;
  let hasOperationAttrVerify = 1;
  let hasRegionArgAttrVerify = 1;
  let extraClassDeclaration = [{
    /// Module attribute naming the weight archive (a safetensors file).
    static constexpr ::llvm::StringLiteral kArchiveAttrName = "wq.archive";
    /// Module attribute naming the calibration statistics archive.
    static constexpr ::llvm::StringLiteral kStatsArchiveAttrName = "wq.stats_archive";
    /// Argument attribute: the argument is bound to this archive tensor.
    static constexpr ::llvm::StringLiteral kWeightArgAttrName = "wq.weight";
    /// Module attribute of instrumented modules: layer names by index.
    static constexpr ::llvm::StringLiteral kCalibLayersAttrName = "wq.calib_layers";
    /// Module attribute of wq-outline-blocks: the stage functions in order
    /// (prologue, one per transformer block, epilogue).
    static constexpr ::llvm::StringLiteral kBlocksAttrName = "wq.blocks";
  }];
}

class WQ_Op<string mnemonic, list<Trait> traits = []>
    : Op<WQ_Dialect, mnemonic, traits>;

#endif // QUANT_MLIR_DIALECT_WQ_IR_WQ_TD
