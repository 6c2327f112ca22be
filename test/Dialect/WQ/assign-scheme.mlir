// RUN: quant-opt %s --wq-assign-scheme | FileCheck %s --check-prefix=DEFAULT
// RUN: quant-opt %s --wq-assign-scheme="bits=3 group-size=64 zero-point act-order" | FileCheck %s --check-prefix=OPTS
// RUN: quant-opt %s --wq-assign-scheme="skip= overrides=*.down_proj:bits=8:group-size=-1,model.layers.1.*:skip,*.q_proj:skip=0" | FileCheck %s --check-prefix=OVR

module attributes {wq.archive = "m.safetensors"} {
func.func @f(%x: tensor<2x64xf32>) -> (tensor<2x64xf32>, tensor<2x64xf32>, tensor<2x64xf32>, tensor<2x64xf32>, tensor<2x64xf32>) {
  %w = wq.weight "w" : tensor<64x64xf32>
  // DEFAULT: name = "model.layers.0.mlp.down_proj", scheme = #wq.scheme<bits = 4, group_size = 128>
  // OPTS: name = "model.layers.0.mlp.down_proj", scheme = #wq.scheme<bits = 3, group_size = 64, symmetric = false, act_order = true>
  // OVR: name = "model.layers.0.mlp.down_proj", scheme = #wq.scheme<bits = 8, group_size = -1>
  %a = wq.linear %x, %w {name = "model.layers.0.mlp.down_proj"} : tensor<2x64xf32>, tensor<64x64xf32> -> tensor<2x64xf32>
  // DEFAULT: name = "model.layers.1.self_attn.q_proj", scheme = #wq.scheme<bits = 4, group_size = 128>
  // OVR: name = "model.layers.1.self_attn.q_proj", scheme = #wq.scheme<bits = 4, group_size = 128>
  %b = wq.linear %x, %w {name = "model.layers.1.self_attn.q_proj"} : tensor<2x64xf32>, tensor<64x64xf32> -> tensor<2x64xf32>
  // A previously assigned scheme is dropped when the layer is skipped.
  // DEFAULT: wq.linear {{.*}} {name = "model.layers.1.mlp.up_proj", scheme = #wq.scheme<bits = 4, group_size = 128>}
  // OVR: wq.linear {{.*}} {name = "model.layers.1.mlp.up_proj"} :
  %c = wq.linear %x, %w {name = "model.layers.1.mlp.up_proj", scheme = #wq.scheme<bits = 2, group_size = 32>} : tensor<2x64xf32>, tensor<64x64xf32> -> tensor<2x64xf32>
  // lm_head and embeddings are skipped by default, not when skip is emptied.
  // DEFAULT: wq.linear {{.*}} {name = "lm_head"} :
  // OVR: name = "lm_head", scheme = #wq.scheme<bits = 4, group_size = 128>
  %d = wq.linear %x, %w {name = "lm_head"} : tensor<2x64xf32>, tensor<64x64xf32> -> tensor<2x64xf32>
  // DEFAULT: wq.linear {{.*}} {name = "model.embed_tokens"} :
  %e = wq.linear %x, %w {name = "model.embed_tokens"} : tensor<2x64xf32>, tensor<64x64xf32> -> tensor<2x64xf32>
  return %a, %b, %c, %d, %e : tensor<2x64xf32>, tensor<2x64xf32>, tensor<2x64xf32>, tensor<2x64xf32>, tensor<2x64xf32>
}
}
