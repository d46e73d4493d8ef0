"""Content-addressed results: the same photo is parsed once per model and output settings.

The cache is the results bucket itself. A cache key is the SHA-256 of the uploaded bytes together with a
fingerprint of everything that changes the answer (``answer_identity``): model kind and id, the weights'
identity (the kind's ``fingerprint`` in ``engine/registry.py``: M2FP size + mtime of ``pytorch_model.pt``, read
once at start; lite the pinned sha256s the files are checked against at load), the precision the network actually
runs in, the result format (a hash of the output table, ``outputs.format_version``) and the settings that alter
outputs. The index is one small object per key, ``<results prefix>cache/<key>.json`` = ``{"job_id", "files",
"format"}``, written with one PUT only after that job's ``status.json`` says ``done`` — so an index never points at
a job whose files are still being written.

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
from humanparse.engine.registry import lookup
from humanparse.engine.types import Parser
from humanparse.jobs.status import JobSource, JobStatus
from humanparse.jobs.store import JobStore
from humanparse.observability import record_cache_hit
from humanparse.pipeline.outputs import format_version


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def weights_identity(parser: Parser, settings: Settings) -> str:
    """What identifies the loaded weights, cheaply: the fingerprint its kind (``engine/registry.py``) takes of
    the folder the loader picks from these settings — M2FP: path, size and mtime of ``pytorch_model.pt``
    (hashing 250 MB at every start would cost seconds); lite: the pinned sha256s (the loader refuses files that
    do not match them); a kind not registered, or no folder found: its model id."""
    kind = lookup(parser.info.kind)
    folder = kind.find(settings.model_places(kind)) if kind is not None else None
    return kind.fingerprint(folder) if kind is not None and folder is not None else parser.info.model_id


def answer_identity(parser: Parser, settings: Settings) -> dict[str, Any]:
    """Everything besides the bytes that changes the result files (the cache key's second half)."""
    info = parser.info
    # the result format: a hash of the output table, so an output added, removed or changed makes older entries
    # miss (their copy would lack it or differ); read here, so a format registered after import counts
    return {"format": format_version(), "kind": info.kind, "model_id": info.model_id,
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
    status: JobStatus  # that job's status.json


class ResultCache:
    """Look-ups and index writes over one ``JobStore``; the model's identity is read once (at first use)."""

    def __init__(self, store: JobStore, parser: Parser, settings: Settings) -> None:
        self.store, self.parser, self.settings = store, parser, settings
        self.enabled = settings.cache_enabled and store.s3 is not None  # an app built without storage: none

    @cached_property
    def identity(self) -> dict[str, Any]:
        """At first use, not at start: it reads the model's info, which a lazily loaded parser loads for."""
        return answer_identity(self.parser, self.settings)

    @property
    def fingerprint(self) -> str:
        # the output table is read at each use (a few µs): a format registered while serving makes older entries
        # miss at once
        return sha256_hex(json.dumps({**self.identity, "format": format_version()}, sort_keys=True).encode("utf-8"))

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
        status = self.store.read_job(job_id)
        if not status or status.status != "done" or not status.files:
            return None
        if status.sha256 != content_sha256:
            # the job was re-parsed from other bytes since (a bulk-copied key keeps its job id): stale entry
            return None
        # its files are not HEADed here: the copy (``reuse``) or the read (``read``) fails on a missing one,
        # which is then a miss — one request per file instead of two
        return CacheEntry(key, job_id, status)

    def reuse(self, content_sha256: str, job_id: str, source: JobSource) -> JobStatus | None:
        """Make ``job_id`` a done job with the cached files (server-side copies, then ``status.json`` last).
        None on a miss — nothing was written for ``job_id`` except, at worst, copies a later parse overwrites."""
        t0 = time.perf_counter()
        entry = self.lookup(content_sha256)
        if entry is None or entry.job_id == job_id:
            return None
        files = list(entry.status.files or [])
        if not self.store.copy_results(entry.job_id, job_id, files):
            return None
        status = JobStatus(status="done", job_id=job_id, source=source, files=files,
                           **entry.status.set_fields(("model", "width", "height", "person_count")), cached=True,
                           sha256=content_sha256, elapsed_ms=round(1000 * (time.perf_counter() - t0), 1))
        self.store.write_status(job_id, status)
        record_cache_hit()
        # point the entry at the newest copy: it lives as long as the newest use, not the first one
        self.record(content_sha256, job_id, files)
        return status

    def record(self, content_sha256: str, job_id: str, files: list[str]) -> None:
        """Index a job whose ``status.json`` is already ``done`` (one PUT)."""
        if self.enabled:
            self.store.put_json(self.store.cache_key_name(self.key(content_sha256)),
                                {"job_id": job_id, "files": files, "format": format_version()})

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
