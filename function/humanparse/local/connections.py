"""Idle and slow peers on the local runner's two ports (the web/API server and the embedded S3).

Each open connection costs a file descriptor, and the process has one limit for all of them (often 1024):
~1000 idle connections to the API once made the embedded S3 fail real uploads with "Too many open files".
Both servers are the maintained libraries' own (uvicorn, werkzeug's threaded server), set through the hooks
they offer, with the same rules:

* at most ``max_connections`` open per port (a quarter of the open-file limit each: 1024 → 256), so one
  port's peers can never use up the descriptors of the other port, the data folder and the workers;
* a new connection beyond that evicts the connection that has waited longest without sending a request
  (an idle or trickling peer), so idle peers cannot starve real requests; only when every connection is
  busy with a request is the new one answered ``503`` + ``Retry-After`` and closed;
* a silent peer is dropped: uvicorn closes a connection that has not sent its request headers within
  ``header_timeout_s`` and a keep-alive connection idle for ``keep_alive_s``; the API reads a body with an
  idle timeout per piece (``api.limits.read_capped``); werkzeug's socket timeout drops a peer silent for
  ``read_timeout_s`` at any read (request line, headers, body), and it answers one request per connection.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

_BUSY_BODY = b'{"error":"busy","detail":"too many connections are busy; retry in a few seconds."}'
BUSY_ANSWER = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY))


@dataclass(frozen=True)
class ConnectionLimits:
    """What one listening port allows (see the module doc)."""

    max_connections: int
    header_timeout_s: float = 10.0
    keep_alive_s: int = 5
    read_timeout_s: float = 30.0

    @classmethod
    def for_this_process(cls, share: float = 0.25, ceiling: int = 1024) -> ConnectionLimits:
        """``share`` of the open-file limit per port, at least 16, at most ``ceiling``."""
        if sys.platform == "win32":  # no per-process open-file limit to share (handles are not capped so)
            return cls(ceiling)
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        usable = ceiling * 4 if soft == resource.RLIM_INFINITY else soft
        return cls(max(16, min(ceiling, int(usable * share))))


# ------------------------------------------------------------------------------------- uvicorn (web/API)
def bounded_http_protocol(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """uvicorn's own HTTP protocol (httptools, else h11: ``Config(http=...)`` takes a class) with the
    connection cap, eviction of the longest-idle connection and the header timeout."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    base: Any = AutoHTTPProtocol

    class BoundedHTTPProtocol(base):  # type: ignore[misc]
        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self.hp_since = time.monotonic()
            if len(self.connections) > limits.max_connections and not self._evict_idle():
                transport.write(BUSY_ANSWER)
                transport.close()
                return
            self.hp_timer = self.loop.call_later(limits.header_timeout_s, self._hp_header_timeout)

        def connection_lost(self, exc: Exception | None) -> None:
            timer = getattr(self, "hp_timer", None)
            if timer is not None:
                timer.cancel()
            super().connection_lost(exc)

        def hp_idle(self) -> bool:
            """No request in progress: none sent yet (or headers still trickling in), or between keep-alive
            requests."""
            return self.cycle is None or bool(self.cycle.response_complete)

        def _hp_header_timeout(self) -> None:
            if self.cycle is None and not self.transport.is_closing():
                self.transport.close()

        def _evict_idle(self) -> bool:
            idle = [c for c in self.connections if c is not self and getattr(c, "hp_idle", lambda: False)()]
            if not idle:
                return False
            oldest = min(idle, key=lambda c: getattr(c, "hp_since", 0.0))
            oldest.transport.close()
            self.connections.discard(oldest)
            return True

    return BoundedHTTPProtocol


def uvicorn_options(limits: ConnectionLimits) -> dict[str, Any]:
    """The ``uvicorn.Config`` keywords that apply ``limits``."""
    return {"http": bounded_http_protocol(limits), "timeout_keep_alive": limits.keep_alive_s,
            "backlog": min(2048, limits.max_connections * 2)}


# ---------------------------------------------------------------------------------- werkzeug (embedded S3)
def bounded_wsgi_server(host: str, port: int, app: Any, limits: ConnectionLimits) -> Any:
    """werkzeug's threaded server (moto's own) with socketserver's two hooks: a socket timeout on every read
    (``WSGIRequestHandler.timeout``) and ``verify_request`` (the cap; beyond it the connection still waiting
    longest for its request line and headers is shut, or the new one is answered 503)."""
    from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

    waiting: dict[socket.socket, float] = {}  # connections that have not sent a request line yet
    lock = threading.Lock()

    class Handler(WSGIRequestHandler):
        timeout = limits.read_timeout_s

        def parse_request(self) -> bool:
            ok = bool(super().parse_request())  # reads the headers: a peer trickling them stays evictable
            with lock:
                waiting.pop(self.connection, None)
            return ok

    class Server(ThreadedWSGIServer):
        def __init__(self) -> None:
            super().__init__(host, port, app, Handler)
            self.open_connections = 0

        def verify_request(self, request: Any, client_address: Any) -> bool:
            with lock:
                if self.open_connections >= limits.max_connections:
                    if not waiting:
                        _refuse(request)
                        return False
                    oldest = min(waiting, key=waiting.__getitem__)
                    del waiting[oldest]
                    _shut(oldest)  # its thread's read ends; it counts itself out when it finishes
                self.open_connections += 1
                waiting[request] = time.monotonic()
                return True

        def process_request_thread(self, request: Any, client_address: Any) -> None:
            try:
                super().process_request_thread(request, client_address)
            finally:
                with lock:
                    waiting.pop(request, None)
                    self.open_connections -= 1

    return Server()


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _refuse(sock: socket.socket) -> None:
    try:
        sock.setblocking(False)
        sock.send(BUSY_ANSWER)
    except OSError:
        pass
