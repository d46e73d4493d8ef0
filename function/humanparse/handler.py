"""Lambda entry points (the container's CMD names one of them). The model loads once per container, here:
at import (``HUMANPARSE_MODEL_LOAD=eager``, the parser function) or at the first request that needs it
(``lazy``, the API function) — Mangum's lifespan would run per invocation.

- ``humanparse.handler.handler``: dispatches S3 notifications and HTTP events (one function for both);
- ``humanparse.handler.http_handler`` / ``humanparse.handler.s3_handler``: one entry each. Started as
  ``s3_handler`` (``HUMANPARSE_LAMBDA_HANDLER``, which the image's entrypoint sets), the init skips the HTTP
  stack: FastAPI, Mangum and the app are built only if an HTTP event ever comes.
"""

from __future__ import annotations

from typing import Any

from humanparse.runtime import startup_phase

with startup_phase():  # the init: imports, clients and (eager) the model, then frozen
    import boto3
    from botocore.config import Config

    from humanparse.config import get_settings
    from humanparse.engine.loader import LoadedParser
    from humanparse.entries.service import LazyParser, build_service, load_configured_parser

    settings = get_settings()
    # The kernel verdict's GET runs before the model loads, in the cold start: short timeouts and one retry, so
    # a slow S3 costs at most ~6 s instead of botocore's 60 s x retries (kernel_share: a failure only costs a
    # measurement).
    _verdict_s3 = boto3.client("s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.region,
                               config=Config(connect_timeout=1, read_timeout=2, retries={"total_max_attempts": 2}))

    def _load() -> LoadedParser:
        """The model, loaded as the init loads: in the init phase (``eager``) or by the first request that
        needs it (``lazy``, the API function)."""
        with startup_phase():
            return load_configured_parser(settings, verdict_s3=_verdict_s3)

    parser = LazyParser(_load)
    if settings.model_load == "eager":
        parser.loaded  # noqa: B018 - loads now, in the init phase
    service = build_service(settings, parser,
                            boto3.client("s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.region,
                                         # SigV4 for presigned POSTs too (boto3 may pick the deprecated SigV2)
                                         config=Config(signature_version="s3v4")))
    if settings.video_state_machine_arn:  # long videos fan out through the video state machine (template)
        from humanparse.video.job import StepFunctionsFanOut

        service.trigger.video.fan_out = StepFunctionsFanOut(
            boto3.client("stepfunctions", region_name=settings.region), settings.video_state_machine_arn)
    if settings.lambda_handler != f"{__name__}.s3_handler":
        service.app  # noqa: B018 - the HTTP stack, built now, in the init phase


def http_handler(event: dict[str, Any], context: Any) -> Any:
    return service.api_handler(event, context)


def s3_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return service.s3_handler(event, context)


def handler(event: dict[str, Any], context: Any) -> Any:
    return service.handler(event, context)
