"""Wiring shared by the Lambda module and the local runner: one parser, one S3 client, the HTTP app and
the S3 trigger, and the single ``handler(event, context)`` that dispatches between them by ``EVENT_KINDS``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from humanparse.config import Settings
from humanparse.engine.loader import LoadedParser, load_parser
from humanparse.engine.types import ModelInfo, Parser, ParseResult
from humanparse.entries import kernel_share
from humanparse.entries.events import is_backfill_batch, is_s3_event
from humanparse.entries.trigger import S3Trigger
from humanparse.jobs.cache import ResultCache
from humanparse.jobs.store import JobStore
from humanparse.observability import invocation, logger, model_loaded
from humanparse.runtime import configure_threads
from humanparse.video.job import is_video_message

if TYPE_CHECKING:
    from fastapi import FastAPI
    from mangum import Mangum


@dataclass
class Service:
    """The two entries over one parser, store, cache and job runner. The HTTP side (FastAPI app and its Mangum
    adapter) is built at its first use: the parser function's init, which only ever gets S3 and Step
    Functions events, then never imports the web stack (its init: 1.92 -> 1.65 s, docs/deployment.md)."""

    settings: Settings
    parser: Parser
    trigger: S3Trigger
    build_http: Callable[[], tuple[FastAPI, Mangum]]
    _http: tuple[FastAPI, Mangum] | None = field(default=None, init=False, repr=False)
    _http_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def store(self) -> JobStore:
        return self.trigger.store

    @property
    def http_built(self) -> bool:
        return self._http is not None

    def _http_side(self) -> tuple[FastAPI, Mangum]:
        if self._http is None:
            with self._http_lock:
                if self._http is None:
                    self._http = self.build_http()
        return self._http

    @property
    def app(self) -> FastAPI:
        return self._http_side()[0]

    @property
    def http_handler(self) -> Mangum:
        return self._http_side()[1]

    def s3_handler(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        with invocation(context):
            return self.trigger.handle_event(event)

    def api_handler(self, event: dict[str, Any], context: Any = None) -> Any:
        """An API Gateway / Function URL event through Mangum, as one invocation (log keys, metrics flushed)."""
        with invocation(context):
            return self.http_handler(event, context)

    def handler(self, event: dict[str, Any], context: Any = None) -> Any:
        """The Lambda entry: the first of ``EVENT_KINDS`` that matches the event takes it."""
        kind = next(k for k in EVENT_KINDS if k.matches(event))
        return kind.handle(self, event, context)


@dataclass(frozen=True)
class EventKind:
    """One kind of event the single handler takes: ``matches`` reads the event's shape (as Mangum infers its
    handler), ``handle`` is the Service entry it goes to. A new entry is one more row of ``EVENT_KINDS``."""

    name: str
    matches: Callable[[Any], bool]
    handle: Callable[[Service, dict[str, Any], Any], Any]


EVENT_KINDS: tuple[EventKind, ...] = (
    EventKind("S3 notification", is_s3_event, Service.s3_handler),
    EventKind("backfill batch", is_backfill_batch, Service.s3_handler),  # Step Functions Distributed Map
    EventKind("video message", is_video_message, Service.s3_handler),  # a split video's chunk / join / fail
    # last, and takes the rest: API Gateway / Function URL events, through Mangum (which refuses what it cannot read)
    EventKind("HTTP request", lambda event: True, Service.api_handler),
)


def load_configured_parser(settings: Settings, verdict_s3: Any = None) -> LoadedParser:
    """The Lambda module's model, loaded once: threads from the CPU quota, then the engine's loader (the CLI
    and ``library.load`` call ``engine.loader.load_parser`` the same way, without the sharing). ``verdict_s3``
    (the Lambda entry's S3 client): the fast path's kernel verdict is fetched from the results bucket before the
    load and shared back after a measurement (``kernel_share``; S3 trouble only costs a measurement)."""
    t0 = time.perf_counter()
    threads = configure_threads(settings.threads)
    share = None
    if verdict_s3 is not None and kernel_share.wanted(settings):
        share = kernel_share.fetch(settings, verdict_s3)
        # the engine reads and writes the very file fetched, not a place of its own choosing
        settings = settings.model_copy(update={"kernel_cache_dir": share.path.parent})
    loaded = load_parser(settings, threads=threads)
    if share is not None:
        kernel_share.publish(share, loaded.parser.info.kernels_reason)
    model_loaded(time.perf_counter() - t0)  # reported as ModelLoadTime with the first invocation
    return loaded


class LazyParser:
    """A ``Parser`` that loads its model at first use (``info``, ``parse`` or any engine attribute), once, under
    a lock. The API function is lazy (``Settings.model_load``): a new execution environment answers status
    polls without paying the model load (1.8 s of a 2.7 s cold import, docs/deployment.md: cold start)."""

    def __init__(self, load: Callable[[], LoadedParser]) -> None:
        self._load = load
        self._loaded: LoadedParser | None = None
        self._lock = threading.Lock()

    @property
    def is_loaded(self) -> bool:
        return self._loaded is not None

    @property
    def loaded(self) -> LoadedParser:
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    loaded = self._load()
                    logger.info(loaded.notice, extra={"model": loaded.parser.info.kind,
                                                      "kernels": loaded.parser.info.kernels_reason})
                    self._loaded = loaded
        return self._loaded

    @property
    def info(self) -> ModelInfo:
        return self.loaded.parser.info

    def parse(self, rgb: npt.NDArray[np.uint8], *, deadline: float | None = None) -> ParseResult:
        """rgb: (H, W, 3) uint8 RGB, as ``Parser.parse``."""
        return self.loaded.parser.parse(rgb, deadline=deadline)

    def __getattr__(self, name: str) -> Any:  # the engine's extras (precision, tuning) that callers probe
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.loaded.parser, name)


def build_service(settings: Settings, parser: Parser, s3: Any, *, max_concurrent_parses: int = 1) -> Service:
    """One store, result cache (its fingerprint reads the model folder once) and job runner for both entries;
    the HTTP app over them is built when first used (``Service``)."""
    store = JobStore(s3, settings)
    trigger = S3Trigger(parser, s3, settings, store=store, cache=ResultCache(store, parser, settings))

    def build_http() -> tuple[FastAPI, Mangum]:
        from mangum import Mangum

        from humanparse.entries.api import create_app

        app = create_app(settings, parser, s3, max_concurrent_parses=max_concurrent_parses, store=store)
        app.state.cache, app.state.runner = trigger.cache, trigger.runner
        return app, Mangum(app, lifespan="off")

    return Service(settings, parser, trigger, build_http)
