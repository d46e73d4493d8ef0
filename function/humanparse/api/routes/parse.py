"""``POST /parse``: one image in (the raw body, or a ``multipart/form-data`` ``file`` field as
``curl -F file=@photo.jpg`` sends it), the result out at once — JSON with the label map as a base64 palette
PNG, or one image with ``?output=color|overlay|label`` (PNG; the overlay a JPEG). Bounded: the body by
``Settings.sync_max_bytes``, the work by the parse gate (503 + Retry-After when busy), the answer by Lambda's
6 MB response cap."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncGenerator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from ...cache import ResultCache, sha256_hex
from ...exceptions import BadOutput, Busy, ImageTooLarge, InputError, InvalidRequest, ResponseTooLarge
from ...observability import record_failure, record_parse
from ...rendering import artifact_named, content_type
from ...usecase import ParseOptions, ParseOutput, parse_image
from ..deps import CacheDep, GateDep, ParserDep, SettingsDep
from ..limits import read_capped

router = APIRouter()
log = logging.getLogger("humanparse.api")

# Lambda caps a synchronous response at 6 MB; base64 inflates by 4/3, keep headroom for JSON.
MAX_SYNC_RESPONSE = 5_500_000
# Multipart framing (boundaries, part headers) on top of the file itself.
MULTIPART_OVERHEAD = 16 * 1024
OUTPUTS = ("json", "color", "overlay", "label")

_BINARY = {"schema": {"type": "string", "format": "binary"}}
REQUEST_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary",
                                                               "description": "the photo (JPEG, PNG, WebP)"}}}},
    "image/jpeg": _BINARY, "image/png": _BINARY, "image/webp": _BINARY, "application/octet-stream": _BINARY}}}


async def _once(body: bytes) -> AsyncGenerator[bytes, None]:
    yield body


async def read_image(request: Request, limit: int) -> bytes:
    """The image bytes of either request form, each capped at ``limit`` bytes of image."""
    ctype = request.headers.get("content-type", "").lower()
    if not ctype.startswith("multipart/form-data"):
        return await read_capped(request, limit, ImageTooLarge)
    raw = await read_capped(request, limit + MULTIPART_OVERHEAD, ImageTooLarge)
    try:
        form = await MultiPartParser(request.headers, _once(raw), max_files=1, max_fields=8).parse()
    except MultiPartException as exc:
        raise InvalidRequest(f"malformed multipart body: {exc.message}") from exc
    part = form.get("file")
    if not isinstance(part, UploadFile):
        raise InvalidRequest("multipart body needs a file field named 'file'")
    data = await part.read()
    await form.close()
    if len(data) > limit:
        raise ImageTooLarge(f"body over {limit} bytes")
    return data


@router.post("/parse", openapi_extra=REQUEST_BODY,
             responses={200: {"description": "JSON summary with the label map as a base64 palette PNG, "
                                             "or the image (PNG; overlay: JPEG) when ?output=color|overlay|label"}})
async def parse_sync(request: Request, settings: SettingsDep, parser: ParserDep, gate: GateDep, cache: CacheDep,
                     output: str = "json") -> Response:
    if output not in OUTPUTS:
        raise BadOutput()
    try:
        data = await read_image(request, settings.sync_max_bytes)
    except ImageTooLarge as exc:
        raise ImageTooLarge(f"{exc}: use POST /uploads") from exc
    digest = sha256_hex(data)
    cached = await run_in_threadpool(_cached_files, cache, digest, output)
    if cached is not None:
        return _answer(output, cached, cached=True)
    if not gate.acquire(blocking=False):
        raise Busy()
    try:
        out = await run_in_threadpool(parse_image, data, parser, ParseOptions.from_settings(settings))
    except InputError as exc:
        record_failure(exc.code)  # the same Failures metric as the S3 trigger's refused uploads
        raise
    finally:
        gate.release()
    record_parse(out)  # log line + ParseTime / ImagesParsed / PersonsFound
    await run_in_threadpool(_keep, cache, digest, out)
    return _answer(output, out.files, cached=False)


def _keep(cache: ResultCache, digest: str, out: ParseOutput) -> None:
    """Fill the cache (the same key the page's uploads and the S3 trigger use): a repeat of these bytes, here or
    from the page, is then a hit. Storage trouble loses the entry, never the answer."""
    result = out.result
    try:
        cache.keep(digest, out.files, {"model": result.model.kind, "width": result.width, "height": result.height,
                                       "person_count": len(result.persons),
                                       "elapsed_ms": round(1000 * out.timings.get("total", 0.0), 1)})
    except (ClientError, BotoCoreError):
        log.warning("could not store the result in the cache", exc_info=True)


def _cached_files(cache: ResultCache, digest: str, output: str) -> dict[str, bytes] | None:
    """The stored result of these bytes (same model and settings) when the cache has one; storage trouble is
    a miss (the parse still answers)."""
    if not cache.enabled:
        return None
    names = ["result.json", "label.png"] if output == "json" else [artifact_named(output)]
    try:
        return cache.read(digest, names)
    except (ClientError, BotoCoreError):
        log.warning("cache look-up failed; parsing instead", exc_info=True)
        return None


def _answer(output: str, files: dict[str, bytes], *, cached: bool) -> Response:
    headers = {"X-Humanparse-Cache": "hit" if cached else "miss"}
    if output != "json":
        name = artifact_named(output)
        if len(files[name]) * 4 // 3 > MAX_SYNC_RESPONSE:  # Lambda sends binary bodies base64-encoded
            raise ResponseTooLarge()
        return Response(files[name], media_type=content_type(name), headers=headers)
    summary = json.loads(files["result.json"])
    summary.pop("job_id", None)  # a cached summary names the job that computed it: another user's
    if cached:
        summary["cached"] = True
    doc = dict(summary, label_png_base64=base64.b64encode(files["label.png"]).decode("ascii"))
    payload = json.dumps(doc, ensure_ascii=False).encode("utf-8")
    if len(payload) > MAX_SYNC_RESPONSE:
        raise ResponseTooLarge()
    return Response(payload, media_type="application/json", headers=headers)
