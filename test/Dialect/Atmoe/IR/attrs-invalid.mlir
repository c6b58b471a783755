// RUN: atmoe-opt %s --split-input-file --verify-diagnostics

// Tests that an ABI attribute must be a non-empty string.
// expected-error @below {{'func.func' op expects atmoe.input on argument #0 to be a non-empty string, found 1 : i64}}
func.func @input_not_a_string(%x: tensor<?x4xf32> {atmoe.input = 1}) {
  return
}

// -----

// Tests that an argument has one role.
// expected-error @below {{'func.func' op expects argument #0 to have one of atmoe.input, atmoe.tensor and atmoe.output, found 2}}
func.func @two_roles(%x: tensor<?x4xf32> {atmoe.input = "x", atmoe.tensor = "w", atmoe.file = "w.safetensors", atmoe.source = "w"}) {
  return
}

// -----

// Tests that a result is an output and nothing else.
// expected-error @below {{'func.func' op expects only atmoe.output on results, found another role on result #0}}
func.func @result_input(%x: tensor<?x4xf32>) -> (tensor<?x4xf32> {atmoe.input = "x"}) {
  return %x : tensor<?x4xf32>
}

// -----

// Tests that a weight says where it is stored.
// expected-error @below {{'func.func' op expects the weight at argument #0 to have either atmoe.file and atmoe.source, or atmoe.parts and one of atmoe.concat_dim and atmoe.dora_scale}}
func.func @weight_without_file(%w: tensor<4x4xf32> {atmoe.tensor = "w"}) {
  return
}

// -----

// Tests that a weight is stored one way only.
// expected-error @below {{'func.func' op expects the weight at argument #0 to have either atmoe.file and atmoe.source, or atmoe.parts and one of atmoe.concat_dim and atmoe.dora_scale}}
func.func @weight_stored_twice(%w: tensor<4x4xf32> {atmoe.tensor = "w", atmoe.file = "w.safetensors", atmoe.source = "w", atmoe.parts = [{tensor = "w", file = "w.safetensors", source = "w", shape = array<i64: 4, 4>}], atmoe.concat_dim = 0 : i64}) {
  return
}

// -----

// Tests the parts of a stacked weight.
// expected-error @below {{'func.func' op expects part #0 of atmoe.parts to have non-empty tensor, file and source strings and an i64 array shape, found {file = "w.safetensors", tensor = "w"}}}
func.func @part_without_source(%w: tensor<4x4xf32> {atmoe.tensor = "w", atmoe.parts = [{tensor = "w", file = "w.safetensors"}], atmoe.concat_dim = 0 : i64}) {
  return
}

// -----

// Tests that parts are a non-empty array.
// expected-error @below {{'func.func' op expects atmoe.parts on argument #0 to be a non-empty array, found []}}
func.func @no_parts(%w: tensor<4x4xf32> {atmoe.tensor = "w", atmoe.parts = [], atmoe.concat_dim = 0 : i64}) {
  return
}

// -----

// Tests the panel width of a repacked GPTQ qweight.
// expected-error @below {{'func.func' op expects atmoe.panel_width on argument #0 to be a positive integer, found 0 : i64}}
func.func @zero_panel_width(%w: tensor<4x4x1xi32> {atmoe.tensor = "w", atmoe.file = "w.safetensors", atmoe.source = "w", atmoe.panel_width = 0 : i64}) {
  return
}

// -----

// Tests the dimension a weight is cut into panels along.
// expected-error @below {{'func.func' op expects atmoe.panel_dim on argument #0 to be 0 or 1, found 2 : i64}}
func.func @panel_dim_out_of_range(%w: tensor<2x4x2xf32> {atmoe.tensor = "w", atmoe.file = "w.safetensors", atmoe.source = "w", atmoe.panel_width = 2 : i64, atmoe.panel_dim = 2 : i64}) {
  return
}

// -----

