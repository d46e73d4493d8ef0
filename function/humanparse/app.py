"""HTTP entry: a FastAPI app (wrapped by Mangum in ``handler.py``). Thin: validate, call the engine or S3,
answer JSON. Every error is ``{"error": code, "detail": reason}`` with a 4xx/5xx status."""

from __future__ import annotations

import base64
import json
import threading
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__
from .colormap import full_legend
from .config import Settings
from .engine.types import Parser
from .exceptions import InputError
from .imageio import decode_image
from .jobs import Layout, is_job_id, new_job_id
from .labels import PERSON_PALETTE, hex_color
from .rendering import render_all

# Lambda caps a synchronous response at 6 MB; base64 inflates by 4/3, keep headroom for JSON.
MAX_SYNC_RESPONSE = 5_500_000


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


class UploadRequest(BaseModel):
    content_type: str = Field(description="MIME type the browser will send, e.g. image/jpeg")
    filename: str | None = Field(default=None, max_length=255)
    size: int | None = Field(default=None, ge=0, description="bytes, if known: refused early when too big")


def create_app(settings: Settings, parser: Parser, s3: Any, *, max_concurrent_parses: int = 1) -> FastAPI:
    """``s3``: a boto3 S3 client (tests hand in one bound to moto's server). ``max_concurrent_parses``
    bounds synchronous /parse work; beyond it callers get 503 + Retry-After instead of a pile-up."""
    app = FastAPI(title="humanparse", version=__version__,
                  description="Multi-person human parsing (CIHP parts) — M2FP or the lite tier.")
    layout = Layout(settings.upload_prefix, settings.results_prefix)
    gate = threading.BoundedSemaphore(max(1, max_concurrent_parses))
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_credentials=False,
                           allow_methods=["GET", "POST"], allow_headers=["content-type"])

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.code, "detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": "invalid_request", "detail": json.loads(json.dumps(exc.errors(), default=str))},
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": "http_error", "detail": exc.detail}, status_code=exc.status_code)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        info = parser.info
        return {"status": "ok", "version": __version__, "model": {"kind": info.kind, "id": info.model_id,
                                                                 "notes": info.notes}}

    @app.get("/config")
    def api_config() -> dict[str, Any]:
        """What the page needs to know: limits, accepted types, the legend of all labels."""
        return {"max_upload_bytes": settings.max_upload_bytes, "allowed_content_types": list(settings.allowed_content_types),
                "sync_max_bytes": settings.sync_max_bytes, "labels": full_legend(),
                "supported_labels": list(parser.info.supported_labels), "model": parser.info.kind,
                "person_colors": [hex_color(c) for c in PERSON_PALETTE]}

    @app.post("/uploads", status_code=201)
    def create_upload(req: UploadRequest) -> dict[str, Any]:
        ct = req.content_type.split(";")[0].strip().lower()
        if ct not in settings.allowed_content_types:
            raise ApiError(415, "unsupported_type",
                           f"{ct or 'no type'} is not accepted; send one of {', '.join(settings.allowed_content_types)}")
        if req.size is not None and req.size > settings.max_upload_bytes:
            raise ApiError(413, "too_large", f"{req.size} bytes is over the {settings.max_upload_bytes} byte limit")
        if req.size == 0:
            raise ApiError(400, "empty", "the file is empty")
        job_id = new_job_id()
        key = layout.upload_key(job_id, ct)
        fields: dict[str, str] = {"Content-Type": ct}
        conditions: list[Any] = [{"Content-Type": ct}, ["content-length-range", 1, settings.max_upload_bytes]]
        if req.filename:
            safe = req.filename.encode("ascii", "replace").decode("ascii").replace('"', "")[:200]
            fields["x-amz-meta-filename"] = safe
            conditions.append({"x-amz-meta-filename": safe})
        try:
            post = s3.generate_presigned_post(Bucket=settings.upload_bucket, Key=key, Fields=fields,
                                              Conditions=conditions, ExpiresIn=settings.presign_expires_s)
        except (ClientError, BotoCoreError) as exc:
            raise ApiError(503, "storage_unavailable", f"could not sign the upload: {exc}") from exc
        return {"job_id": job_id, "upload": {"url": post["url"], "fields": post["fields"]},
                "expires_in": settings.presign_expires_s, "max_bytes": settings.max_upload_bytes,
                "status_url": f"/jobs/{job_id}"}

    def _presign_get(key: str) -> str:
        url: str = s3.generate_presigned_url("get_object", Params={"Bucket": settings.output_bucket, "Key": key},
                                             ExpiresIn=settings.result_url_expires_s)
        return url

    @app.get("/jobs/{job_id}")
    def get_job(job_id: str) -> dict[str, Any]:
        if not is_job_id(job_id):
            raise ApiError(400, "bad_job_id", "job ids are 32 lowercase hex characters")
        try:
            try:
                status = json.loads(s3.get_object(Bucket=settings.output_bucket,
                                                  Key=layout.status_key(job_id))["Body"].read())
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                    raise
                listed = s3.list_objects_v2(Bucket=settings.upload_bucket, Prefix=layout.upload_job_prefix(job_id),
                                            MaxKeys=1)
                if not listed.get("KeyCount"):
                    raise ApiError(404, "not_found", "no such job (or its upload has not arrived yet)") from exc
                return {"job_id": job_id, "status": "pending"}
        except (ClientError, BotoCoreError) as exc:
            raise ApiError(503, "storage_unavailable", str(exc)) from exc
        out: dict[str, Any] = {"job_id": job_id, "status": status.get("status")}
        if status.get("status") == "failed":
            out.update(error=status.get("error"), reason=status.get("reason"))
        else:
            out["results"] = {name: _presign_get(layout.result_key(job_id, name)) for name in status.get("files", [])}
            out.update({k: status[k] for k in ("model", "width", "height", "person_count", "elapsed_ms") if k in status})
        return out

    @app.post("/parse", responses={200: {"description": "JSON summary with the label map as a base64 palette "
                                                       "PNG, or a PNG when ?output=color|overlay|label"}})
    async def parse_sync(request: Request, output: str = "json") -> Response:
        if output not in ("json", "color", "overlay", "label"):
            raise ApiError(400, "bad_output", "output must be json, color, overlay or label")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > settings.sync_max_bytes:
            raise ApiError(413, "too_large", f"body over {settings.sync_max_bytes} bytes: use POST /uploads")
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > settings.sync_max_bytes:
                raise ApiError(413, "too_large", f"body over {settings.sync_max_bytes} bytes: use POST /uploads")
        if not gate.acquire(blocking=False):
            raise ApiError(503, "busy", "a parse is already running; retry shortly", {"Retry-After": "2"})
        try:
            from starlette.concurrency import run_in_threadpool

            files = await run_in_threadpool(_parse_bytes, bytes(body))
        finally:
            gate.release()
        if output != "json":
            return Response(files[f"{output}.png"], media_type="image/png")
        doc = json.loads(files["result.json"])
        doc["label_png_base64"] = base64.b64encode(files["label.png"]).decode("ascii")
        payload = json.dumps(doc, ensure_ascii=False).encode("utf-8")
        if len(payload) > MAX_SYNC_RESPONSE:
            raise ApiError(413, "response_too_large", "result too large for a synchronous answer; use POST /uploads")
        return Response(payload, media_type="application/json")

    def _parse_bytes(data: bytes) -> dict[str, bytes]:
        try:
            decoded = decode_image(data, max_megapixels=settings.max_megapixels)
        except InputError as exc:
            raise ApiError(exc.http_status, exc.code, str(exc)) from exc
        result = parser.parse(decoded.rgb)
        return render_all(result, decoded.rgb, alpha=settings.overlay_alpha)

    return app
