# The project that runs codebuild orders. The launcher starts one build per attempt with the
# attempt's presigned URLs and run-key parameter name as environment overrides, and with the
# buildspec of awslaunch.Buildspec, which runs `iac-ci worker` from the image. The image is the
# functions' own; teams that need tools in their orders build on it (see the Dockerfile).
resource "aws_cloudwatch_log_group" "codebuild" {
  name              = "/aws/codebuild/${local.codebuild_project}"
  retention_in_days = var.log_retention_days
}

data "aws_iam_policy_document" "codebuild_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["codebuild.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "codebuild" {
  name               = "${var.prefix}-codebuild"
  assume_role_policy = data.aws_iam_policy_document.codebuild_trust.json
}

# The worker in a build reads the run's key and nothing else of this deployment: the bundle, the
# result and the log travel through the presigned URLs it is given.
data "aws_iam_policy_document" "codebuild" {
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.codebuild.arn}:*"]
  }
  statement {
    sid       = "RunKeys"
    actions   = ["ssm:GetParameter"]
    resources = [local.run_key_arn]
  }
  # The commands run with the order role's credentials, which the worker assumes and hands them;
  # the build's own role (which reads run keys) never reaches their environment.
  statement {
    sid       = "AssumeOrderRole"
    actions   = ["sts:AssumeRole"]
    resources = [aws_iam_role.order.arn]
  }
  statement {
    sid       = "PullImageToken"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }
  statement {
    sid       = "PullImage"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [local.ecr_repository_arn]
  }
}

resource "aws_iam_role_policy" "codebuild" {
  name   = "${var.prefix}-codebuild"
  role   = aws_iam_role.codebuild.id
  policy = data.aws_iam_policy_document.codebuild.json
}

resource "aws_codebuild_project" "worker" {
  name          = local.codebuild_project
  description   = "iac-ci: runs codebuild orders with iac-ci worker"
  service_role  = aws_iam_role.codebuild.arn
  build_timeout = 480 # each build sets its own: its order's timeout plus a margin
  # A build that waits longer to start would run past its order's deadline; each build sets it.
  queued_timeout = 5

  source {
    type      = "NO_SOURCE"
    buildspec = <<-EOT
      version: 0.2
      phases:
        build:
          commands:
            - iac-ci worker
    EOT
  }

  artifacts {
    type = "NO_ARTIFACTS"
  }

  environment {
    type                        = var.lambda_architecture == "arm64" ? "ARM_CONTAINER" : "LINUX_CONTAINER"
    compute_type                = var.codebuild_compute_type
    image                       = local.image_uri
    image_pull_credentials_type = "SERVICE_ROLE"

    environment_variable {
      name  = "IAC_CI_ORDER_ROLE_ARN"
      value = aws_iam_role.order.arn
    }
    environment_variable {
      name  = "IAC_CI_ORDER_ROLE_SESSION"
      value = "${aws_iam_role.order.max_session_duration}s"
    }
  }

  logs_config {
    cloudwatch_logs {
      group_name = aws_cloudwatch_log_group.codebuild.name
    }
  }

  depends_on = [aws_iam_role_policy.codebuild]
}
