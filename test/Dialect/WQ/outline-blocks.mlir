// RUN: quant-opt %s --wq-outline-blocks | FileCheck %s
// RUN: quant-opt %s --wq-outline-blocks | not quant-opt --wq-outline-blocks 2>&1 | FileCheck %s --check-prefix=TWICE
// Inlining the stages back gives the original function (up to constants).
// RUN: quant-opt %s --wq-outline-blocks --inline --symbol-dce --canonicalize --cse | FileCheck %s --check-prefix=INLINED

// CHECK: module attributes {wq.archive = "model.safetensors", wq.blocks = [@forward.prologue, @forward.block0, @forward.block1, @forward.epilogue]}
// CHECK: func.func @forward(%[[IDS:.*]]: tensor<?x?xi64>) -> tensor<?x?x16xf32> {
// CHECK-NEXT: %[[P:.*]]:4 = call @forward.prologue(%[[IDS]]) : (tensor<?x?xi64>) -> (tensor<?x?x8xf32>, tensor<i64>, tensor<i64>, tensor<?xf32>)
// CHECK-NEXT: %[[H1:.*]] = call @forward.block0(%[[P]]#0, %[[P]]#1, %[[P]]#2, %[[P]]#3)
// CHECK-NEXT: %[[H2:.*]] = call @forward.block1(%[[H1]], %[[P]]#1, %[[P]]#2, %[[P]]#3)
// CHECK-NEXT: %[[L:.*]] = call @forward.epilogue(%[[H2]], %[[P]]#1, %[[P]]#2, %[[P]]#3)
// CHECK-NEXT: return %[[L]]
// CHECK-LABEL: func.func private @forward.prologue(
// CHECK-NOT: model.layers
// CHECK: %[[EMB:.*]] = linalg.generic
// CHECK: %[[POS:.*]] = tensor.generate
// CHECK: %[[B:.*]] = tensor.from_elements %{{.*}} : tensor<i64>
// CHECK: %[[S:.*]] = tensor.from_elements %{{.*}} : tensor<i64>
// CHECK: return %[[EMB]], %[[B]], %[[S]], %[[POS]]
// CHECK: func.func private @forward.block0(%[[H:.*]]: tensor<?x?x8xf32>, %[[BT:.*]]: tensor<i64>, %[[ST:.*]]: tensor<i64>, %{{.*}}: tensor<?xf32>) -> tensor<?x?x8xf32>
// CHECK: tensor.extract %[[BT]][] : tensor<i64>
// CHECK-NOT: model.layers.1
// CHECK: %[[W0:.*]] = wq.weight "model.layers.0.mlp.up_proj.weight"
// CHECK: %[[U0:.*]] = wq.linear %[[H]], %[[W0]]
// CHECK: %[[OUT:.*]] = linalg.add ins(%[[H]], %[[U0]]
// CHECK: return %[[OUT]]
// CHECK: func.func private @forward.block1(%[[H:.*]]: tensor<?x?x8xf32>, %{{.*}}: tensor<i64>, %{{.*}}: tensor<i64>, %[[POS:.*]]: tensor<?xf32>)
// CHECK: wq.weight "model.layers.1.mlp.up_proj.weight"
// CHECK: linalg.generic {{.*}} ins(%{{.*}}, %[[POS]] :
// CHECK: linalg.add ins(%[[H]],
// CHECK: func.func private @forward.epilogue(%[[H:.*]]: tensor<?x?x8xf32>
// CHECK-NEXT: %[[WH:.*]] = wq.weight "lm_head.weight"
// CHECK-NEXT: %[[LOGITS:.*]] = wq.linear %[[H]], %[[WH]] {name = "lm_head"}
// CHECK-NEXT: return %[[LOGITS]]

// TWICE: error: the module is already split into blocks ('wq.blocks')

// INLINED-NOT: call
// INLINED: wq.linear {{.*}}"model.layers.0.mlp.up_proj"
// INLINED: wq.linear {{.*}}"model.layers.1.mlp.up_proj"
// INLINED: wq.linear {{.*}}"lm_head"
// INLINED-NOT: func.func

// Two residual blocks, a scalar (the sequence length) and a tensor computed
// from the ids that block 1 reads: both become side values.
module attributes {wq.archive = "model.safetensors"} {
  func.func @forward(%ids: tensor<?x?xi64>) -> tensor<?x?x16xf32> {
    %emb = wq.weight "model.embed_tokens.weight" : tensor<16x8xf32>
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %b = tensor.dim %ids, %c0 : tensor<?x?xi64>
    %s = tensor.dim %ids, %c1 : tensor<?x?xi64>
    %init = tensor.empty(%b, %s) : tensor<?x?x8xf32>
    %h = linalg.generic {indexing_maps = [affine_map<(b, s, d) -> (b, s)>, affine_map<(b, s, d) -> (b, s, d)>],
                         iterator_types = ["parallel", "parallel", "parallel"]}
        ins(%ids : tensor<?x?xi64>) outs(%init : tensor<?x?x8xf32>) {
    ^bb0(%id: i64, %out: f32):
      %d = linalg.index 2 : index
      %row = arith.index_cast %id : i64 to index
      %v = tensor.extract %emb[%row, %d] : tensor<16x8xf32>
      linalg.yield %v : f32
    } -> tensor<?x?x8xf32>
    %pos = tensor.generate %s {
    ^bb0(%i: index):
      %i64 = arith.index_cast %i : index to i64
      %f = arith.sitofp %i64 : i64 to f32
      tensor.yield %f : f32
    } : tensor<?xf32>
    %w0 = wq.weight "model.layers.0.mlp.up_proj.weight" : tensor<8x8xf32>
    %u0 = wq.linear %h, %w0 {name = "model.layers.0.mlp.up_proj"} : tensor<?x?x8xf32>, tensor<8x8xf32> -> tensor<?x?x8xf32>
    %e0 = tensor.empty(%b, %s) : tensor<?x?x8xf32>
    %h1 = linalg.add ins(%h, %u0 : tensor<?x?x8xf32>, tensor<?x?x8xf32>) outs(%e0 : tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
    %w1 = wq.weight "model.layers.1.mlp.up_proj.weight" : tensor<8x8xf32>
    %u1 = wq.linear %h1, %w1 {name = "model.layers.1.mlp.up_proj"} : tensor<?x?x8xf32>, tensor<8x8xf32> -> tensor<?x?x8xf32>
    %p1 = linalg.generic {indexing_maps = [affine_map<(b, s, d) -> (b, s, d)>, affine_map<(b, s, d) -> (s)>, affine_map<(b, s, d) -> (b, s, d)>],
                          iterator_types = ["parallel", "parallel", "parallel"]}
        ins(%u1, %pos : tensor<?x?x8xf32>, tensor<?xf32>) outs(%e0 : tensor<?x?x8xf32>) {
    ^bb0(%x: f32, %p: f32, %out: f32):
      %y = arith.addf %x, %p : f32
      linalg.yield %y : f32
    } -> tensor<?x?x8xf32>
    %h2 = linalg.add ins(%h1, %p1 : tensor<?x?x8xf32>, tensor<?x?x8xf32>) outs(%e0 : tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
    %wh = wq.weight "lm_head.weight" : tensor<16x8xf32>
    %logits = wq.linear %h2, %wh {name = "lm_head"} : tensor<?x?x8xf32>, tensor<16x8xf32> -> tensor<?x?x16xf32>
    return %logits : tensor<?x?x16xf32>
  }
}
