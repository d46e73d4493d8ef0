"""S3 upload trigger: each new object under the uploads prefix becomes a job (``jobs.runner``).

Contract per record:
- outside the uploads prefix (our own results included) → ignored, so output can never retrigger us;
- decided from the stored object itself (its real length and ETag, read with HEAD), never from the event's
  claims: the runner's skip rules (already done or failed for the object as stored; a stale or mismatched event
  never overwrites a ``done`` result) make at-least-once delivery harmless;
- a bad upload, or any other non-transient error on its own bytes → a ``failed`` job status, and the handler
  returns normally (no retry storm); a transient error (S3 unavailable, throttled) → raised, so Lambda retries
  and finally the DLQ gets it;
- a video upload → ``video.job.VideoJobs.start`` (after the same skip rules).
Artefacts are written first and ``status.json`` last: a reader that sees ``done`` sees the whole set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from humanparse.config import Settings
from humanparse.engine.types import Parser
from humanparse.entries.events import S3ObjectRecord, is_backfill_batch, parse_backfill_batch, parse_s3_event
from humanparse.jobs.cache import ResultCache
from humanparse.jobs.runner import JobRequest, JobRunner
from humanparse.jobs.status import JobSource
from humanparse.jobs.store import JobStore
from humanparse.observability import log_keys
from humanparse.video.job import FanOut, VideoJobs, is_video_message


@dataclass
class RecordOutcome:
    key: str
    job_id: str | None
    status: str  # "done" | "failed" | "skipped" | "ignored" | "running" (a split video job, fanned out)
    reason: str = ""


class S3Trigger:
    """S3 records and backfill batches → ``JobRequest``s for the job runner; video messages → the video flow."""

    def __init__(self, parser: Parser, s3: Any, settings: Settings, store: JobStore | None = None,
                 video_fan_out: FanOut | None = None, cache: ResultCache | None = None) -> None:
        self.parser, self.s3, self.settings = parser, s3, settings
        self.store = store or JobStore(s3, settings)
        self.layout = self.store.layout
        self.video = VideoJobs(parser, self.store, settings, video_fan_out)
        self.cache = cache or ResultCache(self.store, parser, settings)  # build_service passes the API's
        self.runner = JobRunner(parser, self.store, self.cache, settings, video=self.video)

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

    def handle_record(self, rec: S3ObjectRecord) -> RecordOutcome:
        if not rec.is_create or not self.layout.in_uploads(rec.key) or rec.bucket != self.settings.upload_bucket:
            return RecordOutcome(rec.key, None, "ignored", "not an upload under the uploads prefix")
        job_id = self.layout.job_id_for_key(rec.key)
        stored = self.store.head_upload(rec.bucket, rec.key, rec.version_id)
        request = JobRequest(job_id, JobSource(bucket=rec.bucket, key=rec.key,
                                               etag=stored.etag if stored else rec.etag,
                                               version_id=rec.version_id, sequencer=rec.sequencer),
                             stored, claimed_etag=rec.etag, claimed_size=rec.size)
        prior, skip = self.runner.check(request)
        if skip:
            return RecordOutcome(rec.key, job_id, "skipped", skip)
        # "done", "failed", or for a long clip handed to the fan-out "running"
        status = self.runner.run(request, prior)
        return RecordOutcome(rec.key, job_id, status.status, "cached" if status.cached else status.detail or "")
