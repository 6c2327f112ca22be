// RUN: quant-opt %s --quant-strided-copy-to-linalg | FileCheck %s

// RoPE's rotate_half: halves copied into a strided view of a [?, 64] buffer
// become linalg.copy; contiguous copies stay memref.copy (a memcpy).
// CHECK-LABEL: func.func @rotate_half
// CHECK: linalg.copy ins(%arg0 : memref<?x32xf32>) outs(%{{.*}} : memref<?x32xf32, strided<[64, 1]>>)
// CHECK: linalg.copy ins(%arg0 : memref<?x32xf32>) outs(%{{.*}} : memref<?x32xf32, strided<[64, 1], offset: 32>>)
// CHECK: memref.copy %arg1, %arg2 : memref<?x64xf32> to memref<?x64xf32>
// CHECK: memref.copy %arg3, %arg4 : memref<4x8xf32> to memref<4x8xf32, strided<[8, 1]>>
// CHECK-NOT: linalg.copy
func.func @rotate_half(%x: memref<?x32xf32>, %a: memref<?x64xf32>, %b: memref<?x64xf32>,
                       %s: memref<4x8xf32>, %t: memref<4x8xf32, strided<[8, 1]>>) {
  %c0 = arith.constant 0 : index
  %n = memref.dim %x, %c0 : memref<?x32xf32>
  %lo = memref.subview %a[0, 0] [%n, 32] [1, 1] : memref<?x64xf32> to memref<?x32xf32, strided<[64, 1]>>
  memref.copy %x, %lo : memref<?x32xf32> to memref<?x32xf32, strided<[64, 1]>>
  %hi = memref.subview %a[0, 32] [%n, 32] [1, 1] : memref<?x64xf32> to memref<?x32xf32, strided<[64, 1], offset: 32>>
  memref.copy %x, %hi : memref<?x32xf32> to memref<?x32xf32, strided<[64, 1], offset: 32>>
  memref.copy %a, %b : memref<?x64xf32> to memref<?x64xf32>
  memref.copy %s, %t : memref<4x8xf32> to memref<4x8xf32, strided<[8, 1]>>
  return
}
