"""S3 upload trigger: parse each new object under the uploads prefix and write its results.

Contract per record:
- outside the uploads prefix (our own results included) → ignored, so output can never retrigger us;
- decided from the stored object itself (its real length and ETag, read with HEAD), never from the event's
  claims: already done or failed for the object as stored → skipped (at-least-once delivery is harmless), and an
  event that disagrees with the stored object never overwrites a finished (``done``) result;
- a bad upload (not an image, too big, truncated, deleted) → ``status.json`` with ``failed``, ``error`` and
  ``detail``, and the handler returns normally (no retry storm);
- any other error on the upload's own bytes (``exceptions.is_transient`` is false) → ``failed`` with
  ``processing_failed`` at once: the same bytes would fail every retry, and a restart must not run it again;
- a transient error (S3 unavailable, throttled) → raised, so Lambda retries and finally the DLQ gets it.
Artefacts are written first and ``status.json`` last: a reader that sees ``done`` sees the whole set.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from humanparse.config import Settings
from humanparse.engine.types import Parser
from humanparse.entries.events import S3ObjectRecord, is_backfill_batch, parse_backfill_batch, parse_s3_event
from humanparse.exceptions import (
    ChecksumMismatch,
    ImageTooLarge,
    InputError,
    ProcessingFailed,
    UploadMissing,
    is_transient,
)
from humanparse.jobs.cache import ResultCache, sha256_hex
from humanparse.jobs.store import JobStore, StoredObject
from humanparse.observability import log_keys, record_failure, record_parse, span
from humanparse.pipeline.tryon_files import tryon_job_files
from humanparse.pipeline.usecase import ParseOptions, parse_image
from humanparse.video.job import FanOut, VideoJobs, is_video_message, is_video_upload

log = logging.getLogger("humanparse.s3")


def _sequencer_older(new: str | None, seen: str | None) -> bool:
    """S3's per-key event order: sequencers are hex strings, compared after left-padding to equal length."""
    if not new or not seen:
        return False
    n = max(len(new), len(seen))
    return new.upper().rjust(n, "0") < seen.upper().rjust(n, "0")


def _disagrees(rec: S3ObjectRecord, stored: StoredObject | None) -> bool:
    """The event describes an object other than the one stored (a forged or stale notification)."""
    if stored is None:
        return True
    return ((rec.etag is not None and rec.etag != stored.etag)
            or (rec.size is not None and rec.size != stored.size))


@dataclass
class RecordOutcome:
    key: str
    job_id: str | None
    status: str  # "done" | "failed" | "skipped" | "ignored" | "running" (a split video job, fanned out)
    reason: str = ""


