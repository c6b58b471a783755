// RUN: atmoe-opt %s --split-input-file --verify-diagnostics --atmoe-lower-cpu-matmuls="token-tile=0"

// Tests that a non-positive tile size is rejected.
// expected-error @+1 {{tile sizes must be positive}}
module {
}
