"""One photo job's lifecycle, whichever entry brought it: the S3 trigger (an upload's notification, a backfill
batch, the local runner's queue, which delivers the same events) and ``POST /parse`` (a result worth keeping).

An entry translates what it received into a ``JobRequest`` and calls ``JobRunner.run`` (``POST /parse``, which
answers at once: ``parse_now``); the runner owns the rest:

- skip rules (``check``): a job already ``done``/``failed`` for the object as stored is not run again
  (at-least-once delivery is harmless), an older write's event never replaces a newer one's result, and an event
  that disagrees with the stored object never overwrites a ``done`` result;
- the bytes: read from the stored upload sized by what S3 stores (never by an event's claim), checked against a
  declared SHA-256;
- cache reuse: the same bytes, model and settings parsed before → server-side copies, no parse;
- the parse (``pipeline.usecase.parse_image``) and the files a job stores (``tryon_job_files``);
- results before status: every result file, then ``status.json`` (``done``), then the cache index, so a reader
  that sees ``done`` sees every file and an index never points at a half-written job;
- metrics: ``ParseTime``/``ImagesParsed``/``PersonsFound`` per parse, ``Failures`` by code;
- errors: bad input (``InputError``), and any other error on the job's own bytes (``processing_failed``: the same
  bytes would fail every retry), become a ``failed`` status, written and returned; a transient error (storage,
  network: ``exceptions.is_transient``) is raised, for the entry's retry (Lambda's, then the dead-letter queue).

A video upload (by its stored type, key suffix or leading bytes) passes the same skip rules and is then handed
to the video flow (``video.job.VideoJobs.start``: probe, split or run whole), whose chunks run under their own
messages. A new entry is a module that builds ``JobRequest``s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from botocore.exceptions import BotoCoreError, ClientError

from humanparse.config import Settings
from humanparse.engine.types import Parser
from humanparse.exceptions import (
    Busy,
    ChecksumMismatch,
    HumanParseError,
    ImageTooLarge,
    InputError,
    ProcessingFailed,
    UploadMissing,
    is_transient,
)
from humanparse.jobs.cache import ResultCache, sha256_hex
from humanparse.jobs.keys import new_job_id
from humanparse.jobs.status import JobSource, JobStatus
from humanparse.jobs.store import JobStore, StoredObject
from humanparse.observability import record_failure, record_parse, span
from humanparse.pipeline.tryon_files import tryon_job_files
from humanparse.pipeline.usecase import ParseOptions, ParseOutput, parse_image

log = logging.getLogger("humanparse.jobs.runner")


@dataclass(frozen=True)
class JobRequest:
    """One photo job. ``source``: the input its status names (an upload: bucket, key, the stored object's ETag,
    version and the event's sequencer). ``stored``: what S3 says about that object now (None: gone), against which
    ``claimed_etag``/``claimed_size`` (what a notification said, if anything) are checked."""

    job_id: str
    source: JobSource
    stored: StoredObject | None = None
    claimed_etag: str | None = None
    claimed_size: int | None = None

    def disagrees(self) -> bool:
        """The request describes an object other than the one stored (a forged or stale notification)."""
        if self.stored is None:
            return True
        return ((self.claimed_etag is not None and self.claimed_etag != self.stored.etag)
                or (self.claimed_size is not None and self.claimed_size != self.stored.size))


def _sequencer_older(new: str | None, seen: str | None) -> bool:
    """S3's per-key event order: sequencers are hex strings, compared after left-padding to equal length."""
    if not new or not seen:
        return False
    n = max(len(new), len(seen))
    return new.upper().rjust(n, "0") < seen.upper().rjust(n, "0")


def skip_reason(request: JobRequest, prior: JobStatus | None) -> str | None:
    """Why ``request`` must not run, given the job's status so far; None to run it."""
    if prior is None or not prior.is_final:
        return None
    seen, new = prior.source or JobSource(), request.source
    if _sequencer_older(new.sequencer, seen.sequencer):
        return "stale event: a newer write was processed"
    if seen.etag == new.etag and seen.version_id == new.version_id:
        return "already processed"
    if prior.status == "done" and request.disagrees():
        return "event does not match the stored object; the finished result is kept"
    return None


def verified_sha256(data: bytes, stored: StoredObject | None) -> str:
    """The SHA-256 (hex) of what was fetched; ``checksum_mismatch`` when the upload declared another one."""
    digest = sha256_hex(data)
    declared = stored.declared_sha256 if stored else None
    if declared and declared != digest:
        raise ChecksumMismatch(f"declared sha256 {declared}, the stored bytes hash to {digest}")
    return digest


class VideoStart(Protocol):
    """The video flow's start (``video.job.VideoJobs``): "done", "failed" or "running" (a split clip)."""

    def start(self, job_id: str, identity: JobSource, stored: StoredObject | None, prior: JobStatus | None) -> str: ...


class JobRunner:
    """Jobs over one parser, job store and result cache (one per process, shared by every entry); video uploads
    go to ``video`` when one is given."""

    def __init__(self, parser: Parser, store: JobStore, cache: ResultCache, settings: Settings,
                 video: VideoStart | None = None) -> None:
        self.parser, self.store, self.cache, self.settings = parser, store, cache, settings
        self.options = ParseOptions.from_settings(settings)
        self.video = video

    def check(self, request: JobRequest) -> tuple[JobStatus | None, str | None]:
        """The job's status so far, and why ``request`` must not run (None: run it)."""
        prior = self.store.read_job(request.job_id)
        return prior, skip_reason(request, prior)

    def run(self, request: JobRequest, prior: JobStatus | None = None) -> JobStatus:
        """The job from its bytes to its status (``done``, possibly ``cached``, or ``failed``; a split video
        ``running``), written and returned. Raises only transient errors. Call after ``check`` (``prior``: what it
        read)."""
        if self.video is not None and self.is_video(request):
            return self._run_video(request, prior)
        t0 = time.perf_counter()
        job_id = request.job_id
        try:
            data = self._fetch(request)
            digest = verified_sha256(data, request.stored)
            hit = self.cache.reuse(digest, job_id, request.source)
            if hit is not None:
                log.info("job %s: result reused from the cache", job_id)
                return hit
            out = parse_image(data, self.parser, self.options, extra={"job_id": job_id})
        except Exception as exc:
            return self._failed(request, exc)
        with span("tryon"):
            files = tryon_job_files(out, self.settings)
        elapsed_ms = round(1000 * (time.perf_counter() - t0), 1)
        status = self.publish(job_id, request.source, out, files, digest, elapsed_ms)
        record_parse(out, elapsed_ms=elapsed_ms, job_id=job_id)
        return status

    def is_video(self, request: JobRequest) -> bool:
        """Video by stored type or key suffix; an untyped object (a bulk copy) by its leading bytes."""
        from humanparse.video.job import is_video_upload  # jobs/ needs video/ only here, and only at run time

        stored, src = request.stored, request.source
        key = src.key or ""
        ct = (stored.content_type or "") if stored else ""
        if ct.startswith("image/") or stored is None or not src.bucket:
            return is_video_upload(key, stored)
        return is_video_upload(key, stored, self.store.read_head(src.bucket, key, 16))

    def _run_video(self, request: JobRequest, prior: JobStatus | None) -> JobStatus:
        """The video flow's start; the job's status as it left it (re-read: the flow writes several)."""
        assert self.video is not None
        prior = prior if prior is not None else self.store.read_job(request.job_id)  # a split job resumes
        state = self.video.start(request.job_id, request.source, request.stored, prior)
        now = self.store.read_job(request.job_id)
        return now or JobStatus.model_validate({"status": state, "kind": "video", "job_id": request.job_id})

    def parse_now(self, data: bytes, digest: str, gate: threading.BoundedSemaphore,
                  files_of: Callable[[ParseOutput], dict[str, bytes]]) -> tuple[ParseOutput, dict[str, bytes]]:
        """A parse answered at once (``POST /parse``): within ``gate`` (none free: ``busy`` at once, no queue),
        with a job's options and metrics, its result kept as a done job of its own (``keep``). ``files_of``: the
        files a job of these bytes stores. Bad input raises (the entry answers it), counted in ``Failures``;
        storage trouble loses the kept copy, never the answer."""
        if not gate.acquire(blocking=False):
            raise Busy()
        try:
            out = parse_image(data, self.parser, self.options)
            files = files_of(out)  # inside the gate: beside M2FP the keypoints run a pose network
        except InputError as exc:
            record_failure(exc.code)  # the same Failures metric as the trigger's refused uploads
            raise
        finally:
            gate.release()
        record_parse(out)  # log line + ParseTime / ImagesParsed / PersonsFound
        try:
            self.keep(digest, out, files)
        except (ClientError, BotoCoreError):
            log.warning("could not store the result in the cache", exc_info=True)
        return out, files

    def keep(self, digest: str, out: ParseOutput, files: dict[str, bytes]) -> str | None:
        """A result computed outside any job (``POST /parse``) stored as a done job of its own and indexed, so the
        same bytes sent again, or uploaded from the page, are a hit. The new job id; None with the cache off."""
        if not self.cache.enabled:
            return None
        job_id = new_job_id()
        self.publish(job_id, JobSource(api="POST /parse"), out, files, digest,
                     round(1000 * out.timings.get("total", 0.0), 1))
        return job_id

    def publish(self, job_id: str, source: JobSource, out: ParseOutput, files: dict[str, bytes], digest: str,
                elapsed_ms: float) -> JobStatus:
        """Results first, ``status.json`` (``done``) next, the cache index last."""
        result = out.result
        status = JobStatus(status="done", job_id=job_id, source=source, files=list(files), model=result.model.kind,
                           width=result.width, height=result.height, person_count=len(result.persons),
                           elapsed_ms=elapsed_ms, sha256=digest)
        with span("write"):
            self.store.write_results(job_id, files)
            self.store.write_status(job_id, status)
        self.cache.record(digest, job_id, list(files))  # after status.json: the index never leads to a half job
        return status

    def _failed(self, request: JobRequest, exc: Exception) -> JobStatus:
        """``exc`` as the job's ``failed`` status (written); a transient error is raised again instead."""
        if is_transient(exc):
            raise exc  # storage or network: retried (Lambda's retries, then the dead-letter queue)
        error: HumanParseError
        if isinstance(exc, InputError):
            error = exc
        else:  # the same bytes would fail the same way: fail now, not three times
            log.exception("parse failed on the upload itself", extra={"job_id": request.job_id})
            error = ProcessingFailed.from_exception(exc)
        status = JobStatus.failure(error, job_id=request.job_id, source=request.source)
        self.store.write_status(request.job_id, status)
        log.warning("job failed", extra={"job_id": request.job_id, "error": error.code, "detail": error.detail})
        record_failure(error.code)
        return status

    @span("fetch")
    def _fetch(self, request: JobRequest) -> bytes:
        """The upload's bytes, sized by what S3 stores (never by the event's claim)."""
        limit, stored, src = self.settings.max_upload_bytes, request.stored, request.source
        if stored is None or not src.bucket or not src.key:
            raise UploadMissing()
        if stored.size > limit:
            raise ImageTooLarge(f"upload is {stored.size} bytes; the limit is {limit}")
        body = self.store.read_upload(src.bucket, src.key, limit, src.version_id)
        if body is None:
            raise UploadMissing()
        if len(body) > limit:
            raise ImageTooLarge(f"upload is larger than {limit} bytes")
        return body


__all__ = ["JobRequest", "JobRunner", "skip_reason", "verified_sha256"]
