resource "null_resource" "hello" {
  triggers = {
    greeting = "hello from iac-ci"
  }
}
