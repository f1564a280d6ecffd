#!/usr/bin/env bash
# Smoke test of a deployed iac-ci: posts a signed diamond job (plan, then lint and test side by
# side, then apply) to POST /webhook, polls GET /runs/{run_id} until the run ends, prints its
# orders, and exits 0 only if it succeeded.
#
# Usage: tests/smoke/test_deploy.sh BASE_URL [JOB_FILE]
#
#   BASE_URL   the API's URL (infra/02-deploy's output api_url), or a local `iac-ci serve`
#              (http://127.0.0.1:8080): the same requests work on both.
#   JOB_FILE   a job to post instead of the built-in diamond (JSON or YAML).
#
# Environment:
#   IAC_CI_WEBHOOK_SECRET      required: the secret that signs the body (on AWS, the value of the
#                              webhook_secret_parameter SecureString). It is read here and handed
#                              to python3 through the environment, never on a command line.
#   IAC_CI_SMOKE_TIMEOUT       seconds to wait for the run to end (default 600: CodeBuild takes a
#                              minute or two to start a build)
#   IAC_CI_SMOKE_SIGV4_REGION  sign the GET requests with SigV4 for this region, when the status
#                              routes use AWS_IAM authorization (02-deploy's default); credentials
#                              from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
#                              handed to curl on its standard input.
#   IAC_CI_API_TOKEN           the API token the status routes ask for (iac-ci serve, or
#                              status_authorization NONE with api_token_parameter), handed to
#                              curl on its standard input
#
# Exit codes: 0 the run succeeded, 1 it failed or timed out, 2 wrong use, 3 no answer in time or
# an unexpected answer.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
die() { echo "test_deploy.sh: $1" >&2; exit "${2:-2}"; }

