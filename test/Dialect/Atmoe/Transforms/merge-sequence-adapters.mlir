// RUN: atmoe-opt %s --split-input-file --atmoe-merge-sequence-adapters | FileCheck %s --check-prefixes=CHECK,AUTO
// RUN: atmoe-opt %s --split-input-file --atmoe-merge-sequence-adapters=policy=merge | FileCheck %s --check-prefixes=CHECK,MERGE
// RUN: atmoe-opt %s --split-input-file --atmoe-merge-sequence-adapters=policy=unmerged | FileCheck %s --check-prefixes=CHECK,UNMERGED
// RUN: atmoe-opt %s --split-input-file --atmoe-merge-sequence-adapters=merge-threshold=4 | FileCheck %s --check-prefixes=CHECK,THRESHOLD
// Output widths a target's weight panels divide (4 here) stay unmerged under
// auto: the panels' kernel beats a merged W' in the stored layout. Widths
// they do not divide (3) keep the cost model; policy=merge still merges.
// RUN: atmoe-opt %s --split-input-file --atmoe-merge-sequence-adapters=panel-width=4 | FileCheck %s --check-prefix=PANELS
// RUN: atmoe-opt %s --split-input-file --atmoe-merge-sequence-adapters=panel-width=3 | FileCheck %s --check-prefixes=CHECK,AUTO
// RUN: atmoe-opt %s --split-input-file --atmoe-merge-sequence-adapters="policy=merge panel-width=4" | FileCheck %s --check-prefixes=CHECK,MERGE
// PANELS-NOT: atmoe.merge_lora
// RUN: atmoe-opt %s --split-input-file --atmoe-lower-to-linalg-pipeline=sequence-merge=unmerged | FileCheck %s --check-prefix=PIPELINE-UNMERGED
// RUN: atmoe-opt %s --split-input-file --atmoe-lower-to-linalg-pipeline="sequence-merge=auto sequence-merge-threshold=1" | FileCheck %s --check-prefix=PIPELINE-MERGE

atmoe.layer @l {
  atmoe.expert_group @g {
    atmoe.lora_expert @icd
    atmoe.lora_expert @qa
  }
  atmoe.shared_expert @s lambda = 7.500000e-01
}

