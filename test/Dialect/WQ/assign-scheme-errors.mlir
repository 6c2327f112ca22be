// RUN: quant-opt %s --split-input-file --verify-diagnostics --wq-assign-scheme="bits=5"
// RUN: not quant-opt %s --wq-assign-scheme="overrides=*.q_proj:group-size=48" 2>&1 | FileCheck %s --check-prefix=GS
// RUN: not quant-opt %s --wq-assign-scheme="overrides=*.q_proj:color=3" 2>&1 | FileCheck %s --check-prefix=KEY
// RUN: not quant-opt %s --wq-assign-scheme="overrides=*.q_proj" 2>&1 | FileCheck %s --check-prefix=NOSET
// RUN: not quant-opt %s --wq-assign-scheme="overrides=*.q_proj:bits=x" 2>&1 | FileCheck %s --check-prefix=NOINT
// RUN: not quant-opt %s --wq-assign-scheme="skip=[" 2>&1 | FileCheck %s --check-prefix=BADGLOB

// GS: layer 'model.layers.0.self_attn.q_proj': group_size must be 32, 64, 128, 256 or -1 (per-channel), got 48
// KEY: unknown key 'color' in override '*.q_proj:color=3' (expected bits, group-size, zero-point, act-order or skip)
// NOSET: override '*.q_proj' sets nothing; expected GLOB:key=value
// NOINT: layer 'model.layers.0.self_attn.q_proj': override value 'x' for 'bits' is not an integer
// BADGLOB: bad skip glob '['

func.func @f(%x: tensor<2x64xf32>, %w: tensor<64x64xf32>) -> tensor<2x64xf32> {
  // expected-error @+1 {{layer 'model.layers.0.self_attn.q_proj': bits must be 2, 3, 4 or 8, got 5}}
  %a = wq.linear %x, %w {name = "model.layers.0.self_attn.q_proj"} : tensor<2x64xf32>, tensor<64x64xf32> -> tensor<2x64xf32>
  return %a : tensor<2x64xf32>
}
