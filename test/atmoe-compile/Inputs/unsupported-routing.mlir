// IR that verifies but that the lowering does not support (routing
// normalisation over a dynamic number of experts): atmoe-compile's example of
// an internal error (exit code 3) in exit-codes.test.
func.func @layer0_forward(%v: tensor<?x?xf32> {atmoe.input = "h"}) -> (tensor<?x?xf32> {atmoe.output = "routing"}) {
  %w = atmoe.normalize_routing softmax %v : tensor<?x?xf32> -> tensor<?x?xf32>
  return %w : tensor<?x?xf32>
}
