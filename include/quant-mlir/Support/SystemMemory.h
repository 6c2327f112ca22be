//===- SystemMemory.h - the machine's physical memory ----------*- C++ -*-===//
// One query of the physical memory for the places that size their work by
// it (the streaming calibration's activation budget, reading a weight
// archive in before a run).
//===----------------------------------------------------------------------===//

#ifndef QUANT_MLIR_SUPPORT_SYSTEMMEMORY_H
#define QUANT_MLIR_SUPPORT_SYSTEMMEMORY_H

#include <cstdint>

namespace quant_mlir {
/// Physical memory in bytes (0 if unknown).
uint64_t physicalMemory();
} // namespace quant_mlir

#endif // QUANT_MLIR_SUPPORT_SYSTEMMEMORY_H