[ $# -ge 1 ] && [ $# -le 2 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
base="${1%/}"
case "$base" in http://*|https://*) ;; *) die "BASE_URL must start with http:// or https://, got $base" ;; esac
[ -n "${IAC_CI_WEBHOOK_SECRET:-}" ] || die "IAC_CI_WEBHOOK_SECRET is not set: export the secret that signs webhook bodies"
command -v curl >/dev/null || die "curl is missing"
command -v python3 >/dev/null || die "python3 is missing: it signs the body and reads the answers"
timeout="${IAC_CI_SMOKE_TIMEOUT:-600}"
[[ "$timeout" =~ ^[0-9]+$ ]] || die "IAC_CI_SMOKE_TIMEOUT=\"$timeout\": want whole seconds"
if [ -n "${IAC_CI_SMOKE_SIGV4_REGION:-}" ] && { [ -z "${AWS_ACCESS_KEY_ID:-}" ] || [ -z "${AWS_SECRET_ACCESS_KEY:-}" ]; }; then
  die "IAC_CI_SMOKE_SIGV4_REGION is set but AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY is not"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
body="$work/job"
if [ $# -eq 2 ]; then
  [ -r "$2" ] || die "cannot read job file $2"
  cp "$2" "$body"
else
  # The diamond of examples/diamond.yaml, without local_path (which only the embedded engine
  # reads): two lambda orders around two codebuild orders.
  cat >"$body" <<'JSON'
{
  "username": "smoke-test",
  "orders": [
    {"order_name": "plan", "execution_target": "lambda", "timeout": 120,
     "env_vars": {"STAGE": "smoke"}, "cmds": ["echo \"planning $STAGE\"", "test -n \"$RUN_ID\""]},
    {"order_name": "lint", "dependencies": ["plan"], "execution_target": "codebuild", "timeout": 600,
     "cmds": ["echo 'lint: every file formatted'"]},
    {"order_name": "test", "dependencies": ["plan"], "execution_target": "codebuild", "timeout": 600,
     "cmds": ["echo 'test: 3 checks passed'"]},
    {"order_name": "apply", "dependencies": ["lint", "test"], "execution_target": "lambda", "timeout": 120,
     "cmds": ["echo \"applying run $RUN_ID (order $ORDER_NUM)\""]}
  ]
}
JSON
fi

# X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>.
signature="$(BODY="$body" python3 -c '
import hashlib, hmac, os, sys
key = os.environ["IAC_CI_WEBHOOK_SECRET"].encode()
with open(os.environ["BODY"], "rb") as f:
    print("sha256=" + hmac.new(key, f.read(), hashlib.sha256).hexdigest())
')"

# curl reads its options from standard input (-K -), so no credential is on a command line.
curl_config() {
  echo 'silent'
  echo 'show-error'
  echo 'max-time = 30'
  if [ -n "${IAC_CI_SMOKE_SIGV4_REGION:-}" ] && [ "$1" = GET ]; then
    echo "aws-sigv4 = \"aws:amz:${IAC_CI_SMOKE_SIGV4_REGION}:execute-api\""
    echo "user = \"${AWS_ACCESS_KEY_ID}:${AWS_SECRET_ACCESS_KEY}\""
    [ -z "${AWS_SESSION_TOKEN:-}" ] || echo "header = \"x-amz-security-token: ${AWS_SESSION_TOKEN}\""
  elif [ -n "${IAC_CI_API_TOKEN:-}" ] && [ "$1" = GET ]; then
    echo "header = \"Authorization: Bearer ${IAC_CI_API_TOKEN}\""
  fi
}

# field FILE EXPR prints a field of a JSON answer (EXPR indexes the decoded value v).
field() { python3 -c 'import json, sys; v = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

echo "POST $base/webhook"
code="$(curl_config POST | curl -K - -o "$work/accepted" -w '%{http_code}' -X POST \
  -H 'Content-Type: application/json' -H "X-Hub-Signature-256: $signature" \
  --data-binary "@$body" "$base/webhook")" || die "POST $base/webhook failed" 3
if [ "$code" != 202 ]; then
  cat "$work/accepted" >&2 || true
  die "POST /webhook answered $code, want 202" 3
fi
run_id="$(field "$work/accepted" 'v["run_id"]')"
echo "accepted: run $run_id (trace $(field "$work/accepted" 'v["trace_id"]'))"

deadline=$(( $(date +%s) + timeout ))
status="" last=""
while :; do
  code="$(curl_config GET | curl -K - -o "$work/run" -w '%{http_code}' "$base/runs/$run_id")" || code=000
  if [ "$code" = 200 ]; then
    status="$(field "$work/run" 'v["status"]')"
    now="$(field "$work/run" '" ".join(o["order_name"] + "=" + o["status"] for o in v["orders"])')"
    if [ "$status $now" != "$last" ]; then
      echo "$(date +%H:%M:%S) $status $now"
      last="$status $now"
    fi
    case "$status" in succeeded|failed|timed_out) break ;; esac
  elif [ "$code" != 000 ]; then
    echo "$(date +%H:%M:%S) GET /runs/$run_id answered $code" >&2
    [ "$code" != 403 ] || echo "  (the status routes need SigV4: set IAC_CI_SMOKE_SIGV4_REGION)" >&2
    [ "$code" != 401 ] || echo "  (the status routes need the API token: set IAC_CI_API_TOKEN)" >&2
  fi
  [ "$(date +%s)" -lt "$deadline" ] || die "run $run_id did not end within ${timeout}s (last status: ${status:-none})" 3
  sleep 2
done

python3 - "$work/run" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
print("%-8s %-10s %-10s %-7s %s" % ("ORDER", "TARGET", "STATUS", "ATTEMPT", "EXIT"))
for o in v["orders"]:
    print("%-8s %-10s %-10s %-7s %s" % (o["order_name"], o["execution_target"], o["status"], o["attempt"],
                                        "" if o["exit_code"] is None else o["exit_code"]))
PY
if [ "$status" != succeeded ]; then
  echo "run $run_id $status" >&2
  exit 1
fi
echo "run $run_id succeeded"
