"""One local origin for the page and the API: ``/api/*`` is the same ASGI app the Lambda runs, ``/config.js``
tells the page where the API is, everything else is the static page."""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from humanparse.entries.api.routes.health import healthz


def page_config_js(api_base: str, auth: bool = False) -> str:
    """``auth``: the API wants a bearer token, so the page shows its token field from the start."""
    return "window.HUMANPARSE_CONFIG = " + json.dumps({"apiBase": api_base, "auth": auth}) + ";\n"


# The page's types, fixed: the static files take theirs from `mimetypes`, which on Windows reads the registry, where
# an editor may have mapped .js to text/plain (browsers then refuse the page's ES modules: a blank page).
PAGE_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".html": "text/html",
              ".svg": "image/svg+xml", ".json": "application/json"}


def build_site(api_app: FastAPI, frontend_dir: Path, *, api_base: str = "/api", auth: bool = False) -> FastAPI:
    for suffix, ctype in PAGE_TYPES.items():
        mimetypes.add_type(ctype, suffix)
    site = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    config_js = page_config_js(api_base, auth)

    @site.get("/config.js", include_in_schema=False)
    def _config() -> Response:
        return Response(config_js, media_type="application/javascript", headers={"Cache-Control": "no-store"})

    @site.get("/healthz", include_in_schema=False)
    def _health() -> dict[str, Any]:  # where load balancers and people look first; the same answer as /api/healthz
        return healthz(api_app.state.parser)

    site.mount("/api", api_app)
    site.mount("/", StaticFiles(directory=str(frontend_dir), html=True), name="page")
    return site