class S3Trigger:
    def __init__(self, parser: Parser, s3: Any, settings: Settings, store: JobStore | None = None,
                 video_fan_out: FanOut | None = None, cache: ResultCache | None = None) -> None:
        self.parser, self.s3, self.settings = parser, s3, settings
        self.store = store or JobStore(s3, settings)
        self.layout = self.store.layout
        self.options = ParseOptions.from_settings(settings)
        self.video = VideoJobs(parser, self.store, settings, video_fan_out)
        self.cache = cache or ResultCache(self.store, parser, settings)  # build_service passes the API's

    def read_status(self, job_id: str) -> dict[str, Any] | None:
        return self.store.read_status(job_id)

    # ------------------------------------------------------------------------------------------ records
    def handle_event(self, event: Any) -> dict[str, Any]:
        """An S3 notification, a backfill batch from the Step Functions Distributed Map, or a split video job's
        chunk / join / fail message."""
        if is_video_message(event):
            return self.video.handle_message(event)
        records = parse_backfill_batch(event) if is_backfill_batch(event) else parse_s3_event(event)
        outcomes = []
        for r in records:
            with log_keys(s3_key=r.key):
                outcomes.append(self.handle_record(r))
        return {"records": [o.__dict__ for o in outcomes],
                "failed": sum(o.status == "failed" for o in outcomes)}

    def _skip_reason(self, rec: S3ObjectRecord, prior: dict[str, Any] | None,
                     stored: StoredObject | None) -> str | None:
        if not prior or prior.get("status") not in ("done", "failed"):
            return None
        src = prior.get("source", {})
        if _sequencer_older(rec.sequencer, src.get("sequencer")):
            return "stale event: a newer write was processed"
        if stored is not None and src.get("etag") == stored.etag and src.get("version_id") == rec.version_id:
            return "already processed"
        if stored is None and src.get("etag") == rec.etag and src.get("version_id") == rec.version_id:
            return "already processed"
        if prior.get("status") == "done" and _disagrees(rec, stored):
            return "event does not match the stored object; the finished result is kept"
        return None

    def handle_record(self, rec: S3ObjectRecord) -> RecordOutcome:
        if not rec.is_create or not self.layout.in_uploads(rec.key) or rec.bucket != self.settings.upload_bucket:
            return RecordOutcome(rec.key, None, "ignored", "not an upload under the uploads prefix")
        job_id = self.layout.job_id_for_key(rec.key)
        prior = self.store.read_status(job_id)
        stored = self.store.head_upload(rec.bucket, rec.key, rec.version_id)
        skip = self._skip_reason(rec, prior, stored)
        if skip:
            return RecordOutcome(rec.key, job_id, "skipped", skip)
        identity = {"bucket": rec.bucket, "key": rec.key, "etag": stored.etag if stored else rec.etag,
                    "version_id": rec.version_id, "sequencer": rec.sequencer}
        if self._is_video(rec, stored):
            # "done", "failed", or "running" (a long clip, handed to the fan-out)
            return RecordOutcome(rec.key, job_id, self.video.start(job_id, identity, stored, prior))
        t0 = time.perf_counter()
        try:
            data = self._fetch(rec, stored)
            digest = self._verified_sha256(data, stored)
            if self.cache.reuse(digest, job_id, identity) is not None:
                log.info("job %s: result reused from the cache", job_id)
                return RecordOutcome(rec.key, job_id, "done", "cached")
            out = parse_image(data, self.parser, self.options, extra={"job_id": job_id})
        except Exception as exc:
            if is_transient(exc):
                raise  # storage or network: retried (Lambda's retries, then the dead-letter queue)
            if not isinstance(exc, InputError):  # the same bytes would fail the same way: fail now, not 3 times
                log.exception("parse failed on the upload itself", extra={"job_id": job_id})
                exc = ProcessingFailed.from_exception(exc)
            self.store.write_status(job_id, {"status": "failed", "job_id": job_id, **exc.to_dict(),
                                             "source": identity})
            log.warning("job failed", extra={"job_id": job_id, "error": exc.code, "detail": str(exc)})
            record_failure(exc.code)
            return RecordOutcome(rec.key, job_id, "failed", str(exc))
        with span("tryon"):
            files = tryon_job_files(out, self.settings)
        elapsed_ms = round(1000 * (time.perf_counter() - t0), 1)
        with span("write"):
            self.store.write_results(job_id, files)
            self.store.write_status(job_id, {
                "status": "done", "job_id": job_id, "source": identity, "files": list(files),
                "model": out.result.model.kind, "width": out.result.width, "height": out.result.height,
                "person_count": len(out.result.persons), "elapsed_ms": elapsed_ms, "sha256": digest})
        self.cache.record(digest, job_id, list(files))  # after status.json: the index never leads to a half job
        record_parse(out, elapsed_ms=elapsed_ms, job_id=job_id)
        return RecordOutcome(rec.key, job_id, "done")

    def _is_video(self, rec: S3ObjectRecord, stored: StoredObject | None) -> bool:
        """Video by stored type or suffix; an untyped object (a bulk copy) by its leading bytes."""
        ct = (stored.content_type or "") if stored else ""
        if ct.startswith("image/") or stored is None:
            return is_video_upload(rec.key, stored)
        return is_video_upload(rec.key, stored, self.store.read_head(rec.bucket, rec.key, 16))

    @staticmethod
    def _verified_sha256(data: bytes, stored: StoredObject | None) -> str:
        """The SHA-256 (hex) of what was fetched; ``checksum_mismatch`` when the upload declared another one."""
        digest = sha256_hex(data)
        declared = stored.declared_sha256 if stored else None
        if declared and declared != digest:
            raise ChecksumMismatch(f"declared sha256 {declared}, the stored bytes hash to {digest}")
        return digest

    @span("fetch")
    def _fetch(self, rec: S3ObjectRecord, stored: StoredObject | None) -> bytes:
        """The upload's bytes, sized by what S3 stores (never by the event's claim)."""
        limit = self.settings.max_upload_bytes
        if stored is None:
            raise UploadMissing()
        if stored.size > limit:
            raise ImageTooLarge(f"upload is {stored.size} bytes; the limit is {limit}")
        body = self.store.read_upload(rec.bucket, rec.key, limit, rec.version_id)
        if body is None:
            raise UploadMissing()
        if len(body) > limit:
            raise ImageTooLarge(f"upload is larger than {limit} bytes")
        return body
