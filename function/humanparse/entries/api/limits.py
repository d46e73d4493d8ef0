"""Request body caps, in the app (so they hold locally as on Lambda, whose own cap is 6 MB)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.types import Message

from humanparse.exceptions import RequestTimeout, RequestTooLarge

# the largest body read here is the synchronous parse's image (~6 MB): a minute is ample on any link
BODY_TIMEOUT_S = 60.0


async def read_capped(request: Request, limit: int, exc: type[Exception] = RequestTooLarge,
                      timeout_s: float = BODY_TIMEOUT_S) -> bytes:
    """The whole body, refused (``exc``) as soon as it is over ``limit`` bytes — by its declared length
    before reading, and while streaming for chunked bodies — and ``RequestTimeout`` (408) unless all of it
    arrived within ``timeout_s`` (a peer trickling its body would hold its connection busy for ever)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise exc(f"body over {limit} bytes")
    body = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                body.extend(chunk)
                if len(body) > limit:
                    raise exc(f"body over {limit} bytes")
    except TimeoutError as err:
        raise RequestTimeout(f"{len(body)} bytes of the body arrived in {timeout_s:g} s") from err
    return bytes(body)


class JsonCappedRoute(APIRoute):
    """An ``APIRoute`` whose request body is capped at ``Settings.max_json_bytes`` before FastAPI parses it
    (a 200 MB JSON body was once accepted and cost +380 MB RSS)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            if request.method not in ("POST", "PUT", "PATCH"):
                return await original(request)
            body = await read_capped(request, request.app.state.settings.max_json_bytes)
            sent = False

            async def receive() -> Message:
                nonlocal sent
                if sent:
                    return {"type": "http.disconnect"}
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}

            return await original(Request(request.scope, receive))

        return handler
