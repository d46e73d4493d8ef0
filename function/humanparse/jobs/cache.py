"""Content-addressed results: the same photo is parsed once per model and output settings.

The cache is the results bucket itself. A cache key is the SHA-256 of the uploaded bytes together with a
fingerprint of everything that changes the answer (``answer_identity``): model kind and id, the weights'
identity (M2FP: size + mtime of ``pytorch_model.pt``, read once at start; lite: the pinned sha256s the files
are checked against at load), the precision the network actually runs in, ``RESULT_FORMAT_VERSION`` and the
settings that alter outputs. The index is one small object per key, ``<results prefix>cache/<key>.json``
= ``{"job_id", "files", "format"}``, written with one PUT only after that job's ``status.json`` says ``done`` — so an
index never points at a job whose files are still being written.

Reading trusts nothing: an entry is used only if its job is ``done`` and every file it lists can still be
copied or read (lifecycle may have removed them: that is a miss, not an error), and the copy to the new job runs before the
new ``status.json`` is written, so a ``done`` never points at missing files. Two uploads of the same bytes at
once may both parse; each writes a complete index entry and the last one wins.

Privacy: the key is a hash of content and model, nothing about who uploaded it; identical photos from
different users share one result. ``Settings.cache_enabled = False`` turns reading and writing off.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from humanparse.config import Settings
from humanparse.engine.types import Parser
from humanparse.jobs.keys import new_job_id
from humanparse.jobs.store import JobStore
from humanparse.observability import record_cache_hit

# Bump when result files of the same parse would differ (rendering, result.json layout): old entries miss.
# 2: overlay.jpg replaced overlay.png (an old entry's copy would give a new job no overlay.jpg).
# 3: result.json has the outfit per person; keypoints.json, atr.png, lip.png (and the try-on masks, when
#    ``job_tryon_masks`` is on) are stored beside the parse (an old entry has none of them).
RESULT_FORMAT_VERSION = 3


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def weights_identity(parser: Parser, settings: Settings) -> str:
    """What identifies the loaded weights, cheaply: M2FP — path, size and mtime of ``pytorch_model.pt`` in the
    folder the loader picks from these settings (hashing 250 MB at every start would cost seconds); lite — the
    pinned sha256s (the loader refuses files that do not match them); anything else — its model id."""
    kind = parser.info.kind
    if kind == "m2fp":
        from humanparse.engine.loader import find_m2fp_dir

        folder = find_m2fp_dir(settings.model_spec().m2fp_dirs)
        if folder is not None:
            st = (folder / "pytorch_model.pt").stat()
            return f"{folder.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    if kind == "lite":
        from humanparse.models import LITE_SHA256

        return ",".join(f"{k}={v}" for k, v in sorted(LITE_SHA256.items()))
    return parser.info.model_id


def answer_identity(parser: Parser, settings: Settings) -> dict[str, Any]:
    """Everything besides the bytes that changes the result files (the cache key's second half)."""
    info = parser.info
    return {"format": RESULT_FORMAT_VERSION, "kind": info.kind, "model_id": info.model_id,
            "weights": weights_identity(parser, settings),
            "precision": str(getattr(parser, "precision", info.precision)),
            "tuning": repr(getattr(parser, "tuning", None)),
            "overlay_alpha": settings.overlay_alpha, "person_score_thr": settings.person_score_thr,
            "job_tryon_masks": settings.job_tryon_masks,  # which files a job stores
            # the size of the delivered files, and what is refused before a parse
            "max_output_megapixels": settings.max_output_megapixels, "max_megapixels": settings.max_megapixels}


@dataclass(frozen=True)
class CacheEntry:
    key: str
    job_id: str  # the done job whose files are reused
    status: dict[str, Any]  # that job's status.json


class ResultCache:
    """Look-ups and index writes over one ``JobStore``; the fingerprint is computed once (at start)."""

    def __init__(self, store: JobStore, parser: Parser, settings: Settings) -> None:
        self.store, self.parser, self.settings = store, parser, settings
        self.enabled = settings.cache_enabled and store.s3 is not None  # an app built without storage: none

    @cached_property
    def identity(self) -> dict[str, Any]:
        """At first use, not at start: it reads the model's info, which a lazily loaded parser loads for."""
        return answer_identity(self.parser, self.settings)

    @cached_property
    def fingerprint(self) -> str:
        return sha256_hex(json.dumps(self.identity, sort_keys=True).encode("utf-8"))

    def key(self, content_sha256: str) -> str:
        return sha256_hex(f"{content_sha256}\n{self.fingerprint}".encode("ascii"))

    def lookup(self, content_sha256: str) -> CacheEntry | None:
        """A finished result for these bytes whose files are all still stored, else None."""
        if not self.enabled:
            return None
        key = self.key(content_sha256)
        index = self.store.read_json(self.store.cache_key_name(key))
        job_id = index.get("job_id") if index else None
        if not isinstance(job_id, str):
            return None
        status = self.store.read_status(job_id)
        if not status or status.get("status") != "done" or not status.get("files"):
            return None
        if status.get("sha256") != content_sha256:
            # the job was re-parsed from other bytes since (a bulk-copied key keeps its job id): stale entry
            return None
        # its files are not HEADed here: the copy (``reuse``) or the read (``read``) fails on a missing one,
        # which is then a miss — one request per file instead of two
        return CacheEntry(key, job_id, status)

    def reuse(self, content_sha256: str, job_id: str, source: dict[str, Any]) -> dict[str, Any] | None:
        """Make ``job_id`` a done job with the cached files (server-side copies, then ``status.json`` last).
        None on a miss — nothing was written for ``job_id`` except, at worst, copies a later parse overwrites."""
        t0 = time.perf_counter()
        entry = self.lookup(content_sha256)
        if entry is None or entry.job_id == job_id:
            return None
        files = list(entry.status["files"])
        if not self.store.copy_results(entry.job_id, job_id, files):
            return None
        keep = ("model", "width", "height", "person_count")
        status = {"status": "done", "job_id": job_id, "source": source, "files": files,
                  **{k: entry.status[k] for k in keep if k in entry.status}, "cached": True,
                  "sha256": content_sha256, "elapsed_ms": round(1000 * (time.perf_counter() - t0), 1)}
        self.store.write_status(job_id, status)
        record_cache_hit()
        # point the entry at the newest copy: it lives as long as the newest use, not the first one
        self.record(content_sha256, job_id, files)
        return status

    def record(self, content_sha256: str, job_id: str, files: list[str]) -> None:
        """Index a job whose ``status.json`` is already ``done`` (one PUT)."""
        if self.enabled:
            self.store.put_json(self.store.cache_key_name(self.key(content_sha256)),
                                {"job_id": job_id, "files": files, "format": RESULT_FORMAT_VERSION})

    def keep(self, content_sha256: str, files: dict[str, bytes], summary: dict[str, Any]) -> str | None:
        """Store a result computed outside any job (``POST /parse``) as a done job of its own and index it, so
        the same bytes sent again, or uploaded from the page, are a hit. ``summary``: model, width, height,
        person_count, elapsed_ms. The new job id, or None with the cache off."""
        if not self.enabled:
            return None
        job_id = new_job_id()
        self.store.write_results(job_id, files)  # files first, done last, index after: as the trigger does
        self.store.write_status(job_id, {"status": "done", "job_id": job_id, "source": {"api": "POST /parse"},
                                         "files": list(files), **summary, "sha256": content_sha256})
        self.record(content_sha256, job_id, list(files))
        return job_id

    def read(self, content_sha256: str, names: list[str]) -> dict[str, bytes] | None:
        """The cached files ``names`` for these bytes (POST /parse), or None on a miss or if any is gone."""
        entry = self.lookup(content_sha256)
        if entry is None:
            return None
        out: dict[str, bytes] = {}
        for name in names:
            body = self.store.read_result(entry.job_id, name)
            if body is None:
                return None
            out[name] = body
        record_cache_hit()
        return out
