"""What routes receive through ``Depends``: the settings, the parser, the job store and the /parse gate,
all set on ``app.state`` once by ``create_app``; and ``require_token``, the bearer-token check every router
but /healthz carries."""

from __future__ import annotations

import hmac
import threading
from typing import Annotated

from fastapi import Depends, Request

from humanparse.config import Settings
from humanparse.engine.types import Parser
from humanparse.exceptions import Unauthorized
from humanparse.jobs.cache import ResultCache
from humanparse.jobs.store import JobStore


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_parser(request: Request) -> Parser:
    parser: Parser = request.app.state.parser
    return parser


def get_store(request: Request) -> JobStore:
    store: JobStore = request.app.state.store
    return store


def get_parse_gate(request: Request) -> threading.BoundedSemaphore:
    gate: threading.BoundedSemaphore = request.app.state.parse_gate
    return gate


def get_cache(request: Request) -> ResultCache:
    """The result cache, built once per app (its fingerprint reads the model folder once)."""
    state = request.app.state
    if getattr(state, "cache", None) is None:
        state.cache = ResultCache(state.store, state.parser, state.settings)
    cache: ResultCache = state.cache
    return cache


SettingsDep = Annotated[Settings, Depends(get_settings)]
ParserDep = Annotated[Parser, Depends(get_parser)]
StoreDep = Annotated[JobStore, Depends(get_store)]
GateDep = Annotated[threading.BoundedSemaphore, Depends(get_parse_gate)]


def require_token(request: Request, settings: SettingsDep) -> None:
    """401 unless ``Authorization: Bearer <Settings.api_token>`` (when a token is set). Compared in constant
    time; the same on Lambda (Mangum) and in the local runner."""
    expected = settings.api_token.get_secret_value() if settings.api_token else ""
    if not expected:
        return
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise Unauthorized()
    want = expected.encode("utf-8")
    sent = presented.strip()
    # ASGI hands header values over decoded as latin-1: their bytes as sent are ``sent.encode("latin-1")``, the
    # UTF-8 of a non-ASCII token (curl, requests); a browser's fetch sends latin-1 bytes, which decode to the token
    as_sent = sent.encode("latin-1", "replace")
    if not (hmac.compare_digest(as_sent, want) | hmac.compare_digest(sent.encode("utf-8"), want)):
        raise Unauthorized("the access token is not valid")


AuthDep = Depends(require_token)


CacheDep = Annotated[ResultCache, Depends(get_cache)]
