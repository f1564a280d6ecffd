# The Lambda functions: one image, `iac-ci lambda`, told which function it is by IAC_CI_FUNCTION
# (lambdafn.Names). Each function that consumes queues gets one event source mapping per queue,
# with ReportBatchItemFailures, so a batch answer lists only the records to retry.
#
# Timeouts: the webhook answers within API Gateway's 30 s; intake clones and seals (minutes at
# most); the worker runs a lambda order, whose timeout is at most 900 s, Lambda's own limit; the
# rest make a few conditional writes per record. Batch sizes: one record per intake or worker
# invocation (each may take minutes, and records of a batch run one after another), ten for the
# quick ones.
locals {
  functions = {
    webhook      = { timeout = 29, memory = 512, storage = 512, batch_size = 0, max_concurrency = 0, queues = [] }
    intake       = { timeout = 300, memory = 1024, storage = 2048, batch_size = 1, max_concurrency = 0, queues = ["intake"] }
    worker       = { timeout = 900, memory = var.worker_memory_mb, storage = 4096, batch_size = 1, max_concurrency = var.worker_max_concurrency, queues = ["orders-lambda"] }
    launcher     = { timeout = 60, memory = 256, storage = 512, batch_size = 10, max_concurrency = 0, queues = ["orders-codebuild", "orders-ssm"] }
    orchestrator = { timeout = 60, memory = 512, storage = 512, batch_size = 10, max_concurrency = 0, queues = ["results"] }
    deadletters  = { timeout = 60, memory = 512, storage = 512, batch_size = 10, max_concurrency = 0, queues = ["intake-dlq", "orders-lambda-dlq", "orders-codebuild-dlq", "orders-ssm-dlq", "results-dlq"] }
    sweeper      = { timeout = 120, memory = 512, storage = 512, batch_size = 0, max_concurrency = 0, queues = [] }
  }

  event_sources = merge([
    for fn, f in local.functions : {
      for q in f.queues : "${fn}:${q}" => { function = fn, queue = q, batch_size = f.batch_size, max_concurrency = f.max_concurrency }
    }
  ]...)

  # What every function reads (awsbackend.FromEnv and `iac-ci lambda`). HOME: git, run at
  # intake and by orders, wants a writable home, and /tmp is the only writable place.
  function_env = {
    IAC_CI_PREFIX            = var.prefix
    IAC_CI_QUEUE_PREFIX      = local.queue_prefix
    IAC_CI_ORDERS_TABLE      = aws_dynamodb_table.orders.name
    IAC_CI_EVENTS_TABLE      = aws_dynamodb_table.events.name
    IAC_CI_INTERNAL_BUCKET   = aws_s3_bucket.internal.bucket
    IAC_CI_DONE_BUCKET       = aws_s3_bucket.done.bucket
    IAC_CI_RUN_KEY_PREFIX    = local.run_key_prefix
    IAC_CI_CODEBUILD_PROJECT = local.codebuild_project
    IAC_CI_SSM_DOCUMENT      = local.ssm_document
    IAC_CI_PUBLIC_URL        = aws_apigatewayv2_api.http.api_endpoint
    IAC_CI_LOG_LEVEL         = var.log_level
    HOME                     = "/tmp"
  }
  # Only the locations of secrets travel here, never their values. Every function reads the
  # API token (it signs the status links of comments) and the GitHub token (every function that
  # moves a run keeps its pull request's comment).
  optional_env = merge(
    var.git_base_url == "" ? {} : { IAC_CI_GIT_BASE_URL = var.git_base_url },
    var.api_token_parameter == "" ? {} : { IAC_CI_API_TOKEN_LOCATION = "aws:::ssm:${var.api_token_parameter}" },
    var.github_token_parameter == "" ? {} : { IAC_CI_GITHUB_TOKEN_LOCATION = "aws:::ssm:${var.github_token_parameter}" },
    var.github_api_url == "" ? {} : { IAC_CI_GITHUB_API_URL = var.github_api_url },
  )
  webhook_env = {
    IAC_CI_WEBHOOK_SECRET_LOCATION = "aws:::ssm:${var.webhook_secret_parameter}"
    # Without an API token, the read routes answer only behind IAM.
    IAC_CI_STATUS_AUTHORIZATION = var.status_authorization
  }
  # The worker runs lambda orders with the order role's credentials, never its own.
  worker_env = { IAC_CI_ORDER_ROLE_ARN = aws_iam_role.order.arn }
}

resource "aws_cloudwatch_log_group" "function" {
  for_each          = local.functions
  name              = "/aws/lambda/${var.prefix}-${each.key}"
  retention_in_days = var.log_retention_days
}

resource "aws_lambda_function" "fn" {
  for_each      = local.functions
  function_name = "${var.prefix}-${each.key}"
  description   = "iac-ci ${each.key}"
  role          = aws_iam_role.function[each.key].arn
  package_type  = "Image"
  image_uri     = local.image_uri
  architectures = [var.lambda_architecture]
  timeout       = each.value.timeout
  memory_size   = each.value.memory
  # -1: no reservation, the account's unreserved pool.
  reserved_concurrent_executions = lookup(var.reserved_concurrency, each.key, -1)

  image_config {
    command = ["lambda"]
  }
  ephemeral_storage {
    size = each.value.storage
  }
  environment {
    variables = merge(local.function_env, local.optional_env, { IAC_CI_FUNCTION = each.key },
    each.key == "webhook" ? local.webhook_env : {}, each.key == "worker" ? local.worker_env : {})
  }

  depends_on = [aws_cloudwatch_log_group.function, aws_iam_role_policy.function]

  lifecycle {
    precondition {
      condition     = each.key != "worker" || lookup(var.reserved_concurrency, "worker", -1) < 0 || lookup(var.reserved_concurrency, "worker", -1) >= var.worker_max_concurrency
      error_message = "reserved_concurrency.worker is below worker_max_concurrency: the queue would hand the worker more orders than it may run, and they would be throttled."
    }
  }
}

resource "aws_lambda_event_source_mapping" "queue" {
  for_each                = local.event_sources
  event_source_arn        = local.queue_arns[each.value.queue]
  function_name           = aws_lambda_function.fn[each.value.function].arn
  batch_size              = each.value.batch_size
  function_response_types = ["ReportBatchItemFailures"]

  dynamic "scaling_config" {
    for_each = each.value.max_concurrency > 0 ? [each.value.max_concurrency] : []
    content {
      maximum_concurrency = scaling_config.value
    }
  }
}
