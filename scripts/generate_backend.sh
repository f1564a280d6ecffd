#!/usr/bin/env bash
# Writes infra/<STACK>/backend.tf: Terraform's S3 backend in the state bucket that
# infra/00-bootstrap made, with the state under <prefix>/<STACK>/terraform.tfstate, locked by a
# lock file beside it (use_lockfile; Terraform 1.10 or later).
#
# Usage: scripts/generate_backend.sh [--bucket NAME] [--region REGION] [--prefix PREFIX]
#                                    [--out FILE] [STACK]
#
#   STACK      02-deploy (the default) or 01-ecr
#   --bucket   the state bucket      (else $IAC_CI_STATE_BUCKET, else 00-bootstrap's output state_bucket)
#   --region   the bucket's region   (else $AWS_REGION, else 00-bootstrap's output region)
#   --prefix   iac-ci's prefix       (else $IAC_CI_PREFIX, else iac-ci)
#   --out      where to write        (else infra/<STACK>/backend.tf)
#
# The bootstrap outputs are read with `terraform output` from infra/00-bootstrap (or
# $IAC_CI_BOOTSTRAP_DIR), so that stack must have been applied from this checkout (its state is
# local). Then:
#   terraform -chdir=infra/<STACK> init
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

die() { echo "generate_backend.sh: $*" >&2; exit 2; }

bucket="${IAC_CI_STATE_BUCKET:-}" region="${AWS_REGION:-}"
prefix="${IAC_CI_PREFIX:-iac-ci}" out="" stack=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bucket) bucket="${2:?--bucket needs a value}"; shift 2 ;;
    --lock-table) die "--lock-table is gone: the state is locked by a lock file in the bucket (use_lockfile)" ;;
    --region) region="${2:?--region needs a value}"; shift 2 ;;
    --prefix) prefix="${2:?--prefix needs a value}"; shift 2 ;;
    --out) out="${2:?--out needs a value}"; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    -*) die "unknown flag $1 (see --help)" ;;
    *) [ -z "$stack" ] || die "one stack at most, got $stack and $1"; stack="$1"; shift ;;
  esac
done
stack="${stack:-02-deploy}"
case "$stack" in
  01-ecr|02-deploy) ;;
  *) die "STACK must be 01-ecr or 02-deploy, not $stack (00-bootstrap keeps its state locally)" ;;
esac

bootstrap_output() {
  command -v terraform >/dev/null 2>&1 || die "$2 is not set and terraform is not installed to read 00-bootstrap's output $1: pass $3"
  local v
  # With no state, terraform prints a warning where the value would be, and succeeds.
  if ! v="$(terraform -chdir="${IAC_CI_BOOTSTRAP_DIR:-$root/infra/00-bootstrap}" output -no-color -raw "$1" 2>/dev/null)" ||
    ! [[ "$v" =~ ^[^[:space:]]+$ ]]; then
    die "$2 is not set and infra/00-bootstrap has no output $1 (apply it first, see docs/deploy.md): pass $3"
  fi
  printf '%s' "$v"
}
[ -n "$bucket" ] || bucket="$(bootstrap_output state_bucket IAC_CI_STATE_BUCKET --bucket)"
[ -n "$region" ] || region="$(bootstrap_output region AWS_REGION --region)"

# Every value goes into HCL between quotes: hold each to its service's own name rules.
[[ "$bucket" =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] || die "state bucket \"$bucket\": not an S3 bucket name"
[[ "$region" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]] || die "region \"$region\": not an AWS region such as us-east-1"
[[ "$prefix" =~ ^[a-z0-9][a-z0-9-]{0,39}$ ]] || die "prefix \"$prefix\": 1 to 40 lower-case letters, digits or '-'"

out="${out:-$root/infra/$stack/backend.tf}"
cat >"$out" <<HCL
# Written by scripts/generate_backend.sh from infra/00-bootstrap; run it again rather than edit.
terraform {
  backend "s3" {
    bucket       = "$bucket"
    key          = "$prefix/$stack/terraform.tfstate"
    region       = "$region"
    use_lockfile = true
    encrypt      = true
  }
}
HCL
echo "wrote $out (state s3://$bucket/$prefix/$stack/terraform.tfstate, locked by its .tflock beside it)"
