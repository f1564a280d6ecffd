# Alarms and the dashboard. Every alarm notifies one SNS topic (subscribe an e-mail address with
# alarm_email, or anything else to the alarm_topic_arn output), and tells it again when it clears.
#
#   - every queue: the age of its oldest message, and its backlog;
#   - every dead-letter queue: anything in it at all (visible or being read), since a message
#     there is work that died; the deadletters function turns an order's dead letter into a
#     failed result, and the message is kept for an operator to inspect and redrive;
#   - every function: errors and throttles;
#   - the sweeper: fewer invocations than the schedule makes (it repairs what crashes leave).
#
# infra/alarms_test.go checks that every queue of awsbackend.Describe has its alarms.

variable "alarm_email" {
  description = "E-mail address subscribed to the alarm topic (it must confirm the subscription). Empty: no subscription."
  type        = string
  default     = ""
}

variable "alarm_queue_age_seconds" {
  description = "Alarm when a main queue's oldest message is older than this: nobody is consuming it."
  type        = number
  default     = 900
}

variable "alarm_queue_backlog" {
  description = "Alarm when a main queue holds more visible messages than this for alarm_evaluation_minutes."
  type        = number
  default     = 100
}

variable "alarm_dead_letter_age_seconds" {
  description = "Alarm when a dead-letter queue's oldest message is older than this: a dead letter waits for an operator."
  type        = number
  default     = 86400
}

variable "alarm_function_errors" {
  description = "Alarm when a function's errors in one minute exceed this, alarm_evaluation_minutes in a row."
  type        = number
  default     = 0
}

variable "alarm_function_throttles" {
  description = "Alarm when a function's throttles in one minute exceed this, alarm_evaluation_minutes in a row."
  type        = number
  default     = 0
}

variable "alarm_evaluation_minutes" {
  description = "How many one-minute periods in a row a queue or function alarm's condition must hold."
  type        = number
  default     = 5
  validation {
    condition     = var.alarm_evaluation_minutes >= 1 && var.alarm_evaluation_minutes <= 60
    error_message = "alarm_evaluation_minutes: 1 to 60."
  }
}

variable "alarm_sweeper_missed_minutes" {
  description = "Alarm when the sweeper, scheduled every minute, has not run for this many minutes."
  type        = number
  default     = 5
  validation {
    condition     = var.alarm_sweeper_missed_minutes >= 2 && var.alarm_sweeper_missed_minutes <= 60
    error_message = "alarm_sweeper_missed_minutes: 2 to 60."
  }
}

