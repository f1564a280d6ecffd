# Every queue of queues.Topology, each main queue with its dead-letter queue after
# max_receive_count receives. A queue that a function consumes keeps a received message hidden
# for six times that function's timeout, as Lambda's documentation advises for SQS event
# sources (retries of throttled batches need the room), and never less than the engine's own
# default; the worker's queue (900 s function) so outlasts the longest lambda order, which is why
# the worker function need not extend visibility. results-dlq has no consumer: a result that could
# not be recorded is found again by the sweeper, and the dead message waits for an operator.
locals {
  queues = {
    "intake"               = { visibility = 1800, dead_letter = "intake-dlq", max_receive_count = 5 }
    "intake-dlq"           = { visibility = 360, dead_letter = null, max_receive_count = 0 }
    "orders-lambda"        = { visibility = 5400, dead_letter = "orders-lambda-dlq", max_receive_count = 5 }
    "orders-lambda-dlq"    = { visibility = 360, dead_letter = null, max_receive_count = 0 }
    "orders-codebuild"     = { visibility = 360, dead_letter = "orders-codebuild-dlq", max_receive_count = 5 }
    "orders-codebuild-dlq" = { visibility = 360, dead_letter = null, max_receive_count = 0 }
    "orders-ssm"           = { visibility = 360, dead_letter = "orders-ssm-dlq", max_receive_count = 5 }
    "orders-ssm-dlq"       = { visibility = 360, dead_letter = null, max_receive_count = 0 }
    "results"              = { visibility = 360, dead_letter = "results-dlq", max_receive_count = 5 }
    "results-dlq"          = { visibility = 60, dead_letter = null, max_receive_count = 0 }
  }
  main_queues        = { for name, q in local.queues : name => q if q.dead_letter != null }
  dead_letter_queues = { for name, q in local.queues : name => q if q.dead_letter == null }
  queue_arns = merge(
    { for name, q in aws_sqs_queue.main : name => q.arn },
    { for name, q in aws_sqs_queue.dead_letter : name => q.arn },
  )
}

resource "aws_sqs_queue" "dead_letter" {
  for_each                   = local.dead_letter_queues
  name                       = "${local.queue_prefix}${each.key}"
  visibility_timeout_seconds = each.value.visibility
  message_retention_seconds  = 1209600 # 14 days, SQS's longest: time to read what died
  receive_wait_time_seconds  = 0
  sqs_managed_sse_enabled    = true
}

resource "aws_sqs_queue" "main" {
  for_each                   = local.main_queues
  name                       = "${local.queue_prefix}${each.key}"
  visibility_timeout_seconds = each.value.visibility
  message_retention_seconds  = 345600 # 4 days
  # Consumers ask for their own long poll; a receive that asks for none must return at once.
  receive_wait_time_seconds = 0
  sqs_managed_sse_enabled   = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter[each.value.dead_letter].arn
    maxReceiveCount     = each.value.max_receive_count
  })
}

# Each dead-letter queue takes messages from its own main queue only.
resource "aws_sqs_queue_redrive_allow_policy" "dead_letter" {
  for_each  = local.main_queues
  queue_url = aws_sqs_queue.dead_letter[each.value.dead_letter].id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.main[each.key].arn]
  })
}

# S3 may send the internal bucket's result notifications to the results queue, and nothing else.
data "aws_iam_policy_document" "results_queue" {
  statement {
    sid       = "ResultNotifications"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.main["results"].arn]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.internal.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_sqs_queue_policy" "results" {
  queue_url = aws_sqs_queue.main["results"].id
  policy    = data.aws_iam_policy_document.results_queue.json
}
