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