resource "aws_sns_topic" "alarms" {
  name = "${var.prefix}-alarms"
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count     = var.alarm_email == "" ? 0 : 1
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

locals {
  alarm_actions = [aws_sns_topic.alarms.arn]
  queue_names = merge(
    { for name, q in aws_sqs_queue.main : name => q.name },
    { for name, q in aws_sqs_queue.dead_letter : name => q.name },
  )
}

resource "aws_cloudwatch_metric_alarm" "queue_age" {
  for_each            = local.queue_names
  alarm_name          = "${each.value}-oldest-message-age"
  alarm_description   = "iac-ci: the oldest message of ${each.value} is older than expected."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = contains(keys(local.dead_letter_queues), each.key) ? 1 : var.alarm_evaluation_minutes
  comparison_operator = "GreaterThanThreshold"
  threshold           = contains(keys(local.dead_letter_queues), each.key) ? var.alarm_dead_letter_age_seconds : var.alarm_queue_age_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "queue_backlog" {
  for_each            = aws_sqs_queue.main
  alarm_name          = "${each.value.name}-backlog"
  alarm_description   = "iac-ci: ${each.value.name} holds more than ${var.alarm_queue_backlog} messages."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = var.alarm_evaluation_minutes
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_queue_backlog
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# A dead-letter queue's backlog alarm fires on the first message: visible or being read (by the
# deadletters function), it is there.
resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  for_each            = aws_sqs_queue.dead_letter
  alarm_name          = "${each.value.name}-dead-letters"
  alarm_description   = "iac-ci: ${each.value.name} holds dead letters; inspect them (iac-ci dlq) and redrive or drop them."
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "held"
    expression  = "visible + reading"
    label       = "Dead letters held"
    return_data = true
  }
  metric_query {
    id = "visible"
    metric {
      namespace   = "AWS/SQS"
      metric_name = "ApproximateNumberOfMessagesVisible"
      dimensions  = { QueueName = each.value.name }
      stat        = "Maximum"
      period      = 60
    }
  }
  metric_query {
    id = "reading"
    metric {
      namespace   = "AWS/SQS"
      metric_name = "ApproximateNumberOfMessagesNotVisible"
      dimensions  = { QueueName = each.value.name }
      stat        = "Maximum"
      period      = 60
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "function_errors" {
  for_each            = aws_lambda_function.fn
  alarm_name          = "${each.value.function_name}-errors"
  alarm_description   = "iac-ci: the ${each.key} function fails (see its log group)."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = each.value.function_name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = var.alarm_evaluation_minutes
  datapoints_to_alarm = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_function_errors
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "function_throttles" {
  for_each            = aws_lambda_function.fn
  alarm_name          = "${each.value.function_name}-throttles"
  alarm_description   = "iac-ci: the ${each.key} function is throttled (reserved concurrency or the account's limit)."
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  dimensions          = { FunctionName = each.value.function_name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = var.alarm_evaluation_minutes
  datapoints_to_alarm = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_function_throttles
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# The schedule invokes the sweeper every minute: no invocation for that long means it stopped
# (a disabled schedule, a scheduler role that lost its permission). No data is the same thing.
resource "aws_cloudwatch_metric_alarm" "sweeper_missed" {
  alarm_name          = "${aws_lambda_function.fn["sweeper"].function_name}-not-running"
  alarm_description   = "iac-ci: the sweeper has not run for ${var.alarm_sweeper_missed_minutes} minutes; orders past their deadline are not timed out."
  namespace           = "AWS/Lambda"
  metric_name         = "Invocations"
  dimensions          = { FunctionName = aws_lambda_function.fn["sweeper"].function_name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = var.alarm_sweeper_missed_minutes
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# One page: queue depths and ages, dead letters, the functions, and runs by outcome (from the
# functions' "run finalized" log lines).
resource "aws_cloudwatch_dashboard" "iac_ci" {
  dashboard_name = var.prefix
  dashboard_body = jsonencode({
    widgets = [
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title   = "Queue depth (visible messages)", region = var.region, view = "timeSeries", stat = "Maximum", period = 60
          metrics = [for name, q in aws_sqs_queue.main : ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", q.name]]
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title   = "Age of the oldest message (s)", region = var.region, view = "timeSeries", stat = "Maximum", period = 60
          metrics = [for name, q in aws_sqs_queue.main : ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", q.name]]
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 12, height = 6
        properties = {
          title   = "Dead letters held", region = var.region, view = "timeSeries", stat = "Maximum", period = 60
          metrics = [for name, q in aws_sqs_queue.dead_letter : ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", q.name]]
        }
      },
      {
        type = "metric", x = 12, y = 6, width = 12, height = 6
        properties = {
          title = "Function errors and throttles", region = var.region, view = "timeSeries", stat = "Sum", period = 60
          metrics = concat(
            [for name, f in aws_lambda_function.fn : ["AWS/Lambda", "Errors", "FunctionName", f.function_name]],
            [for name, f in aws_lambda_function.fn : ["AWS/Lambda", "Throttles", "FunctionName", f.function_name]],
          )
        }
      },
      {
        type = "log", x = 0, y = 12, width = 24, height = 6
        properties = {
          title  = "Runs by outcome"
          region = var.region
          view   = "bar"
          query  = "${join(" | ", [for g in aws_cloudwatch_log_group.function : "SOURCE '${g.name}'"])} | filter msg = 'run finalized' | stats count(*) as runs by status"
        }
      },
    ]
  })
}
