// RUN: atmoe-opt %s --split-input-file --verify-diagnostics \
// RUN:   --atmoe-merge-sequence-adapters="merge-threshold=-2"
// RUN: not atmoe-opt %s --atmoe-merge-sequence-adapters="policy=always" 2>&1 \
// RUN:   | FileCheck %s --check-prefix=POLICY
// RUN: not atmoe-opt %s --atmoe-lower-to-linalg-pipeline=sequence-merge=sometimes 2>&1 \
// RUN:   | FileCheck %s --check-prefix=PIPELINE
// RUN: not atmoe-opt %s --atmoe-lower-to-linalg-pipeline=sequence-merge-threshold=-5 2>&1 \
// RUN:   | FileCheck %s --check-prefix=PIPELINE-THRESHOLD

// Tests that bad options are reported, naming the accepted values, and that
// the pipeline options reach the pass. The policy is an enum option: the
// option parser rejects an unknown one (--help lists the values).
// POLICY: for the --policy option: Cannot find option named 'always'!
// PIPELINE: for the --sequence-merge option: Cannot find option named 'sometimes'!
// PIPELINE-THRESHOLD: error: expects merge-threshold (-5) to be -1 (cost model) or a token count
// expected-error @+1 {{expects merge-threshold (-2) to be -1 (cost model) or a token count}}
module {
}
