// A Llama MLP block in the wq dialect: the float layers as the importer
// writes them, and one layer already quantized (GPTQ layout, 4-bit, g128,
// act-order). Weights live in model.safetensors, referenced by name.
//
//   quant-opt examples/llama_mlp.mlir --wq-assign-scheme="bits=4 group-size=128" \
//     --wq-expand-quantized-linear --convert-wq-to-linalg
module attributes {wq.archive = "model.safetensors"} {
  func.func @mlp(%x: tensor<?x?x256xf32>) -> tensor<?x?x256xf32> {
    %wg = wq.weight "model.layers.0.mlp.gate_proj.weight" : tensor<512x256xf32>
    %wu = wq.weight "model.layers.0.mlp.up_proj.weight" : tensor<512x256xf32>
    %gate = wq.linear %x, %wg {name = "model.layers.0.mlp.gate_proj"}
        : tensor<?x?x256xf32>, tensor<512x256xf32> -> tensor<?x?x512xf32>
    %up = wq.linear %x, %wu {name = "model.layers.0.mlp.up_proj"}
        : tensor<?x?x256xf32>, tensor<512x256xf32> -> tensor<?x?x512xf32>
    %h = arith.mulf %gate, %up : tensor<?x?x512xf32>
    // down_proj, already quantized: codes [K*4/32, N], scales/zeros per group.
    %c = wq.weight "model.layers.0.mlp.down_proj.qweight" : tensor<64x256xi32>
    %s = wq.weight "model.layers.0.mlp.down_proj.scales" : tensor<4x256xf32>
    %z = wq.weight "model.layers.0.mlp.down_proj.qzeros" : tensor<4x32xi32>
    %g = wq.weight "model.layers.0.mlp.down_proj.g_idx" : tensor<512xi32>
    %y = wq.quantized_linear %h, %c, %s zeros %z g_idx %g {
        name = "model.layers.0.mlp.down_proj", packing = #wq.packing<gptq>,
        scheme = #wq.scheme<bits = 4, group_size = 128, symmetric = false, act_order = true>}
        : (tensor<?x?x512xf32>, tensor<64x256xi32>, tensor<4x256xf32>, tensor<4x32xi32>, tensor<512xi32>) -> tensor<?x?x256xf32>
    return %y : tensor<?x?x256xf32>
  }
}
