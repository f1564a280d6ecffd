#!/usr/bin/env bash
# Writes infra/<STACK>/terraform.tfvars from environment variables, so that a pipeline (or a
# person) configures a deployment in one place. A missing required variable fails, naming it.
#
# Usage: scripts/generate_tfvars.sh [--out FILE] [STACK]      STACK: 02-deploy (default), 01-ecr, 00-bootstrap
#
# Every stack:
#   AWS_REGION                       required: the region to deploy to
#   IAC_CI_PREFIX                    prefix of every name (default iac-ci)
# 00-bootstrap:
#   IAC_CI_STATE_BUCKET              name of the state bucket (default <prefix>-tfstate-<account id>)
# 01-ecr:
#   IAC_CI_KEEP_IMAGES               images the repository keeps (default 30)
# 02-deploy:
#   IAC_CI_ECR_REPOSITORY_URL        required: 01-ecr's output repository_url
#   IAC_CI_IMAGE_TAG                 required: the tag of the pushed image
#   IAC_CI_WEBHOOK_SECRET_PARAMETER  required: Parameter Store path of the webhook secret (a SecureString)
#   IAC_CI_GITHUB_TOKEN_PARAMETER    Parameter Store path of a GitHub token: take GitHub pull_request events
#   IAC_CI_API_TOKEN_PARAMETER       Parameter Store path of the API token the read routes ask for
#   IAC_CI_GITHUB_API_URL            GitHub Enterprise API URL (https://HOST/api/v3/)
#   IAC_CI_GIT_BASE_URL              GitHub Enterprise URL that git_repo is cloned from (https://HOST)
#   IAC_CI_BUCKET_SUFFIX             suffix of the bucket names (default the account id)
#   IAC_CI_STATUS_AUTHORIZATION      AWS_IAM (default) or NONE: who may read GET /runs/..., /done/...
#   IAC_CI_LAMBDA_ARCHITECTURE       x86_64 (default) or arm64, as the image was built
#   IAC_CI_WORKER_MEMORY_MB          memory of the worker function (default 2048)
#   IAC_CI_WORKER_MAX_CONCURRENCY    lambda orders at once at most (default 20)
#   IAC_CI_LOG_RETENTION_DAYS        days CloudWatch keeps logs (default 30)
#   IAC_CI_ORDER_POLICY_ARNS         comma-separated ARNs of policies for the roles orders run with
#   IAC_CI_CODE_BUCKET_ARNS          comma-separated ARNs of buckets s3_location code may come from
#   IAC_CI_JOB_SECRET_PARAMETER_PREFIX  Parameter Store path jobs' ssm_paths may point under (default /<prefix>/secrets)
#   IAC_CI_JOB_SECRET_NAME_PREFIX    Secrets Manager name prefix of jobs' secret_manager_paths (default <prefix>/)
#   IAC_CI_CODEBUILD_COMPUTE_TYPE    compute type of codebuild orders (default BUILD_GENERAL1_SMALL)
#   IAC_CI_API_THROTTLE_RATE, IAC_CI_API_THROTTLE_BURST   the HTTP API's throttling (default 50, 100)
#   IAC_CI_LOG_LEVEL                 debug, info (default), warn or error
#   IAC_CI_OBJECT_RETENTION_DAYS     days the internal bucket keeps objects (default 90, 0 keeps them)
#   IAC_CI_DONE_RETENTION_DAYS       days the done bucket keeps finished runs (default 365, 0 keeps them)
#   IAC_CI_SSM_INSTANCE_TAG          key=value an instance must carry to take ssm orders (default iac-ci:allowed=true)
#   IAC_CI_ALARM_EMAIL               e-mail address subscribed to the alarm topic
#   IAC_CI_ALARM_QUEUE_AGE_SECONDS, IAC_CI_ALARM_QUEUE_BACKLOG, IAC_CI_ALARM_DEAD_LETTER_AGE_SECONDS,
#   IAC_CI_ALARM_FUNCTION_ERRORS, IAC_CI_ALARM_FUNCTION_THROTTLES, IAC_CI_ALARM_EVALUATION_MINUTES,
#   IAC_CI_ALARM_SWEEPER_MISSED_MINUTES   alarm thresholds (see infra/02-deploy/alarms.tf)
# Set by hand in terraform.tfvars (maps and booleans): tags, reserved_concurrency,
# deletion_protection.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

die() { echo "generate_tfvars.sh: $*" >&2; exit 2; }

out="" stack=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="${2:?--out needs a value}"; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    -*) die "unknown flag $1 (see --help)" ;;
    *) [ -z "$stack" ] || die "one stack at most, got $stack and $1"; stack="$1"; shift ;;
  esac
done
stack="${stack:-02-deploy}"
case "$stack" in
  00-bootstrap|01-ecr|02-deploy) ;;
  *) die "STACK must be 00-bootstrap, 01-ecr or 02-deploy, not $stack" ;;
esac

# Each line: variable, Terraform name, kind (string, number or list), required (yes/no).
spec="AWS_REGION region string yes
IAC_CI_PREFIX prefix string no"
case "$stack" in
  00-bootstrap) spec="$spec
