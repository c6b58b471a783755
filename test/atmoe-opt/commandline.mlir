// RUN: atmoe-opt --help | FileCheck %s

// Tests that atmoe-opt registers the atmoe dialect, its passes and the
// upstream dialects and passes the pipelines use.
// CHECK: Available Dialects:{{.*}} atmoe
// CHECK-SAME: linalg
// CHECK: --atmoe-expand-segments
// CHECK: --canonicalize
// CHECK: --cse
