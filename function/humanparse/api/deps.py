"""What routes receive through ``Depends``: the settings, the parser, the job store and the /parse gate,
all set on ``app.state`` once by ``create_app``."""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import Depends, Request

from ..cache import ResultCache
from ..config import Settings
from ..engine.types import Parser
from ..store import JobStore


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
CacheDep = Annotated[ResultCache, Depends(get_cache)]