// Tests the stacking dimension.
// expected-error @below {{'func.func' op expects atmoe.concat_dim on argument #0 to be a non-negative integer, found -1 : i64}}
func.func @negative_concat_dim(%w: tensor<4x4xf32> {atmoe.tensor = "w", atmoe.parts = [{tensor = "w", file = "w.safetensors", source = "w", shape = array<i64: 4, 4>}], atmoe.concat_dim = -1 : i64}) {
  return
}

// -----

// Tests that a misspelt ABI attribute is an error, not ignored.
// expected-error @below {{'func.func' op has unknown attribute atmoe.inptu on argument #0 (docs/ModelABI.md lists the ABI attributes)}}
func.func @misspelt(%x: tensor<?x4xf32> {atmoe.inptu = "x"}) {
  return
}

// -----

// Tests the module's model name.
// expected-error @below {{'builtin.module' op expects atmoe.model to be a string, found 3 : i64}}
module attributes {atmoe.model = 3} {
}

// -----

// Tests a layer index.
// expected-error @below {{'func.func' op expects atmoe.layer_index to be a non-negative integer, found -2 : i64}}
func.func @bad_index() attributes {atmoe.layer_index = -2} {
  return
}

// -----

// Tests the host-argument list of a lowered GPU host function.
// expected-error @below {{'func.func' op expects atmoe.host_arguments to be an i64 array, found [1]}}
func.func @bad_host_arguments() attributes {atmoe.host_arguments = [1]} {
  return
}

// -----

// Tests the annotation the CPU schedule reads off a serial loop.
func.func @serial_max_rows_not_an_integer() {
  // expected-error @below {{'scf.forall' op expects atmoe.serial_max_rows to be a non-negative integer, found "32"}}
  scf.forall (%i) in (2) {
  } {atmoe.serial_max_rows = "32"}
  return
}

// -----

// Tests the matmul roles the CPU schedule tells apart.
func.func @unknown_role(%a: tensor<2x2xf32>, %b: tensor<2x2xf32>, %c: tensor<2x2xf32>) -> tensor<2x2xf32> {
  // expected-error @below {{'linalg.matmul' op expects atmoe.matmul_role to be one of projection, lora_base, lora_down, lora_up, merge_lora, router, dora_norm, found "base"}}
  %0 = linalg.matmul {atmoe.matmul_role = "base"} ins(%a, %b : tensor<2x2xf32>, tensor<2x2xf32>) outs(%c : tensor<2x2xf32>) -> tensor<2x2xf32>
  return %0 : tensor<2x2xf32>
}

// -----

// Tests that an unknown atmoe attribute on an op is an error.
// expected-error @below {{'func.func' op has unknown attribute atmoe.layer_idx}}
func.func @unknown_op_attr() attributes {atmoe.layer_idx = 1} {
  return
}

// -----

// Tests that a weight computed at bind time has a finite f64 DoRA scale.
// expected-error @below {{'func.func' op expects atmoe.dora_scale on argument #0 to be a finite f64, found 2.000000e+00 : f32}}
func.func @dora_scale_type(%c: tensor<4xf32> {atmoe.tensor = "c", atmoe.dora_scale = 2.0 : f32, atmoe.parts = [{tensor = "m", file = "a", source = "m", shape = array<i64: 4>}]}) {
  return
}

// -----

// Tests that a weight is stacked or computed, not both.
// expected-error @below {{'func.func' op expects the weight at argument #0 to have either atmoe.file and atmoe.source, or atmoe.parts and one of atmoe.concat_dim and atmoe.dora_scale}}
func.func @stacked_and_computed(%c: tensor<4xf32> {atmoe.tensor = "c", atmoe.concat_dim = 0 : i64, atmoe.dora_scale = 2.0 : f64, atmoe.parts = [{tensor = "m", file = "a", source = "m", shape = array<i64: 4>}]}) {
  return
}