// Tests that segments of dynamic length get a run-time choice: the whole batch
// stays unmerged unless some segment reaches the cost model's threshold
// (d_out d_in (R + 2m) / (R (d_in + d_out)) = 4 * 8 * 21 / 60 -> 12 tokens),
// and then each segment is merged or not by its own length. Routed factors
// are lambda * alpha / r, the shared one (1 - lambda) * alpha / r.
// CHECK-LABEL: func.func @segments
// CHECK-SAME: (%[[X:.+]]: tensor<?x8xf32>, %[[W:.+]]: tensor<4x8xf32>, %[[BIAS:.+]]: tensor<4xf32>, %[[A0:.+]]: tensor<2x8xf32>, %[[B0:.+]]: tensor<4x2xf32>, %[[A1:.+]]: tensor<3x8xf32>, %[[B1:.+]]: tensor<4x3xf32>, %[[R:.+]]: tensor<?x2xf32>, %[[S:.+]]: tensor<?xi64>)
// UNMERGED: atmoe.lora_linear {{.*}} granularity(sequence)
// UNMERGED-NOT: atmoe.merge_lora
// AUTO-DAG: %[[DOWN:.+]] = tensor.concat dim(0) %[[A0]], %[[A1]]
// AUTO-DAG: %[[UP:.+]] = tensor.concat dim(1) %[[B0]], %[[B1]]
// AUTO-DAG: %[[T:.+]] = tensor.dim %[[X]], %{{.+}} : tensor<?x8xf32>
// AUTO-DAG: %[[N:.+]] = arith.constant 12 : index
// THRESHOLD: %[[N:.+]] = arith.constant 4 : index
// AUTO: %[[LONGEST:.+]] = scf.for {{.*}} -> (index) {
// AUTO:   tensor.extract %[[S]]
// AUTO:   arith.maxsi
// AUTO: %[[ANY:.+]] = arith.cmpi sge, %[[LONGEST]], %[[N]] : index
// AUTO: %[[Y:.+]] = scf.if %[[ANY]] -> (tensor<?x4xf32>) {
// AUTO:   %[[INIT:.+]] = tensor.empty(%[[T]]) : tensor<?x4xf32>
// AUTO:   %[[LOOP:.+]]:2 = scf.for %[[I:.+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%[[ACC:.+]] = %[[INIT]], %[[OFF:.+]] = %{{.+}}) -> (tensor<?x4xf32>, index) {
// AUTO:     %[[LEN64:.+]] = tensor.extract %[[S]][%[[I]]] : tensor<?xi64>
// AUTO:     %[[LEN:.+]] = arith.index_cast %[[LEN64]] : i64 to index
// AUTO:     %[[XS:.+]] = tensor.extract_slice %[[X]][%[[OFF]], 0] [%[[LEN]], 8] [1, 1] : tensor<?x8xf32> to tensor<?x8xf32>
// AUTO:     %[[ROW:.+]] = tensor.extract_slice %[[R]][%[[I]], 0] [1, 2] [1, 1] : tensor<?x2xf32> to tensor<1x2xf32>
// AUTO:     %[[LARGE:.+]] = arith.cmpi sge, %[[LEN]], %[[N]] : index
// AUTO:     scf.if %[[LARGE]] -> (tensor<?x4xf32>) {
// AUTO:       %[[C:.+]] = atmoe.lora_scales routing(%[[ROW]] : tensor<1x2xf32>) tokens %{{.+}} ranks [2, 3] columns [0, -1] factors [1.500000e+00, 5.000000e-01] : tensor<1x5xf32>
// AUTO:       %[[WM:.+]] = atmoe.merge_lora %[[W]] down(%[[DOWN]] : tensor<5x8xf32>) up(%[[UP]] : tensor<4x5xf32>) scales(%[[C]] : tensor<1x5xf32>) : tensor<4x8xf32>
// AUTO:       %[[YM:.+]] = atmoe.linear %[[XS]], %[[WM]] bias(%[[BIAS]] : tensor<4xf32>) : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
// AUTO:       %[[INS:.+]] = tensor.insert_slice %[[YM]] into %[[ACC]][%[[OFF]], 0] [%[[LEN]], 4] [1, 1]
// AUTO:       scf.yield %[[INS]]
// AUTO:     } else {
// AUTO:       %[[RT:.+]] = atmoe.expand_segments %[[ROW]] tokens %[[LEN]] : tensor<1x2xf32> -> tensor<?x2xf32>
// AUTO:       %[[SC:.+]] = atmoe.lora_scales routing(%[[RT]] : tensor<?x2xf32>) tokens %[[LEN]] ranks [2, 3] columns [0, -1]
// AUTO:       %[[YU:.+]] = atmoe.stacked_lora_linear %[[XS]], %[[W]] bias(%[[BIAS]] : tensor<4xf32>) down(%[[DOWN]] : tensor<5x8xf32>) up(%[[UP]] : tensor<4x5xf32>) scales(%[[SC]] : tensor<?x5xf32>)
// AUTO:       tensor.insert_slice %[[YU]] into %[[ACC]][%[[OFF]], 0] [%[[LEN]], 4] [1, 1]
// AUTO:     }
// AUTO:     arith.addi %[[OFF]], %[[LEN]] : index
// AUTO:   }
// AUTO:   scf.yield %[[LOOP]]#0 : tensor<?x4xf32>
// AUTO: } else {
// AUTO:   %[[RALL:.+]] = atmoe.expand_segments %[[R]] segments(%[[S]] : tensor<?xi64>) tokens %[[T]]
// AUTO:   %[[SALL:.+]] = atmoe.lora_scales routing(%[[RALL]] : tensor<?x2xf32>) tokens %[[T]]
// AUTO:   %[[YALL:.+]] = atmoe.stacked_lora_linear %[[X]], %[[W]] bias(%[[BIAS]] : tensor<4xf32>) down(%[[DOWN]] : tensor<5x8xf32>) up(%[[UP]] : tensor<4x5xf32>) scales(%[[SALL]] : tensor<?x5xf32>)
// AUTO:   scf.yield %[[YALL]]
// AUTO: }
// AUTO: return %[[Y]]
// AUTO-NOT: atmoe.lora_linear
// MERGE-NOT: arith.maxsi
// MERGE: scf.for
// MERGE:   %[[LEN:.+]] = arith.index_cast
// MERGE:   %[[NONEMPTY:.+]] = arith.cmpi sge, %[[LEN]], %[[ONE:.+]] : index
// MERGE:   scf.if %[[NONEMPTY]] -> (tensor<?x4xf32>) {
// MERGE:     atmoe.merge_lora
// MERGE:     atmoe.linear
// MERGE:     tensor.insert_slice
// MERGE:   } else {
// MERGE-NEXT: scf.yield %{{.+}} : tensor<?x4xf32>
// MERGE-NEXT: }
// MERGE-NOT: atmoe.stacked_lora_linear
// MERGE-NOT: atmoe.lora_linear
// PIPELINE-UNMERGED-LABEL: func.func @segments
// PIPELINE-UNMERGED-NOT: scf.if
// PIPELINE-UNMERGED: return
// PIPELINE-MERGE-LABEL: func.func @segments
// PIPELINE-MERGE: linalg.copy
// PIPELINE-MERGE: linalg.matmul {atmoe.matmul_role = "merge_lora"} ins(%{{.+}}, %{{.+}} : tensor<4x5xf32>, tensor<5x8xf32>) outs(%{{.+}} : tensor<4x8xf32>)
// PIPELINE-MERGE-NOT: {{(= |^ *)atmoe\.}}
func.func @segments(%x: tensor<?x8xf32>, %w: tensor<4x8xf32>, %bias: tensor<4xf32>,
                    %a0: tensor<2x8xf32>, %b0: tensor<4x2xf32>,
                    %a1: tensor<3x8xf32>, %b1: tensor<4x3xf32>,
                    %r: tensor<?x2xf32>, %s: tensor<?xi64>) -> tensor<?x4xf32> {
  %y = atmoe.lora_linear %x, %w bias(%bias : tensor<4xf32>) layer(@l) granularity(sequence)
         adapters [#atmoe.lora<@icd, rank = 2, alpha = 4.0>, #atmoe.lora<@s, rank = 3, alpha = 6.0>]
         lora_a(%a0, %a1 : tensor<2x8xf32>, tensor<3x8xf32>)
         lora_b(%b0, %b1 : tensor<4x2xf32>, tensor<4x3xf32>)
         routing(%r : tensor<?x2xf32>) segments(%s : tensor<?xi64>)
         : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}

// -----

atmoe.layer @l {
  atmoe.expert_group @g {
    atmoe.lora_expert @icd
  }
}

// Tests that one sequence (no segments) is merged from routing row 0 when the
// batch has at least the threshold's tokens (4 * 8 * (2 + 16) / (2 * 12) = 24,
// so 25).
// CHECK-LABEL: func.func @one_sequence
// CHECK-SAME: %[[R:[a-z0-9]+]]: tensor<1x1xf32>)
// UNMERGED: atmoe.lora_linear {{.*}} granularity(sequence)
// AUTO: %[[N:.+]] = arith.constant 25 : index
// AUTO: %[[ROW:.+]] = tensor.extract_slice %[[R]][0, 0] [1, 1] [1, 1]
// AUTO: %[[LARGE:.+]] = arith.cmpi sge, %{{.+}}, %[[N]] : index
// AUTO: scf.if %[[LARGE]] -> (tensor<?x4xf32>) {
// AUTO:   atmoe.lora_scales routing(%[[ROW]] : tensor<1x1xf32>) {{.*}} ranks [2] columns [0] factors [2.000000e+00] : tensor<1x2xf32>
// AUTO:   atmoe.merge_lora
// AUTO:   atmoe.linear
// AUTO: } else {
// AUTO:   atmoe.expand_segments %[[R]] tokens
// AUTO:   atmoe.stacked_lora_linear
// AUTO: }
// AUTO-NOT: scf.for
// MERGE: %[[LARGE:.+]] = arith.cmpi sge
// MERGE: scf.if %[[LARGE]] -> (tensor<?x4xf32>) {
// MERGE:   atmoe.merge_lora
// MERGE: } else {
// MERGE:   tensor.empty
// MERGE-NOT: atmoe.stacked_lora_linear
func.func @one_sequence(%x: tensor<?x8xf32>, %w: tensor<4x8xf32>,
                        %a: tensor<2x8xf32>, %b: tensor<4x2xf32>,
                        %r: tensor<1x1xf32>) -> tensor<?x4xf32> {
  %y = atmoe.lora_linear %x, %w layer(@l) granularity(sequence)
         adapters [#atmoe.lora<@icd, rank = 2, alpha = 4.0>]
         lora_a(%a : tensor<2x8xf32>) lora_b(%b : tensor<4x2xf32>)
         routing(%r : tensor<1x1xf32>)
         : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}

// -----

atmoe.layer @l {
  atmoe.expert_group @g {
    atmoe.lora_expert @icd
  }
}

// Tests that a static batch shorter than the threshold is decided at compile
// time: no segment can reach 25 tokens, so the op is left unmerged; a forced
// merge of a static batch needs no test at all.
// CHECK-LABEL: func.func @static_short
// AUTO-NOT: scf.if
// AUTO: atmoe.lora_linear {{.*}} granularity(sequence)
// THRESHOLD-NOT: atmoe.lora_linear
// THRESHOLD: scf.if
// MERGE-NOT: scf.if
// MERGE: atmoe.merge_lora
// MERGE: atmoe.linear {{.*}} -> tensor<6x4xf32>
func.func @static_short(%x: tensor<6x8xf32>, %w: tensor<4x8xf32>,
                        %a: tensor<2x8xf32>, %b: tensor<4x2xf32>,
                        %r: tensor<1x1xf32>) -> tensor<6x4xf32> {
  %y = atmoe.lora_linear %x, %w layer(@l) granularity(sequence)
         adapters [#atmoe.lora<@icd, rank = 2, alpha = 4.0>]
         lora_a(%a : tensor<2x8xf32>) lora_b(%b : tensor<4x2xf32>)
         routing(%r : tensor<1x1xf32>)
         : tensor<6x8xf32>, tensor<4x8xf32> -> tensor<6x4xf32>
  return %y : tensor<6x4xf32>
}

// -----

atmoe.layer @l {
  atmoe.expert_group @g {
    atmoe.lora_expert @icd
  }
  atmoe.shared_expert @s lambda = 0.000000e+00
}

// Tests that a projection with only the shared expert (no routing weights)
// merges once for the whole batch.
// CHECK-LABEL: func.func @shared_only
// UNMERGED: atmoe.lora_linear {{.*}} granularity(sequence)
// AUTO-NOT: scf.for
// AUTO: scf.if
// AUTO:   atmoe.lora_scales tokens %{{.+}} ranks [2] columns [-1] factors [2.000000e+00] : tensor<1x2xf32>
// AUTO:   atmoe.merge_lora
// AUTO: } else {
// AUTO:   atmoe.lora_scales tokens
// AUTO:   atmoe.stacked_lora_linear
func.func @shared_only(%x: tensor<?x8xf32>, %w: tensor<4x8xf32>,
                       %a: tensor<2x8xf32>, %b: tensor<4x2xf32>,
                       %s: tensor<?xi64>) -> tensor<?x4xf32> {
  %y = atmoe.lora_linear %x, %w layer(@l) granularity(sequence)
         adapters [#atmoe.lora<@s, rank = 2, alpha = 4.0>]
         lora_a(%a : tensor<2x8xf32>) lora_b(%b : tensor<4x2xf32>)
         : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}

// -----

atmoe.layer @l {
  atmoe.expert_group @g {
    atmoe.lora_expert @icd
  }
}

// Tests that token granularity is left alone: every token has its own plan.
// CHECK-LABEL: func.func @token
// CHECK: atmoe.lora_linear
// CHECK-NOT: atmoe.merge_lora
func.func @token(%x: tensor<?x8xf32>, %w: tensor<4x8xf32>,
                 %a: tensor<2x8xf32>, %b: tensor<4x2xf32>,
                 %r: tensor<?x1xf32>) -> tensor<?x4xf32> {
  %y = atmoe.lora_linear %x, %w layer(@l)
         adapters [#atmoe.lora<@icd, rank = 2, alpha = 4.0>]
         lora_a(%a : tensor<2x8xf32>) lora_b(%b : tensor<4x2xf32>)
         routing(%r : tensor<?x1xf32>)
         : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}

// -----

atmoe.layer @l {
  atmoe.expert_group @g0 {
    atmoe.lora_expert @e0
    atmoe.lora_expert @e1
  }
  atmoe.expert_group @g1 {
    atmoe.lora_expert @e2
    atmoe.lora_expert @e3
  }
  atmoe.expert_group @g2 {
    atmoe.lora_expert @e4
    atmoe.lora_expert @e5
  }
  atmoe.expert_group @g3 {
    atmoe.lora_expert @e6
    atmoe.lora_expert @e7
  }
  atmoe.shared_expert @s lambda = 8.000000e-01
}

// Tests the cost model on the SPEC §6 shape (d = 4096, E = 8, r = 16 plus a
// shared r = 16, so R = 144): 4096^2 * 160 / (144 * 8192) = 2275.6, so only
// segments of at least 2276 tokens are merged.
// CHECK-LABEL: func.func @spec_shape
// AUTO: arith.constant 2276 : index
// AUTO: atmoe.merge_lora {{.*}} : tensor<4096x4096xf32>
func.func @spec_shape(%x: tensor<?x4096xf32>, %w: tensor<4096x4096xf32>,
                      %a: tensor<16x4096xf32>, %b: tensor<4096x16xf32>,
                      %r: tensor<?x8xf32>, %s: tensor<?xi64>) -> tensor<?x4096xf32> {
  %y = atmoe.lora_linear %x, %w layer(@l) granularity(sequence)
         adapters [#atmoe.lora<@e0, rank = 16, alpha = 32.0>, #atmoe.lora<@e1, rank = 16, alpha = 32.0>,
                   #atmoe.lora<@e2, rank = 16, alpha = 32.0>, #atmoe.lora<@e3, rank = 16, alpha = 32.0>,
                   #atmoe.lora<@e4, rank = 16, alpha = 32.0>, #atmoe.lora<@e5, rank = 16, alpha = 32.0>,
                   #atmoe.lora<@e6, rank = 16, alpha = 32.0>, #atmoe.lora<@e7, rank = 16, alpha = 32.0>,
                   #atmoe.lora<@s, rank = 16, alpha = 32.0>]
         lora_a(%a, %a, %a, %a, %a, %a, %a, %a, %a : tensor<16x4096xf32>, tensor<16x4096xf32>, tensor<16x4096xf32>, tensor<16x4096xf32>, tensor<16x4096xf32>, tensor<16x4096xf32>, tensor<16x4096xf32>, tensor<16x4096xf32>, tensor<16x4096xf32>)
         lora_b(%b, %b, %b, %b, %b, %b, %b, %b, %b : tensor<4096x16xf32>, tensor<4096x16xf32>, tensor<4096x16xf32>, tensor<4096x16xf32>, tensor<4096x16xf32>, tensor<4096x16xf32>, tensor<4096x16xf32>, tensor<4096x16xf32>, tensor<4096x16xf32>)
         routing(%r : tensor<?x8xf32>) segments(%s : tensor<?xi64>)
         : tensor<?x4096xf32>, tensor<4096x4096xf32> -> tensor<?x4096xf32>
  return %y : tensor<?x4096xf32>
}

// -----

atmoe.layer @l {
  atmoe.expert_group @g {
    atmoe.lora_expert @icd
  }
}

// Tests that a projection with a DoRA or lora-bias adapter is never merged:
// neither term is part of W + B A, so it keeps the unmerged path.
// CHECK-LABEL: func.func @variants_stay_unmerged
// CHECK-NOT:     atmoe.merge_lora
// CHECK:         atmoe.lora_linear {{.*}} granularity(sequence) adapters [#atmoe.lora<@icd, rank = 2, alpha = 4.000000e+00, bias>]
// CHECK-NOT:     atmoe.merge_lora
func.func @variants_stay_unmerged(%x: tensor<?x8xf32>, %w: tensor<4x8xf32>, %a: tensor<2x8xf32>, %b: tensor<4x2xf32>, %v: tensor<4xf32>, %r: tensor<?x1xf32>, %s: tensor<?xi64>) -> tensor<?x4xf32> {
  %y = atmoe.lora_linear %x, %w layer(@l) granularity(sequence)
         adapters [#atmoe.lora<@icd, rank = 2, alpha = 4.0, bias>]
         lora_a(%a : tensor<2x8xf32>) lora_b(%b : tensor<4x2xf32>)
         lora_bias(%v : tensor<4xf32>)
         routing(%r : tensor<?x1xf32>) segments(%s : tensor<?xi64>)
         : tensor<?x8xf32>, tensor<4x8xf32> -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}
