"""``POST /parse``: one image in (the raw body, or a ``multipart/form-data`` ``file`` field as
``curl -F file=@photo.jpg`` sends it), the result out at once — JSON with the label map as a base64 palette
PNG, or one image with ``?output=color|overlay|label`` (PNG; the overlay a JPEG); the try-on outputs with
``?output=tryon&category=upper_body&person=1&image=mask|agnostic|parse_agnostic`` (PNG), ``?output=keypoints``
(OpenPose JSON), ``?output=atr|lip`` (palette PNG); ``category`` with ``output=json`` adds the three try-on
images base64-encoded. A try-on image of a photo already parsed (the result cache) is drawn from the stored parse
and the photo's bytes, without a second parse. Bounded: the body by
``Settings.sync_max_bytes``, the work by the parse gate (503 + Retry-After when busy), the answer by Lambda's
6 MB response cap."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncGenerator
from typing import Annotated, Any

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from humanparse.config import Settings
from humanparse.engine.types import Parser
from humanparse.entries.api.deps import CacheDep, GateDep, ParserDep, SettingsDep
from humanparse.entries.api.limits import read_capped
from humanparse.exceptions import (
    BadOutput,
    Busy,
    ImageTooLarge,
    InputError,
    InvalidRequest,
    ResponseTooLarge,
    UnknownCategory,
    UnknownPerson,
)
from humanparse.jobs.cache import ResultCache, sha256_hex
from humanparse.observability import record_failure, record_parse
from humanparse.pipeline.rendering import artifact_named, content_type
from humanparse.pipeline.tryon import CATEGORIES
from humanparse.pipeline.tryon_files import (
    KEYPOINTS_FILE,
    STORED_PARSE,
    TRYON_IMAGES,
    extra_files,
    job_extras,
    outputs_of,
    pose_estimator,
    tryon_name,
)
from humanparse.pipeline.usecase import ParseOptions, ParseOutput, parse_image

router = APIRouter()
log = logging.getLogger("humanparse.entries.api")

# Lambda caps a synchronous response at 6 MB; base64 inflates by 4/3, keep headroom for JSON.
MAX_SYNC_RESPONSE = 5_500_000
# Multipart framing (boundaries, part headers) on top of the file itself.
MULTIPART_OVERHEAD = 16 * 1024
OUTPUTS = ("json", "color", "overlay", "label", "tryon", "keypoints", "atr", "lip")

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
                                             "or the image (PNG; overlay: JPEG) when ?output=color|overlay|label, "
                                             "a try-on image when ?output=tryon (PNG), OpenPose JSON when "
                                             "?output=keypoints, an ATR / LIP palette PNG when ?output=atr|lip"}})
async def parse_sync(request: Request, settings: SettingsDep, parser: ParserDep, gate: GateDep, cache: CacheDep,
                     output: Annotated[str, Query(description=", ".join(OUTPUTS))] = "json",
                     category: Annotated[str | None, Query(description="try-on category: upper_body, lower_body, "
                                                           "dresses, full_body (output=tryon, or json)")] = None,
                     person: Annotated[int, Query(description="try-on person, 1 = the strongest")] = 1,
                     image: Annotated[str, Query(description="try-on image: " + ", ".join(TRYON_IMAGES))] = "mask",
                     ) -> Response:
    names = wanted(output, category, person, image)
    try:
        data = await read_image(request, settings.sync_max_bytes)
    except ImageTooLarge as exc:
        raise ImageTooLarge(f"{exc}: use POST /uploads") from exc
    digest = sha256_hex(data)
    cached = await run_in_threadpool(_cached_files, cache, digest, names)
    if cached is None and category is not None:
        cached = await run_in_threadpool(_from_stored_parse, cache, digest, data, category, person, settings,
                                         [n.split(".")[3] for n in names if n.startswith("tryon.")])
    if cached is not None:
        return _answer(output, cached, cached=True, names=names)
    if not gate.acquire(blocking=False):
        raise Busy()
    try:
        out = await run_in_threadpool(parse_image, data, parser, ParseOptions.from_settings(settings))
        # inside the gate: beside M2FP the keypoints run a pose network
        files = await run_in_threadpool(_job_files, out, parser, settings)
    except InputError as exc:
        record_failure(exc.code)  # the same Failures metric as the S3 trigger's refused uploads
        raise
    finally:
        gate.release()
    record_parse(out)  # log line + ParseTime / ImagesParsed / PersonsFound
    await run_in_threadpool(_keep, cache, digest, out, files)
    if category is not None and names[-1] not in files:  # raises no_person, unknown_person, nothing_to_mask
        files = {**files, **await run_in_threadpool(_tryon_files, out, parser, settings, category, person)}
    return _answer(output, files, cached=False, names=names)


def wanted(output: str, category: str | None, person: int, image: str) -> list[str]:
    """The files the answer is made of (the last one the try-on image, when one is asked); a request that names
    an unknown output, category or image, or a person below 1, is refused before the body is read."""
    if output not in OUTPUTS:
        raise BadOutput()
    if output == "tryon" and category is None:
        raise UnknownCategory(f"output=tryon needs category= one of {', '.join(CATEGORIES)}")
    if category is not None and output not in ("json", "tryon"):
        raise InvalidRequest("category= goes with output=tryon or output=json")
    if category is not None and category not in CATEGORIES:
        raise UnknownCategory(f"unknown try-on category {category!r}; choose one of {', '.join(CATEGORIES)}")
    if image not in TRYON_IMAGES:
        raise InvalidRequest(f"image must be one of {', '.join(TRYON_IMAGES)}")
    if person < 1:
        raise UnknownPerson(f"person {person} is not in any image; persons count from 1")
    if output == "json":
        base = ["result.json", "label.png", KEYPOINTS_FILE]
        return base + [tryon_name(category, person, i) for i in TRYON_IMAGES] if category else base
    if output == "tryon":
        assert category is not None
        return [tryon_name(category, person, image)]
    return [KEYPOINTS_FILE if output == "keypoints" else f"{output}.png" if output in ("atr", "lip")
            else artifact_named(output)]


def _parsed(out: ParseOutput, parser: Parser, settings: Settings) -> Any:
    from humanparse.entries.library import Parsed

    # a model without a pose head (M2FP) gets the lite tier's pose network for the keypoints
    poser = None if parser.info.kind == "lite" else pose_estimator(settings)
    return Parsed.from_output(out, alpha=settings.overlay_alpha, poser=poser)


def _job_files(out: ParseOutput, parser: Parser, settings: Settings) -> dict[str, bytes]:
    """The files a job of these bytes stores (the cache entry must hold the same set)."""
    return {**out.files, **extra_files(_parsed(out, parser, settings), job_extras(settings))}


def _tryon_files(out: ParseOutput, parser: Parser, settings: Settings, category: str,
                 person: int) -> dict[str, bytes]:
    t = _parsed(out, parser, settings).tryon(category, person)
    return {tryon_name(category, person, name.removesuffix(".png")): body for name, body in t.files().items()}


def _from_stored_parse(cache: ResultCache, digest: str, data: bytes, category: str, person: int,
                       settings: Settings, images: list[str]) -> dict[str, bytes] | None:
    """The try-on ``images`` from the cached parse of these bytes (no parse, no gate), with the cached JSON files;
    None when the cache has no parse of them."""
    stored = _cached_files(cache, digest, STORED_PARSE)
    if stored is None:
        return None
    drawn = outputs_of(data, stored, category, person, options=ParseOptions.from_settings(settings), images=images)
    return None if drawn is None else {**stored, **drawn}


def _keep(cache: ResultCache, digest: str, out: ParseOutput, files: dict[str, bytes]) -> None:
    """Fill the cache (the same key the page's uploads and the S3 trigger use): a repeat of these bytes, here or
    from the page, is then a hit. Storage trouble loses the entry, never the answer."""
    result = out.result
    try:
        cache.keep(digest, files, {"model": result.model.kind, "width": result.width, "height": result.height,
                                       "person_count": len(result.persons),
                                       "elapsed_ms": round(1000 * out.timings.get("total", 0.0), 1)})
    except (ClientError, BotoCoreError):
        log.warning("could not store the result in the cache", exc_info=True)


def _cached_files(cache: ResultCache, digest: str, names: list[str]) -> dict[str, bytes] | None:
    """The stored files ``names`` of these bytes (same model and settings) when the cache has them all; storage
    trouble is a miss (the parse still answers)."""
    if not cache.enabled:
        return None
    try:
        return cache.read(digest, names)
    except (ClientError, BotoCoreError):
        log.warning("cache look-up failed; parsing instead", exc_info=True)
        return None


def _answer(output: str, files: dict[str, bytes], *, cached: bool, names: list[str]) -> Response:
    headers = {"X-Humanparse-Cache": "hit" if cached else "miss"}
    if output != "json":
        name = names[-1]
        if len(files[name]) * 4 // 3 > MAX_SYNC_RESPONSE:  # Lambda sends binary bodies base64-encoded
            raise ResponseTooLarge()
        return Response(files[name], media_type=content_type(name), headers=headers)
    summary = json.loads(files["result.json"])
    summary.pop("job_id", None)  # a cached summary names the job that computed it: another user's
    if cached:
        summary["cached"] = True
    doc = dict(summary, label_png_base64=base64.b64encode(files["label.png"]).decode("ascii"),
               keypoints=json.loads(files[KEYPOINTS_FILE]))
    tryon = [n for n in names if n.startswith("tryon.")]
    if tryon:  # tryon.<category>.p<k>.<image>.png
        _, category, person, *_ = tryon[0].split(".")
        doc["tryon"] = {"category": category, "person": int(person[1:]), **{
            f"{n.split('.')[3]}_png_base64": base64.b64encode(files[n]).decode("ascii") for n in tryon}}
    payload = json.dumps(doc, ensure_ascii=False).encode("utf-8")
    if len(payload) > MAX_SYNC_RESPONSE:
        raise ResponseTooLarge()
    return Response(payload, media_type="application/json", headers=headers)
