# The Run Command document of ssm orders: its script (infra/ssm) runs `iac-ci worker` on each
# target instance. The instances need iac-ci on their PATH and an instance profile that may
# read the run keys (ssm:GetParameter on the run_key_parameter_prefix output); see docs/deploy.md.
resource "aws_ssm_document" "run_commands" {
  name            = local.ssm_document
  document_type   = "Command"
  document_format = "YAML"
  content         = file("${path.module}/../ssm/iac-ci-run-commands.yaml")
}
