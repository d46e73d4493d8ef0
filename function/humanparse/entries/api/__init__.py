"""HTTP entry: a FastAPI app (wrapped by Mangum in ``handler.py``), laid out as full-stack-fastapi-template's
``app/api/``: ``deps.py`` (what routes receive through ``Depends``), ``routes/`` (one ``APIRouter`` per
resource), ``errors.py`` (every error as ``{"error": code, "detail": message}``). Thin: validate, call the use
case or the job store, answer JSON. ``/docs`` and ``/redoc`` are served from the Swagger UI / ReDoc bundles
that ship in the ``fastapi-offline`` package, so they work with no network."""

from __future__ import annotations

import threading
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from humanparse import __version__
from humanparse.config import Settings
from humanparse.engine.types import Parser
from humanparse.entries.api.deps import AuthDep
from humanparse.entries.api.errors import install_error_handlers
from humanparse.entries.api.routes import config, health, jobs, parse, tryon, uploads
from humanparse.jobs.store import JobStore


def create_app(settings: Settings, parser: Parser, s3: Any, *, max_concurrent_parses: int = 1,
               store: JobStore | None = None) -> FastAPI:
    """``s3``: a boto3 S3 client (tests hand in one bound to moto's server). ``max_concurrent_parses``
    bounds synchronous /parse work; beyond it callers get 503 + Retry-After instead of a pile-up. ``store``:
    the job store to share (``build_service``: the S3 trigger's); None builds one over ``s3``."""
    app = FastAPIOffline(title="humanparse", version=__version__, static_url="/docs-assets",
                         description="Multi-person human parsing (CIHP parts) — M2FP or the lite tier.")
    app.state.settings = settings
    app.state.parser = parser
    app.state.store = store or JobStore(s3, settings)
    app.state.parse_gate = threading.BoundedSemaphore(max(1, max_concurrent_parses))
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_credentials=False,
                           allow_methods=["GET", "POST"], allow_headers=["authorization", "content-type"])
    install_error_handlers(app)
    for router in (health.router, config.router, uploads.router, jobs.router, tryon.router, parse.router):
        # /healthz stays open; everything else, /config included, wants the token when one is set
        app.include_router(router, dependencies=[] if router is health.router else [AuthDep])
    return app


__all__ = ["create_app"]
