output "api_url" {
  description = "Base URL of the HTTP API: POST /webhook, POST /ssm, GET /runs/{run_id}, GET /done/{run_id}."
  value       = aws_apigatewayv2_api.http.api_endpoint
}

output "webhook_url" {
  description = "Where callers and GitHub send jobs and events."
  value       = "${aws_apigatewayv2_api.http.api_endpoint}/webhook"
}

output "function_names" {
  value = { for name, f in aws_lambda_function.fn : name => f.function_name }
}

output "queue_urls" {
  value = merge(
    { for name, q in aws_sqs_queue.main : name => q.url },
    { for name, q in aws_sqs_queue.dead_letter : name => q.url },
  )
}

output "tables" {
  value = { orders = aws_dynamodb_table.orders.name, events = aws_dynamodb_table.events.name }
}

output "buckets" {
  value = { internal = aws_s3_bucket.internal.bucket, done = aws_s3_bucket.done.bucket }
}

output "run_key_parameter_prefix" {
  description = "Parameter Store path of the run keys: instances that run ssm orders may read it."
  value       = local.run_key_prefix
}

output "job_secret_parameter_prefix" {
  description = "Parameter Store path under which jobs' ssm_paths may point."
  value       = local.job_secret_parameter_prefix
}

output "codebuild_project" {
  value = aws_codebuild_project.worker.name
}

output "ssm_document" {
  value = aws_ssm_document.run_commands.name
}

output "alarm_topic_arn" {
  description = "SNS topic every alarm notifies: subscribe a pager, a chat hook or a mailbox to it."
  value       = aws_sns_topic.alarms.arn
}

output "dashboard_name" {
  value = aws_cloudwatch_dashboard.iac_ci.dashboard_name
}
