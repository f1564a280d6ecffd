variable "prefix" {
  description = "Prefix of every name iac-ci creates; the functions read it as IAC_CI_PREFIX."
  type        = string
  default     = "iac-ci"
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,39}$", var.prefix))
    error_message = "prefix: 1 to 40 lower-case letters, digits or '-', starting with a letter or digit (bucket names derive from it)."
  }
}

variable "region" {
  description = "AWS region to deploy to."
  type        = string
}

variable "ecr_repository_url" {
  description = "The image repository, 01-ecr's repository_url output."
  type        = string
}

variable "image_tag" {
  description = "Tag of the pushed image to run (every function and the CodeBuild project run the same image)."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag))
    error_message = "image_tag: a Docker tag, 1 to 128 letters, digits, '_', '.' or '-'."
  }
}

variable "webhook_secret_parameter" {
  description = "Parameter Store path of the SecureString that signs webhook bodies (created by hand, so the secret stays out of Terraform's state), e.g. /iac-ci/webhook-secret."
  type        = string
  validation {
    condition     = can(regex("^(/[A-Za-z0-9_.-]+)+$", var.webhook_secret_parameter))
    error_message = "webhook_secret_parameter: a parameter path such as /iac-ci/webhook-secret."
  }
}

variable "github_token_parameter" {
  description = "Parameter Store path of a SecureString GitHub token; when set, POST /webhook also takes GitHub pull_request events. Empty: jobs only."
  type        = string
  default     = ""
}

variable "api_token_parameter" {
  description = "Parameter Store path of a SecureString API token. With status_authorization NONE, GET /runs/..., /done/... ask for Authorization: Bearer <token> or a signed run link (without a token they answer no one); with AWS_IAM, SigV4 guards them."
  type        = string
  default     = ""
  validation {
    condition     = var.api_token_parameter == "" || can(regex("^(/[A-Za-z0-9_.-]+)+$", var.api_token_parameter))
    error_message = "api_token_parameter: empty, or a parameter path such as /iac-ci/api-token."
  }
}

variable "github_api_url" {
  description = "GitHub REST API base URL, for GitHub Enterprise (https://HOST/api/v3/). Empty: api.github.com."
  type        = string
  default     = ""
}

variable "git_base_url" {
  description = "Where intake clones git_repo from, for GitHub Enterprise (https://HOST). Empty: https://github.com."
  type        = string
  default     = ""
}

variable "bucket_suffix" {
  description = "Suffix of the bucket names, which are global: <prefix>-internal-<suffix> and <prefix>-done-<suffix>. Empty: the account id."
  type        = string
  default     = ""
}

variable "job_secret_parameter_prefix" {
  description = "Parameter Store path under which jobs' ssm_paths and git_token_location may point: intake can read nothing else."
  type        = string
  default     = ""
}

variable "job_secret_name_prefix" {
  description = "Secrets Manager name prefix under which jobs' secret_manager_paths may point. Empty: <prefix>/."
  type        = string
  default     = ""
}

variable "code_bucket_arns" {
  description = "ARNs of the buckets that jobs' s3_location code may come from; intake reads their objects."
  type        = list(string)
  default     = []
}

variable "order_policy_arns" {
  description = "Managed policies attached to the order role, which orders' commands run with (lambda and codebuild orders): what they may do in AWS, e.g. apply your Terraform. Never attached to iac-ci's own roles; whatever they allow, the order role cannot read iac-ci's bucket, tables or run keys."
  type        = list(string)
  default     = []
}

variable "status_authorization" {
  description = "Authorization of the status routes (GET /runs/..., GET /done/..., GET /healthz): AWS_IAM (callers sign with SigV4) or NONE (public)."
  type        = string
  default     = "AWS_IAM"
  validation {
    condition     = contains(["AWS_IAM", "NONE"], var.status_authorization)
    error_message = "status_authorization: AWS_IAM or NONE."
  }
}

variable "lambda_architecture" {
  description = "Architecture of the image: x86_64 or arm64 (build the image for the same one)."
  type        = string
  default     = "x86_64"
}

variable "worker_memory_mb" {
  description = "Memory of the worker function, which runs lambda orders' commands."
  type        = number
  default     = 2048
}

variable "worker_max_concurrency" {
  description = "How many lambda orders run at once at most (2 to 1000)."
  type        = number
  default     = 20
}

variable "reserved_concurrency" {
  description = "Reserved concurrency per function, by name (webhook, intake, worker, launcher, orchestrator, deadletters, sweeper): what it may use at most, and is guaranteed. A function left out shares the account's unreserved pool. The worker's must be at least worker_max_concurrency."
  type        = map(number)
  default     = {}
  validation {
    condition     = alltrue([for name, n in var.reserved_concurrency : contains(["webhook", "intake", "worker", "launcher", "orchestrator", "deadletters", "sweeper"], name) && n >= 0 && n == floor(n)])
    error_message = "reserved_concurrency: keys are function names (webhook, intake, worker, launcher, orchestrator, deadletters, sweeper), values whole numbers from 0 (the function is stopped)."
  }
}

variable "ssm_instance_tag" {
  description = "The tag an instance must carry for the launcher to send it an ssm order's command, as key=value. Instances without it are out of iac-ci's reach."
  type        = string
  default     = "iac-ci:allowed=true"
  validation {
    condition     = can(regex("^[^=]+=.+$", var.ssm_instance_tag))
    error_message = "ssm_instance_tag: key=value, such as iac-ci:allowed=true."
  }
}

variable "codebuild_compute_type" {
  description = "Compute type of the CodeBuild project that runs codebuild orders."
  type        = string
  default     = "BUILD_GENERAL1_SMALL"
}

variable "api_throttle_rate" {
  description = "Steady requests per second the HTTP API accepts."
  type        = number
  default     = 50
}

variable "api_throttle_burst" {
  description = "Burst of requests the HTTP API accepts."
  type        = number
  default     = 100
}

variable "log_retention_days" {
  description = "How long CloudWatch keeps the functions', the API's and CodeBuild's logs."
  type        = number
  default     = 30
}

variable "log_level" {
  description = "Log level of the functions: debug, info, warn or error."
  type        = string
  default     = "info"
}

variable "object_retention_days" {
  description = "Days after which objects in the internal bucket (requests, bundles, results, logs) expire; 0 keeps them."
  type        = number
  default     = 90
}

variable "done_retention_days" {
  description = "Days after which a finished run's object in the done bucket (what GET /done/{run_id} answers) expires; 0 keeps them."
  type        = number
  default     = 365
}

variable "deletion_protection" {
  description = "Protect the tables from deletion."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
