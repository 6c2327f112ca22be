"""MLIR text of the token-embedding lookup the hand-written tiny language
models in the tool tests start with: ids tensor<?x?xi64> -> %h tensor<?x?xDxf32>
(a linalg.generic gathering rows of the archive tensor
"model.embed_tokens.weight")."""


def embedding(vocab, dim):
    return f"""    %emb = wq.weight "model.embed_tokens.weight" : tensor<{vocab}x{dim}xf32>
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %b = tensor.dim %ids, %c0 : tensor<?x?xi64>
    %s = tensor.dim %ids, %c1 : tensor<?x?xi64>
    %init = tensor.empty(%b, %s) : tensor<?x?x{dim}xf32>
    %h = linalg.generic {{indexing_maps = [affine_map<(b, s, d) -> (b, s)>, affine_map<(b, s, d) -> (b, s, d)>],
                         iterator_types = ["parallel", "parallel", "parallel"]}}
        ins(%ids : tensor<?x?xi64>) outs(%init : tensor<?x?x{dim}xf32>) {{
    ^bb0(%id: i64, %out: f32):
      %d = linalg.index 2 : index
      %row = arith.index_cast %id : i64 to index
      %v = tensor.extract %emb[%row, %d] : tensor<{vocab}x{dim}xf32>
      linalg.yield %v : f32
    }} -> tensor<?x?x{dim}xf32>
"""
