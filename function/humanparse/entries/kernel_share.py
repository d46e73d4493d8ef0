"""The M2FP fast path's kernel verdict shared through S3 between Lambda execution environments.

The fast path measures its kernels when the model loads (~0.6 s at 2 threads, ``engine/m2fp/autotune.py``) and
caches the verdict in ``<kernel cache dir>/kernels.json``. On Lambda that folder is the execution environment's
own /tmp, so without this every cold start measures again. Around the model load (``service.load_configured_parser``):

- ``fetch`` copies ``s3://<results bucket>/<results_prefix>_system/kernels.json`` into the local cache folder
  before the model loads, so the engine finds a verdict for this CPU model and thread count and measures nothing;
- ``publish`` puts the local file back after the load when the engine measured and wrote a new verdict (merged
  with what S3 holds by then; last writer wins for one CPU, and an entry lost that way is just measured again).

Every error (no such key, access denied, timeouts, a full disk) is logged and ignored: the verdict saves time,
loading never fails for it. The object is untrusted input: at most ``MAX_BYTES`` are read, it must be a JSON
object whose ``entries`` is an object (nesting too deep is refused, not a crash), and the engine's
``autotune.read_cache`` validates every value (a wrong one is measured again and overwritten).
Off with ``HUMANPARSE_SHARE_KERNEL_VERDICT=false``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from humanparse.config import Settings
from humanparse.engine.loader import find_m2fp_dir

log = logging.getLogger("humanparse.kernels")

CACHE_FILE = "kernels.json"  # = engine.m2fp.autotune.CACHE_FILE (not imported: that module imports torch)
# A verdict is ~0.5 KB per CPU model and thread count: 64 KB holds ~100 of them, and a hostile object stays
# cheap to read and parse (< 1 ms).
MAX_BYTES = 64 * 1024


def verdict_key(settings: Settings) -> str:
    """Where the shared verdict lives in ``settings.output_bucket`` (under the results prefix: the functions'
    results/* grant covers it, and no job id can collide with ``_system``)."""
    return f"{settings.results_prefix}_system/{CACHE_FILE}"


@dataclass
class SharedVerdict:
    """One load's share: where the local file is, and the bytes fetched into it (None: nothing fetched)."""

    s3: Any
    bucket: str
    key: str
    path: Path
    fetched: bytes | None = None
    reachable: bool = True  # False after a timeout or a connection error: no second wait to put it back


def wanted(settings: Settings) -> bool:
    """Sharing applies: on, kernels measured (``auto``), and an M2FP folder to load (the lite model has none)."""
    if not settings.share_kernel_verdict or settings.kernels.strip() not in ("", "auto"):
        return False
    spec = settings.model_spec()
    return spec.kind != "lite" and find_m2fp_dir(spec.m2fp_dirs) is not None


def local_dir(settings: Settings) -> Path:
    """The kernel cache folder to use: ``settings.kernel_cache_dir``, else the first writable of the engine's
    places (``autotune.cache_places``: the user cache, then the temp dir: on Lambda only /tmp is writable).
    Imports the engine (and torch): called only when an M2FP model is about to load (``wanted``)."""
    if settings.kernel_cache_dir is not None:
        return settings.kernel_cache_dir
    from humanparse.engine.m2fp.autotune import cache_places

    places = cache_places()
    for place in places:
        try:
            place.mkdir(parents=True, exist_ok=True)
            if os.access(place, os.W_OK):
                return place
        except OSError:
            continue
    return places[-1]


def parse_doc(body: bytes, limit: int = MAX_BYTES) -> dict[str, Any] | None:
    """``body`` as a verdict file — a JSON object with an ``entries`` object — or None (over ``limit`` bytes,
    not UTF-8 or JSON, nested too deep, another shape). Values inside are left to ``autotune.read_cache``."""
    if len(body) > limit:
        return None
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("entries"), dict) else None


def _get(s3: Any, bucket: str, key: str, share: SharedVerdict | None = None) -> bytes | None:
    """The object's bytes if it exists and fits in ``MAX_BYTES`` (a larger one: None, read no further). A
    timeout or connection error marks ``share`` unreachable."""
    from botocore.exceptions import BotoCoreError

    try:
        # one byte past the cap: a longer object shows as too long without being read
        obj = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{MAX_BYTES}")
        body: bytes = obj["Body"].read(MAX_BYTES + 1)
    except Exception as exc:  # any S3 trouble only costs a measurement
        log.info("no shared kernel verdict from s3://%s/%s: %s", bucket, key, _why(exc))
        if share is not None and isinstance(exc, BotoCoreError):  # not an S3 answer (ClientError): no S3 at all
            share.reachable = False
        return None
    if len(body) > MAX_BYTES:
        log.warning("shared kernel verdict s3://%s/%s ignored: over %d bytes", bucket, key, MAX_BYTES)
        return None
    return body


def _why(exc: Exception) -> str:
    response = getattr(exc, "response", None)  # botocore ClientError: the S3 error code says it all
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return f"{type(exc).__name__} {code}" if code else f"{type(exc).__name__}: {exc}"


def fetch(settings: Settings, s3: Any) -> SharedVerdict:
    """Before the model loads: the shared verdict into the local kernel cache folder, when S3 has a valid one."""
    share = SharedVerdict(s3, settings.output_bucket, verdict_key(settings), local_dir(settings) / CACHE_FILE)
    body = _get(s3, share.bucket, share.key, share)
    if body is None:
        return share
    if parse_doc(body) is None:
        log.warning("shared kernel verdict s3://%s/%s ignored: not a verdict file", share.bucket, share.key)
        return share
    try:
        share.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = share.path.with_name(f"{share.path.name}.{os.getpid()}.s3")
        tmp.write_bytes(body)
        os.replace(tmp, share.path)
        share.fetched = body
    except OSError as exc:
        log.warning("shared kernel verdict not written to %s: %s", share.path, exc)
    return share


def publish(share: SharedVerdict, kernels_reason: str) -> bool:
    """After the load: put the local verdict file back to S3 when the engine measured and wrote a new one
    (``kernels_reason`` starts with "measured"; the file's bytes differ from what was fetched). Entries S3
    gained meanwhile from other environments are kept if the whole still fits ``MAX_BYTES``; else only the
    entries this load changed are put. Not tried when the fetch timed out or could not connect (each try
    would cost the cold start the timeouts again). True if put."""
    if not kernels_reason.startswith("measured") or not share.reachable:
        return False
    try:
        with open(share.path, "rb") as fh:  # the engine wrote it, over what was fetched: at most a few KB more
            body = fh.read(2 * MAX_BYTES + 1)
    except OSError:
        return False
    mine = parse_doc(body, 2 * MAX_BYTES)
    if mine is None or body == share.fetched:
        return False
    before = (parse_doc(share.fetched) or {}).get("entries", {}) if share.fetched else {}
    changed = {k: v for k, v in mine["entries"].items() if before.get(k) != v}
    theirs = parse_doc(_get(share.s3, share.bucket, share.key) or b"")
    for entries in (({**theirs["entries"], **changed} if theirs and theirs.get("version") == mine.get("version")
                     else None), mine["entries"], changed):
        if entries is not None:
            body = json.dumps({**mine, "entries": entries}, indent=1).encode()
            if len(body) <= MAX_BYTES:
                break
    else:
        return False
    try:
        share.s3.put_object(Bucket=share.bucket, Key=share.key, Body=body, ContentType="application/json")
    except Exception as exc:  # the next cold start measures again; nothing else is lost
        log.warning("kernel verdict not shared to s3://%s/%s: %s", share.bucket, share.key, _why(exc))
        return False
    log.info("kernel verdict shared to s3://%s/%s", share.bucket, share.key)
    return True