IAC_CI_STATE_BUCKET state_bucket_name string no" ;;
  01-ecr) spec="$spec
IAC_CI_KEEP_IMAGES keep_images number no" ;;
  02-deploy) spec="$spec
IAC_CI_ECR_REPOSITORY_URL ecr_repository_url string yes
IAC_CI_IMAGE_TAG image_tag string yes
IAC_CI_WEBHOOK_SECRET_PARAMETER webhook_secret_parameter string yes
IAC_CI_GITHUB_TOKEN_PARAMETER github_token_parameter string no
IAC_CI_API_TOKEN_PARAMETER api_token_parameter string no
IAC_CI_GITHUB_API_URL github_api_url string no
IAC_CI_GIT_BASE_URL git_base_url string no
IAC_CI_BUCKET_SUFFIX bucket_suffix string no
IAC_CI_STATUS_AUTHORIZATION status_authorization string no
IAC_CI_LAMBDA_ARCHITECTURE lambda_architecture string no
IAC_CI_WORKER_MEMORY_MB worker_memory_mb number no
IAC_CI_WORKER_MAX_CONCURRENCY worker_max_concurrency number no
IAC_CI_LOG_RETENTION_DAYS log_retention_days number no
IAC_CI_ORDER_POLICY_ARNS order_policy_arns list no
IAC_CI_CODE_BUCKET_ARNS code_bucket_arns list no
IAC_CI_JOB_SECRET_PARAMETER_PREFIX job_secret_parameter_prefix string no
IAC_CI_JOB_SECRET_NAME_PREFIX job_secret_name_prefix string no
IAC_CI_CODEBUILD_COMPUTE_TYPE codebuild_compute_type string no
IAC_CI_API_THROTTLE_RATE api_throttle_rate number no
IAC_CI_API_THROTTLE_BURST api_throttle_burst number no
IAC_CI_LOG_LEVEL log_level string no
IAC_CI_OBJECT_RETENTION_DAYS object_retention_days number no
IAC_CI_DONE_RETENTION_DAYS done_retention_days number no
IAC_CI_SSM_INSTANCE_TAG ssm_instance_tag string no
IAC_CI_ALARM_EMAIL alarm_email string no
IAC_CI_ALARM_QUEUE_AGE_SECONDS alarm_queue_age_seconds number no
IAC_CI_ALARM_QUEUE_BACKLOG alarm_queue_backlog number no
IAC_CI_ALARM_DEAD_LETTER_AGE_SECONDS alarm_dead_letter_age_seconds number no
IAC_CI_ALARM_FUNCTION_ERRORS alarm_function_errors number no
IAC_CI_ALARM_FUNCTION_THROTTLES alarm_function_throttles number no
IAC_CI_ALARM_EVALUATION_MINUTES alarm_evaluation_minutes number no
IAC_CI_ALARM_SWEEPER_MISSED_MINUTES alarm_sweeper_missed_minutes number no" ;;
esac

# quote makes an HCL string: backslashes and quotes escaped, template markers doubled.
quote() {
  local s="$1"
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  s="${s//\$\{/\$\$\{}"
  s="${s//%\{/%%\{}"
  printf '"%s"' "$s"
}

missing=() problems=() names=() values=()
while read -r env name kind required; do
  value="${!env:-}"
  if [ -z "$value" ]; then
    [ "$required" = yes ] && missing+=("$env")
    continue
  fi
  case "$value" in *$'\n'*) problems+=("$env: must be one line"); continue ;; esac
  case "$kind" in
    string) names+=("$name"); values+=("$(quote "$value")") ;;
    number)
      [[ "$value" =~ ^[0-9]+$ ]] || { problems+=("$env=\"$value\": want a whole number"); continue; }
      names+=("$name"); values+=("$value") ;;
    list)
      items=()
      IFS=',' read -r -a parts <<<"$value"
      for p in "${parts[@]}"; do
        p="${p#"${p%%[![:space:]]*}"}"; p="${p%"${p##*[![:space:]]}"}"
        [ -n "$p" ] && items+=("$(quote "$p")")
      done
      names+=("$name"); values+=("[$(IFS=','; echo "${items[*]}" | sed 's/","/", "/g')]") ;;
  esac
done <<<"$spec"

if [ ${#missing[@]} -gt 0 ]; then
  for m in "${missing[@]}"; do echo "generate_tfvars.sh: $m is not set: it is required for $stack (see --help)" >&2; done
  exit 2
fi
if [ ${#problems[@]} -gt 0 ]; then
  for p in "${problems[@]}"; do echo "generate_tfvars.sh: $p" >&2; done
  exit 2
fi

out="${out:-$root/infra/$stack/terraform.tfvars}"
width=0
for n in "${names[@]}"; do [ ${#n} -le $width ] || width=${#n}; done
{
  echo "# Written by scripts/generate_tfvars.sh from the environment; run it again rather than edit."
  for i in "${!names[@]}"; do printf '%-*s = %s\n' "$width" "${names[$i]}" "${values[$i]}"; done
} >"$out"
echo "wrote $out"
