// An input for option errors of function passes (not a test itself).
// expected-error @below {{panel-width must be positive}}
func.func @any(%q: tensor<32x128xi32>) {
  return
}
