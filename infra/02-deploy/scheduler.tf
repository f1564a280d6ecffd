# The sweeper runs every minute (consumers.Sweeper): it times out orders past their deadline,
# re-sends orders stuck queued, wakes waiting orders and finalizes runs a crash left open. A
# missed minute is repaired by the next, so a failed invocation is not retried.
data "aws_iam_policy_document" "scheduler_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${var.prefix}-scheduler"
  assume_role_policy = data.aws_iam_policy_document.scheduler_trust.json
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid       = "InvokeSweeper"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.fn["sweeper"].arn, "${aws_lambda_function.fn["sweeper"].arn}:*"]
  }
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "${var.prefix}-scheduler"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}

resource "aws_scheduler_schedule" "sweeper" {
  name                = "${var.prefix}-sweeper"
  description         = "iac-ci: one sweep a minute"
  schedule_expression = "rate(1 minute)"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.fn["sweeper"].arn
    role_arn = aws_iam_role.scheduler.arn
    input    = jsonencode({ source = "iac-ci.scheduler", "detail-type" = "sweep", detail = {} })
    retry_policy {
      maximum_retry_attempts       = 0
      maximum_event_age_in_seconds = 60
    }
  }
}

# A CodeBuild build that dies without its result (out of memory, a failed provisioning, stopped,
# timed out) ends its order at once: EventBridge hands its state change to the sweeper function,
# which ends the attempt the build ran (consumers.BuildEvents), unless its result came first.
resource "aws_cloudwatch_event_rule" "dead_builds" {
  name        = "${var.prefix}-dead-builds"
  description = "iac-ci: CodeBuild builds of the worker project that ended without success"
  event_pattern = jsonencode({
    source        = ["aws.codebuild"]
    "detail-type" = ["CodeBuild Build State Change"]
    detail = {
      "project-name" = [aws_codebuild_project.worker.name]
      "build-status" = ["FAILED", "FAULT", "STOPPED", "TIMED_OUT"]
    }
  })
}

resource "aws_cloudwatch_event_target" "dead_builds" {
  rule = aws_cloudwatch_event_rule.dead_builds.name
  arn  = aws_lambda_function.fn["sweeper"].arn
}

resource "aws_lambda_permission" "dead_builds" {
  statement_id  = "dead-builds"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.fn["sweeper"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.dead_builds.arn
}
