#!/bin/sh
# Container entrypoint: a handler name (humanparse.handler.*) starts the Lambda runtime client; anything
# else runs as given (e.g. `python local_runner.py serve --host 0.0.0.0 ...` on a non-Lambda host).
case "$1" in
  # the handler's name goes to the module too: the S3 entry's init leaves the HTTP stack out (handler.py)
  humanparse.*) export HUMANPARSE_LAMBDA_HANDLER="$1"; exec python -m awslambdaric "$@" ;;
  *) exec "$@" ;;
esac
