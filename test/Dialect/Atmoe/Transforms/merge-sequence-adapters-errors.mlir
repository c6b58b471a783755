// RUN: atmoe-opt %s --split-input-file --verify-diagnostics \
// RUN:   --atmoe-merge-sequence-adapters="policy=always merge-threshold=-2"
// RUN: not atmoe-opt %s --atmoe-lower-to-linalg-pipeline=sequence-merge=sometimes 2>&1 \
// RUN:   | FileCheck %s --check-prefix=PIPELINE
// RUN: not atmoe-opt %s --atmoe-lower-to-linalg-pipeline=sequence-merge-threshold=-5 2>&1 \
// RUN:   | FileCheck %s --check-prefix=PIPELINE-THRESHOLD

// Tests that bad options are reported on the module, one error each, naming
// the accepted values, and that the pipeline options reach the pass.
// PIPELINE: error: unknown sequence merge policy 'sometimes' (expected auto, merge or unmerged)
// PIPELINE-THRESHOLD: error: expects merge-threshold (-5) to be -1 (cost model) or a token count
// expected-error @+2 {{unknown sequence merge policy 'always' (expected auto, merge or unmerged)}}
// expected-error @+1 {{expects merge-threshold (-2) to be -1 (cost model) or a token count}}
module {
}
