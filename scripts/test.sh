#!/usr/bin/env bash
# The project's one test command (README and .ci/run call exactly this). Installs what the tests need on a
# fresh machine, then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -r requirements-dev.txt
if ! command -v chromium >/dev/null 2>&1; then
  # Debian's Chromium: a test tool's own browser download cannot work offline
  (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) || echo "warning: chromium not installed; browser tests will be skipped" >&2
fi
python -m ruff check function tests bench local_runner.py
python -m mypy                      # strict, see pyproject.toml
for plat in win32 darwin linux; do python -m mypy --platform "$plat"; done  # as each OS sees the code
case "$(uname -s)" in  # the lint venvs' layout (bin/) and hadolint's wheels: Linux and macOS
  Linux|Darwin) bash scripts/lint_infra.sh ;;  # template and Dockerfile: cfn-lint, sam validate, checkov, hadolint
  *) echo "infrastructure lint skipped on $(uname -s): run it on Linux or macOS" ;;
esac
python -m pytest -q -rs "$@"         # -rs: every skipped test says why
