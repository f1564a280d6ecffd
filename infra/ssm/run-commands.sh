#!/bin/sh
# Runs one attempt of an iac-ci order on this instance; the iac-ci-run-commands SSM document runs
# this script as it is (a test keeps the two the same). It hands `iac-ci worker` the document's
# parameters: presigned URLs and the name of the run key's parameter, never a secret value.
#
# SSM agents from 3.3.2746.0 on pass each parameter as an SSM_<name> environment variable (the
# parameters' interpolationType is ENV_VAR); older agents do not, and instead replace the
# placeholders in the quoted fallbacks below. Every parameter's allowedPattern keeps quotes and
# spaces out, so a value cannot leave the single-quoted string it is put in.
set -eu

if [ -z "${SSM_bundleUrl+x}" ]; then SSM_bundleUrl='{{ bundleUrl }}'; fi
if [ -z "${SSM_callbackUrl+x}" ]; then SSM_callbackUrl='{{ callbackUrl }}'; fi
if [ -z "${SSM_logUrl+x}" ]; then SSM_logUrl='{{ logUrl }}'; fi
if [ -z "${SSM_runKeyParameter+x}" ]; then SSM_runKeyParameter='{{ runKeyParameter }}'; fi

IAC_CI_BUNDLE_URL=$SSM_bundleUrl
IAC_CI_CALLBACK_URL=$SSM_callbackUrl
IAC_CI_LOG_URL=$SSM_logUrl
IAC_CI_RUN_KEY_PARAMETER=$SSM_runKeyParameter
export IAC_CI_BUNDLE_URL IAC_CI_CALLBACK_URL IAC_CI_LOG_URL IAC_CI_RUN_KEY_PARAMETER
# iac-ci keeps its IAC_CI_ variables from the order's commands; the SSM_ copies go here.
unset SSM_bundleUrl SSM_callbackUrl SSM_logUrl SSM_runKeyParameter

# The agent tells the instance's region this way; the worker needs it for Parameter Store.
if [ -z "${AWS_REGION:-}" ] && [ -n "${AWS_SSM_REGION_NAME:-}" ]; then
  AWS_REGION=$AWS_SSM_REGION_NAME
  export AWS_REGION
fi

exec iac-ci worker
