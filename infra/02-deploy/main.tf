# Stack 02-deploy: everything iac-ci runs on. One image (01-ecr) runs as every Lambda function
# and as the CodeBuild project; the names below are the ones the functions read from their
# IAC_CI_* variables (awsbackend.FromEnv), and infra/infra_test.go checks that this stack
# creates what awsbackend.Describe lists: the queues of queues.Topology, the tables with their
# keys, indexes and TTL, and the result notification.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  image_uri  = "${var.ecr_repository_url}:${var.image_tag}"

  # Names, as awsbackend derives them from IAC_CI_PREFIX. Bucket names are global, so they carry
  # a suffix (the account id unless set) and the functions are told them.
  queue_prefix      = "${var.prefix}-"
  orders_table      = "${var.prefix}-orders"
  events_table      = "${var.prefix}-events"
  bucket_suffix     = var.bucket_suffix != "" ? var.bucket_suffix : local.account_id
  internal_bucket   = "${var.prefix}-internal-${local.bucket_suffix}"
  done_bucket       = "${var.prefix}-done-${local.bucket_suffix}"
  run_key_prefix    = "/${var.prefix}/run-keys"
  codebuild_project = "${var.prefix}-worker"
  ssm_document      = "${var.prefix}-run-commands"

  job_secret_parameter_prefix = var.job_secret_parameter_prefix != "" ? trimsuffix(var.job_secret_parameter_prefix, "/") : "/${var.prefix}/secrets"
  job_secret_name_prefix      = var.job_secret_name_prefix != "" ? var.job_secret_name_prefix : "${var.prefix}/"

  ecr_repository_name = join("/", slice(split("/", var.ecr_repository_url), 1, length(split("/", var.ecr_repository_url))))
  ecr_repository_arn  = "arn:${local.partition}:ecr:${var.region}:${local.account_id}:repository/${local.ecr_repository_name}"
}
