#!/bin/sh
# Container entrypoint: a handler name (humanparse.handler.*) starts the Lambda runtime client; anything
# else runs as given (e.g. `python local_runner.py serve --host 0.0.0.0 ...` on a non-Lambda host).
case "$1" in
  humanparse.*) exec python -m awslambdaric "$@" ;;
  *) exec "$@" ;;
esac
