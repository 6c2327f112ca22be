// RUN: quant-opt %s -split-input-file -verify-diagnostics
// Every verifier message of the wq dialect, each from one bad input.

// expected-error @+1 {{unknown wq dialect attribute 'wq.archives'}}
module attributes {wq.archives = "m.safetensors"} {}

// -----

func.func @f() attributes {wq.archive = "m.safetensors"} { // expected-error {{'wq.archive' may only be attached to a builtin.module}}
  return
}

// -----

// expected-error @+1 {{'wq.blocks' must be an array of at least three function symbols (prologue, blocks..., epilogue) on a builtin.module}}
module attributes {wq.blocks = [@a, @b]} {
}

// -----

// expected-error @+1 {{'wq.stats_archive' must be a non-empty string naming a safetensors file}}
module attributes {wq.stats_archive = ""} {}

// -----

// expected-error @+1 {{bits must be 2, 3, 4 or 8, got 5}}
func.func @f() attributes {s = #wq.scheme<bits = 5, group_size = 128>} { return }

// -----

// expected-error @+1 {{group_size must be 32, 64, 128, 256 or -1 (per-channel), got 100}}
func.func @f() attributes {s = #wq.scheme<bits = 4, group_size = 100>} { return }

// -----

// expected-error @+1 {{statistics key must not be empty}}
func.func @f() attributes {s = #wq.stats<key = "", tokens = 4>} { return }

// -----

// expected-error @+1 {{statistics 'k' must count a positive number of tokens, got 0}}
func.func @f() attributes {s = #wq.stats<key = "k", tokens = 0>} { return }

// -----

// expected-error @+1 {{statistics 'k' has a negative number of sampled rows: -1}}
func.func @f() attributes {s = #wq.stats<key = "k", tokens = 4, rows = -1>} { return }

// -----

module attributes {wq.archive = "m.safetensors"} {
func.func @f() {
  // expected-error @+1 {{weight name must not be empty}}
  %w = wq.weight "" : tensor<4x4xf32>
  return
}
}

// -----

module attributes {wq.archive = "m.safetensors"} {
func.func @f() {
  // expected-error @+1 {{weight 'w' must have a static shape}}
  %w = wq.weight "w" : tensor<?x4xf32>
  return
}
}

// -----

func.func @f() {
  // expected-error @+1 {{weight 'w' needs a 'wq.archive' attribute on an enclosing module}}
  %w = wq.weight "w" : tensor<4x4xf32>
  return
}

// -----

module attributes {wq.archive = "m.safetensors"} {
func.func @f() {
  // expected-error @+1 {{result #0 must be ranked tensor of}}
  %w = wq.weight "w" : tensor<4x4xf8E4M3FN>
  return
}
}

// -----

func.func @f(%x: tensor<2x4xf32>, %w: tensor<4xf32>) {
  // expected-error @+1 {{(layer 'l') weight must be [N, K] (rank 2), got rank 1}}
  %y = wq.linear %x, %w {name = "l"} : tensor<2x4xf32>, tensor<4xf32> -> tensor<2x4xf32>
  return
}

// -----

func.func @f(%x: tensor<f32>, %w: tensor<8x4xf32>) {
  // expected-error @+1 {{input must have rank >= 1}}
  %y = wq.linear %x, %w : tensor<f32>, tensor<8x4xf32> -> tensor<8xf32>
  return
}

// -----

func.func @f(%x: tensor<2x5xf32>, %w: tensor<8x4xf32>) {
  // expected-error @+1 {{(layer 'model.layers.0.mlp.up_proj') input has 5 features but the weight expects K = 4}}
  %y = wq.linear %x, %w {name = "model.layers.0.mlp.up_proj"} : tensor<2x5xf32>, tensor<8x4xf32> -> tensor<2x8xf32>
  return
}

// -----

func.func @f(%x: tensor<2x4xf32>, %w: tensor<8x4xf32>) {
  // expected-error @+1 {{input and result element types differ: 'f32' vs 'f16'}}
  %y = wq.linear %x, %w : tensor<2x4xf32>, tensor<8x4xf32> -> tensor<2x8xf16>
  return
}

// -----

func.func @f(%x: tensor<2x4xf32>, %w: tensor<8x4xf32>) {
  // expected-error @+1 {{result must have shape [2, 8], got [2, 4]}}
  %y = wq.linear %x, %w : tensor<2x4xf32>, tensor<8x4xf32> -> tensor<2x4xf32>
  return
}

// -----

func.func @f(%x: tensor<2x4xf32>, %w: tensor<8x4xf32>, %b: tensor<4xf32>) {
  // expected-error @+1 {{bias must have shape [8], got [4]}}
  %y = wq.linear %x, %w bias %b : tensor<2x4xf32>, tensor<8x4xf32>, tensor<4xf32> -> tensor<2x8xf32>
  return
}

// -----

module attributes {wq.archive = "m.safetensors"} {
func.func @f(%x: tensor<2x4xf32>, %w: tensor<8x4xf32>) {
  // expected-error @+1 {{(layer 'l') has statistics but no enclosing module names a 'wq.stats_archive'}}
  %y = wq.linear %x, %w {name = "l", stats = #wq.stats<key = "l", tokens = 8>} : tensor<2x4xf32>, tensor<8x4xf32> -> tensor<2x8xf32>
  return
}
}

// -----

func.func @f(%c: tensor<16x16xi32>, %s: tensor<1x16xf16>) {
  // expected-error @+1 {{K and N of a packed weight must be static}}
  %w = wq.dequantize %c, %s {packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 4, group_size = -1>} : (tensor<16x16xi32>, tensor<1x16xf16>) -> tensor<16x?xf16>
  return
}

// -----

func.func @f(%c: tensor<12x16xi32>, %s: tensor<1x16xf16>) {
  // expected-error @+1 {{K = 96 is not divisible by group_size = 64}}
  %w = wq.dequantize %c, %s {packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 4, group_size = 64>} : (tensor<12x16xi32>, tensor<1x16xf16>) -> tensor<16x96xf16>
  return
}

// -----

func.func @f(%c: tensor<64x3xi32>, %s: tensor<2x32xf16>) {
  // expected-error @+1 {{awq packing holds 4-bit codes only, got 3 bits}}
  %w = wq.dequantize %c, %s {packing = #wq.packing<awq>, scheme = #wq.scheme<bits = 3, group_size = 32>} : (tensor<64x3xi32>, tensor<2x32xf16>) -> tensor<32x64xf16>
  return
}

// -----

func.func @f(%c: tensor<64x2xi32>, %s: tensor<2x16xf16>, %g: tensor<64xi32>) {
  // expected-error @+1 {{awq packing does not support act_order}}
  %w = wq.dequantize %c, %s g_idx %g {packing = #wq.packing<awq>, scheme = #wq.scheme<bits = 4, group_size = 32, act_order = true>} : (tensor<64x2xi32>, tensor<2x16xf16>, tensor<64xi32>) -> tensor<16x64xf16>
  return
}

// -----

func.func @f(%c: tensor<3x16xi32>, %s: tensor<1x16xf16>) {
  // expected-error @+1 {{K = 20 times bits = 4 must be a multiple of 32 for gptq packing}}
  %w = wq.dequantize %c, %s {packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 4, group_size = -1>} : (tensor<3x16xi32>, tensor<1x16xf16>) -> tensor<16x20xf16>
  return
}

// -----

func.func @f(%c: tensor<6x20xi32>, %s: tensor<1x20xf16>, %z: tensor<1x2xi32>) {
  // expected-error @+1 {{N = 20 times bits = 3 must be a multiple of 32 to pack along N}}
  %w = wq.dequantize %c, %s zeros %z {packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 3, group_size = -1, symmetric = false>} : (tensor<6x20xi32>, tensor<1x20xf16>, tensor<1x2xi32>) -> tensor<20x64xf16>
  return
}

// -----

func.func @f(%c: tensor<16x16xi32>, %s: tensor<1x16xf16>) {
  // expected-error @+1 {{codes must have shape [8, 16], got [16, 16]}}
  %w = wq.dequantize %c, %s {packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 4, group_size = -1>} : (tensor<16x16xi32>, tensor<1x16xf16>) -> tensor<16x64xf16>
  return
}

// -----

func.func @f(%c: tensor<64x3xi32>, %s: tensor<1x16xf16>) {
  // expected-error @+1 {{codes must have shape [64, 2], got [64, 3]}}
  %w = wq.dequantize %c, %s {packing = #wq.packing<awq>, scheme = #wq.scheme<bits = 4, group_size = -1>} : (tensor<64x3xi32>, tensor<1x16xf16>) -> tensor<16x64xf16>
  return
}

// -----

func.func @f(%c: tensor<8x16xi32>, %s: tensor<1x16xf16>) {
  // expected-error @+1 {{scales must have shape [2, 16], got [1, 16]}}
  %w = wq.dequantize %c, %s {packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 4, group_size = 32>} : (tensor<8x16xi32>, tensor<1x16xf16>) -> tensor<16x64xf16>
  return
}

// -----

func.func @f(%c: tensor<8x16xi32>, %s: tensor<1x16xf16>, %z: tensor<1x2xi32>) {
  // expected-error @+1 {{a symmetric scheme has no zeros (zero = 8)}}
  %w = wq.dequantize %c, %s zeros %z {packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 4, group_size = -1>} : (tensor<8x16xi32>, tensor<1x16xf16>, tensor<1x2xi32>) -> tensor<16x64xf16>
  return
}

// -----

func.func @f(%c: tensor<8x16xi32>, %s: tensor<1x16xf16>) {
  // expected-error @+1 {{a zero-point scheme needs zeros}}
  %w = wq.dequantize %c, %s {packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 4, group_size = -1, symmetric = false>} : (tensor<8x16xi32>, tensor<1x16xf16>) -> tensor<16x64xf16>
  return
}

// -----

func.func @f(%c: tensor<8x16xi32>, %s: tensor<1x16xf16>, %z: tensor<1x4xi32>) {
  // expected-error @+1 {{zeros must have shape [1, 2], got [1, 4]}}
  %w = wq.dequantize %c, %s zeros %z {packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 4, group_size = -1, symmetric = false>} : (tensor<8x16xi32>, tensor<1x16xf16>, tensor<1x4xi32>) -> tensor<16x64xf16>
  return
}

// -----

func.func @f(%c: tensor<8x16xi32>, %s: tensor<2x16xf16>) {
  // expected-error @+1 {{an act_order scheme needs g_idx}}
  %w = wq.dequantize %c, %s {packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 4, group_size = 32, act_order = true>} : (tensor<8x16xi32>, tensor<2x16xf16>) -> tensor<16x64xf16>
  return
}

// -----

func.func @f(%c: tensor<8x16xi32>, %s: tensor<2x16xf16>, %g: tensor<64xi32>) {
  // expected-error @+1 {{g_idx is only allowed with act_order}}
  %w = wq.dequantize %c, %s g_idx %g {packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 4, group_size = 32>} : (tensor<8x16xi32>, tensor<2x16xf16>, tensor<64xi32>) -> tensor<16x64xf16>
  return
}

// -----

func.func @f(%c: tensor<8x16xi32>, %s: tensor<2x16xf16>, %g: tensor<32xi32>) {
  // expected-error @+1 {{g_idx must have shape [64], got [32]}}
  %w = wq.dequantize %c, %s g_idx %g {packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 4, group_size = 32, act_order = true>} : (tensor<8x16xi32>, tensor<2x16xf16>, tensor<32xi32>) -> tensor<16x64xf16>
  return
}

// -----

func.func @f(%c: tensor<8x16xi32>, %s: tensor<1x16xf16>) {
  // expected-error @+1 {{result must be [N, K] (rank 2), got rank 3}}
  %w = wq.dequantize %c, %s {packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 4, group_size = -1>} : (tensor<8x16xi32>, tensor<1x16xf16>) -> tensor<1x16x64xf16>
  return
}

// -----

func.func @f(%c: tensor<8x16xi32>, %s: tensor<1x16xf16>) {
  // expected-error @+1 {{result element type 'f32' must match the scales' 'f16'}}
  %w = wq.dequantize %c, %s {packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 4, group_size = -1>} : (tensor<8x16xi32>, tensor<1x16xf16>) -> tensor<16x64xf32>
  return
}

// -----

func.func @f(%x: tensor<f16>, %c: tensor<8x16xi32>, %s: tensor<1x16xf16>) {
  // expected-error @+1 {{input must have rank >= 1}}
  %y = wq.quantized_linear %x, %c, %s {packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 4, group_size = -1>} : (tensor<f16>, tensor<8x16xi32>, tensor<1x16xf16>) -> tensor<16xf16>
  return
}

// -----

func.func @f(%x: tensor<2x64xf16>, %c: tensor<8x16xi32>, %s: tensor<16xf16>) {
  // expected-error @+1 {{(layer 'q') scales must be [groups, N] (rank 2), got rank 1}}
  %y = wq.quantized_linear %x, %c, %s {name = "q", packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 4, group_size = -1>} : (tensor<2x64xf16>, tensor<8x16xi32>, tensor<16xf16>) -> tensor<2x16xf16>
  return
}

// -----

func.func @f(%x: tensor<2x64xf16>, %c: tensor<8x16xi32>, %s: tensor<1x16xf16>) {
  // expected-error @+1 {{(layer 'q') codes must have shape [16, 16], got [8, 16]}}
  %y = wq.quantized_linear %x, %c, %s {name = "q", packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 8, group_size = -1>} : (tensor<2x64xf16>, tensor<8x16xi32>, tensor<1x16xf16>) -> tensor<2x16xf16>
  return
}

// -----

func.func @f(%x: tensor<2x64xf16>, %c: tensor<8x16xi32>, %s: tensor<1x16xf16>) {
  // expected-error @+1 {{(layer 'q') result must have shape [2, 16], got [2, 8]}}
  %y = wq.quantized_linear %x, %c, %s {name = "q", packing = #wq.packing<gptq>, scheme = #wq.scheme<bits = 4, group_size = -1>} : (tensor<2x64xf16>, tensor<8x16xi32>, tensor<1x16xf16>) -> tensor<2x8xf16>
  return
}

// -----

// expected-error @+1 {{unknown wq dialect argument attribute 'wq.weights'}}
func.func @f(%a: tensor<4xf32> {wq.weights = "w"}) { return }

// -----

// expected-error @+1 {{argument #0 'wq.weight' must be a non-empty archive tensor name}}
func.func @f(%a: tensor<4xf32> {wq.weight = 3 : i32}) { return }
