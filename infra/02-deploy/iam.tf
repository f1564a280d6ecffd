# One role per function, each allowed what its code calls and no more, on this deployment's
# resources only. Reads of objects come with s3:ListBucket on their bucket: without it S3 answers
# a missing key with 403 instead of 404, and the engine tells a missing result or bundle from a
# failure by that 404.
locals {
  internal_arn  = aws_s3_bucket.internal.arn
  done_arn      = aws_s3_bucket.done.arn
  table_arns    = [aws_dynamodb_table.orders.arn, "${aws_dynamodb_table.orders.arn}/index/*", aws_dynamodb_table.events.arn, "${aws_dynamodb_table.events.arn}/index/*"]
  run_key_arn   = "arn:${local.partition}:ssm:${var.region}:${local.account_id}:parameter${local.run_key_prefix}/*"
  order_queues  = [local.queue_arns["orders-lambda"], local.queue_arns["orders-codebuild"], local.queue_arns["orders-ssm"]]
  table_reads   = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"]
  table_writes  = concat(local.table_reads, ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem"])
  parameter_arn = "arn:${local.partition}:ssm:${var.region}:${local.account_id}:parameter"
  ssm_tag_key   = split("=", var.ssm_instance_tag)[0]
  ssm_tag_value = join("=", slice(split("=", var.ssm_instance_tag), 1, length(split("=", var.ssm_instance_tag))))

  webhook_secret_arns = compact([
    "${local.parameter_arn}${var.webhook_secret_parameter}",
    var.github_token_parameter == "" ? "" : "${local.parameter_arn}${var.github_token_parameter}",
    var.api_token_parameter == "" ? "" : "${local.parameter_arn}${var.api_token_parameter}",
  ])
  # Every function reads the API and GitHub tokens, when they are set (see functions.tf).
  token_arns = compact([
    var.github_token_parameter == "" ? "" : "${local.parameter_arn}${var.github_token_parameter}",
    var.api_token_parameter == "" ? "" : "${local.parameter_arn}${var.api_token_parameter}",
  ])
  read_tokens = length(local.token_arns) == 0 ? [] : [
    { sid = "Tokens", actions = ["ssm:GetParameter"], resources = local.token_arns },
  ]
  # The dead-letter book (package deadletters): a failed handling notes its error, a
  # dead-letter consumer keeps the dead letter; operators read, redrive and purge them.
  note_failures = [
    { sid = "DeadLetterNotes", actions = ["s3:GetObject", "s3:PutObject"], resources = ["${local.internal_arn}/dead-letters/*"] },
  ]

  # Moving runs forward (engine.Finish, Finalize, Report; the sweeper's repairs): the tables,
  # queueing woken orders, the done object, deleting the run's key.
  moves_runs = [
    { sid = "Tables", actions = local.table_writes, resources = local.table_arns },
    { sid = "QueueOrders", actions = ["sqs:GetQueueUrl", "sqs:SendMessage"], resources = local.order_queues },
    { sid = "WriteDone", actions = ["s3:PutObject"], resources = ["${local.done_arn}/*"] },
    { sid = "DeleteRunKeys", actions = ["ssm:DeleteParameter"], resources = [local.run_key_arn] },
    { sid = "ListInternal", actions = ["s3:ListBucket"], resources = [local.internal_arn] },
  ]

  function_statements = {
    webhook = [
      { sid = "ReadRuns", actions = local.table_reads, resources = local.table_arns },
      # Accept stores the request, and removes it again when the intake queue refused it.
      { sid = "Requests", actions = ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"], resources = ["${local.internal_arn}/requests/*"] },
      { sid = "ListInternal", actions = ["s3:ListBucket"], resources = [local.internal_arn] },
      { sid = "ReadDone", actions = ["s3:GetObject"], resources = ["${local.done_arn}/*"] },
      { sid = "ListDone", actions = ["s3:ListBucket"], resources = [local.done_arn] },
      { sid = "QueueIntake", actions = ["sqs:GetQueueUrl", "sqs:SendMessage"], resources = [local.queue_arns["intake"]] },
      { sid = "WebhookSecrets", actions = ["ssm:GetParameter"], resources = local.webhook_secret_arns },
      # The routes of operators and people: logs, dead letters, redrive and rerun.
      { sid = "ReadLogs", actions = ["s3:GetObject"], resources = ["${local.internal_arn}/logs/*", "${local.internal_arn}/callbacks/*"] },
      { sid = "DeadLetters", actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], resources = ["${local.internal_arn}/dead-letters/*"] },
      { sid = "Redrive", actions = ["sqs:GetQueueUrl", "sqs:SendMessage"], resources = concat(local.order_queues, [local.queue_arns["results"]]) },
      { sid = "RequeueOrders", actions = local.table_writes, resources = local.table_arns },
    ]
    intake = concat(local.moves_runs, local.note_failures, local.read_tokens, [
      { sid = "Requests", actions = ["s3:GetObject"], resources = ["${local.internal_arn}/requests/*"] },
      { sid = "Bundles", actions = ["s3:PutObject", "s3:GetObject"], resources = ["${local.internal_arn}/exec/*"] },
      { sid = "RunKeys", actions = ["ssm:PutParameter", "ssm:GetParameter"], resources = [local.run_key_arn] },
      { sid = "JobParameters", actions = ["ssm:GetParameter"], resources = ["${local.parameter_arn}${local.job_secret_parameter_prefix}/*"] },
      { sid = "JobSecrets", actions = ["secretsmanager:GetSecretValue"], resources = ["arn:${local.partition}:secretsmanager:${var.region}:${local.account_id}:secret:${local.job_secret_name_prefix}*"] },
      ], length(var.code_bucket_arns) == 0 ? [] : [
      { sid = "JobCode", actions = ["s3:GetObject"], resources = [for b in var.code_bucket_arns : "${b}/*"] },
    ])
    worker = concat(local.note_failures, local.read_tokens, [
      { sid = "ClaimOrders", actions = local.table_writes, resources = local.table_arns },
      { sid = "Bundles", actions = ["s3:GetObject"], resources = ["${local.internal_arn}/exec/*"] },
      # The worker presigns its own result URL, and stores the log.
      { sid = "Results", actions = ["s3:PutObject"], resources = ["${local.internal_arn}/callbacks/*", "${local.internal_arn}/logs/*"] },
      { sid = "ListInternal", actions = ["s3:ListBucket"], resources = [local.internal_arn] },
      { sid = "RunKeys", actions = ["ssm:GetParameter"], resources = [local.run_key_arn] },
      # A running order's output so far, every 10 s, removed once it ends.
      { sid = "PartialLogs", actions = ["s3:DeleteObject"], resources = ["${local.internal_arn}/logs/*"] },
      { sid = "AssumeOrderRole", actions = ["sts:AssumeRole"], resources = [aws_iam_role.order.arn] },
    ])
    launcher = concat(local.moves_runs, local.note_failures, local.read_tokens, [
      # Presigned URLs carry the signer's rights: GET of the bundle, PUT of the result and log.
      { sid = "Bundles", actions = ["s3:GetObject"], resources = ["${local.internal_arn}/exec/*"] },
      { sid = "Results", actions = ["s3:PutObject"], resources = ["${local.internal_arn}/callbacks/*", "${local.internal_arn}/logs/*"] },
      { sid = "StartBuilds", actions = ["codebuild:StartBuild"], resources = [aws_codebuild_project.worker.arn] },
      # A command needs the document and each target: only instances carrying the operator's
      # tag may be targets (ssm_instance_tag), whatever an order's instance ids or tags say.
      { sid = "SendCommandDocument", actions = ["ssm:SendCommand"], resources = [aws_ssm_document.run_commands.arn] },
      { sid = "SendCommandToTaggedInstances", actions = ["ssm:SendCommand"], resources = [
        "arn:${local.partition}:ec2:${var.region}:${local.account_id}:instance/*",
        "arn:${local.partition}:ssm:${var.region}:${local.account_id}:managed-instance/*",
        ], conditions = [
        { test = "StringEquals", variable = "ssm:resourceTag/${local.ssm_tag_key}", values = [local.ssm_tag_value] },
      ] },
    ])
    orchestrator = concat(local.moves_runs, local.note_failures, local.read_tokens, [
      { sid = "ReadResults", actions = ["s3:GetObject"], resources = ["${local.internal_arn}/callbacks/*"] },
    ])
    deadletters = concat(local.moves_runs, local.read_tokens, [
      { sid = "Requests", actions = ["s3:GetObject"], resources = ["${local.internal_arn}/requests/*"] },
      { sid = "DeadLetters", actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], resources = ["${local.internal_arn}/dead-letters/*"] },
    ])
    sweeper = concat(local.moves_runs, local.read_tokens, [
      { sid = "ReadResults", actions = ["s3:GetObject"], resources = ["${local.internal_arn}/callbacks/*"] },
    ])
  }
}

data "aws_iam_policy_document" "lambda_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each           = local.functions
  name               = "${var.prefix}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.lambda_trust.json
}

data "aws_iam_policy_document" "function" {
  for_each = local.functions

  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function[each.key].arn}:*"]
  }

  # The event source mappings poll with the function's role; the code looks its queues up by name.
  dynamic "statement" {
    for_each = length(each.value.queues) == 0 ? [] : [each.value.queues]
    content {
      sid       = "ConsumeQueues"
      actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
      resources = [for q in statement.value : local.queue_arns[q]]
    }
  }

  dynamic "statement" {
    for_each = local.function_statements[each.key]
    content {
      sid       = statement.value.sid
      actions   = statement.value.actions
      resources = statement.value.resources
      dynamic "condition" {
        for_each = try(statement.value.conditions, [])
        content {
          test     = condition.value.test
          variable = condition.value.variable
          values   = condition.value.values
        }
      }
    }
  }
}

resource "aws_iam_role_policy" "function" {
  for_each = local.functions
  name     = "${var.prefix}-${each.key}"
  role     = aws_iam_role.function[each.key].id
  policy   = data.aws_iam_policy_document.function[each.key].json
}

# The role orders' commands run with, in the worker function and in CodeBuild: the worker
# assumes it with its own role and hands the orders that session, never its own credentials.
# What the orders may do in AWS (a terraform apply) comes from order_policy_arns, attached here
# and to no role of iac-ci's. Whatever those policies allow, this role may not read a run's key
# or bundle, nor anything else of iac-ci's internal bucket: an order reaches nothing beyond its
# own run.
data "aws_iam_policy_document" "order_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.function["worker"].arn, aws_iam_role.codebuild.arn]
    }
  }
}

resource "aws_iam_role" "order" {
  name                 = "${var.prefix}-order"
  assume_role_policy   = data.aws_iam_policy_document.order_trust.json
  max_session_duration = 43200 # the longest codebuild order is 8 hours
}

data "aws_iam_policy_document" "order" {
  statement {
    sid       = "NothingOfIacCi"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [local.internal_arn, "${local.internal_arn}/*"]
  }
  statement {
    sid       = "NoRunKeys"
    effect    = "Deny"
    actions   = ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath", "ssm:PutParameter", "ssm:DeleteParameter"]
    resources = [local.run_key_arn]
  }
  statement {
    sid       = "NoIacCiTables"
    effect    = "Deny"
    actions   = ["dynamodb:*"]
    resources = local.table_arns
  }
}

resource "aws_iam_role_policy" "order" {
  name   = "${var.prefix}-order"
  role   = aws_iam_role.order.id
  policy = data.aws_iam_policy_document.order.json
}

resource "aws_iam_role_policy_attachment" "order" {
  for_each   = toset(var.order_policy_arns)
  role       = aws_iam_role.order.name
  policy_arn = each.value
}
