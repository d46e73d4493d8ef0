"""Every error answer is ``{"error": code, "detail": plain message}``; the code and status come from the
``HumanParseError`` subclass (``exceptions.py``), so HTTP, ``status.json`` and the CLI say the same thing."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from humanparse.exceptions import HumanParseError, InvalidRequest


def error_response(exc: HumanParseError) -> JSONResponse:
    return JSONResponse(exc.to_dict(), status_code=exc.http_status, headers=exc.headers or None)


def _plain(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg", "invalid")))
    return "; ".join(parts) or InvalidRequest.message


def install_error_handlers(app: FastAPI) -> None:
    async def _ours(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HumanParseError)
        return error_response(exc)

    async def _validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(InvalidRequest(_plain(exc)))

    async def _http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return JSONResponse({"error": "http_error", "detail": exc.detail}, status_code=exc.status_code)

    app.add_exception_handler(HumanParseError, _ours)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
