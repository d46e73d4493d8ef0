"""S3 upload trigger: parse each new object under the uploads prefix and write its results.

Contract per record:
- outside the uploads prefix (our own results included) → ignored, so output can never retrigger us;
- already done or failed for the same object version/ETag → skipped (at-least-once delivery is harmless);
- a bad upload (not an image, too big, truncated, deleted) → ``status.json`` with ``failed`` and the reason,
  and the handler returns normally (no retry storm);
- a transient error (S3 unavailable, throttled) → raised, so Lambda retries and finally the DLQ gets it.
Artefacts are written first and ``status.json`` last: a reader that sees ``done`` sees the whole set.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from .config import Settings
from .engine.types import Parser
from .events import S3ObjectRecord, is_backfill_batch, parse_backfill_batch, parse_s3_event
from .exceptions import ImageTooLarge, InputError
from .imageio import decode_image
from .jobs import Layout
from .rendering import ARTIFACTS, render_all

log = logging.getLogger("humanparse.s3")

_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}


def _sequencer_older(new: str | None, seen: str | None) -> bool:
    """S3's per-key event order: sequencers are hex strings, compared after left-padding to equal length."""
    if not new or not seen:
        return False
    n = max(len(new), len(seen))
    return new.upper().rjust(n, "0") < seen.upper().rjust(n, "0")


@dataclass
class RecordOutcome:
    key: str
    job_id: str | None
    status: str  # "done" | "failed" | "skipped" | "ignored"
    reason: str = ""


class S3Trigger:
    def __init__(self, parser: Parser, s3: Any, settings: Settings) -> None:
        self.parser, self.s3, self.settings = parser, s3, settings
        self.layout = Layout(settings.upload_prefix, settings.results_prefix)

    # ------------------------------------------------------------------------------------------- status
    def read_status(self, job_id: str) -> dict[str, Any] | None:
        try:
            obj = self.s3.get_object(Bucket=self.settings.output_bucket, Key=self.layout.status_key(job_id))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING_CODES:
                return None
            raise
        doc: dict[str, Any] = json.loads(obj["Body"].read())
        return doc

    def _write_status(self, job_id: str, doc: dict[str, Any]) -> None:
        self.s3.put_object(Bucket=self.settings.output_bucket, Key=self.layout.status_key(job_id),
                           Body=json.dumps(doc, ensure_ascii=False).encode("utf-8"),
                           ContentType="application/json", CacheControl="no-store")

    # ------------------------------------------------------------------------------------------ records
    def handle_event(self, event: Any) -> dict[str, Any]:
        """An S3 notification, or a backfill batch from the Step Functions Distributed Map."""
        records = parse_backfill_batch(event) if is_backfill_batch(event) else parse_s3_event(event)
        outcomes = [self.handle_record(r) for r in records]
        return {"records": [o.__dict__ for o in outcomes],
                "failed": sum(o.status == "failed" for o in outcomes)}

    def handle_record(self, rec: S3ObjectRecord) -> RecordOutcome:
        if not rec.is_create or not self.layout.in_uploads(rec.key) or rec.bucket != self.settings.upload_bucket:
            return RecordOutcome(rec.key, None, "ignored", "not an upload under the uploads prefix")
        job_id = self.layout.job_id_for_key(rec.key)
        identity = {"bucket": rec.bucket, "key": rec.key, "etag": rec.etag, "version_id": rec.version_id,
                    "sequencer": rec.sequencer}
        prior = self.read_status(job_id)
        if prior and prior.get("status") in ("done", "failed"):
            src = prior.get("source", {})
            if src.get("etag") == rec.etag and src.get("version_id") == rec.version_id:
                return RecordOutcome(rec.key, job_id, "skipped", "already processed")
            if _sequencer_older(rec.sequencer, src.get("sequencer")):
                return RecordOutcome(rec.key, job_id, "skipped", "stale event: a newer write was processed")
        t0 = time.perf_counter()
        try:
            data, actual_etag = self._fetch(rec)
            if actual_etag:
                identity["etag"] = actual_etag  # what was parsed, should the object have changed since the event
            decoded = decode_image(data, max_megapixels=self.settings.max_megapixels)
            result = self.parser.parse(decoded.rgb)
        except InputError as exc:
            self._write_status(job_id, {"status": "failed", "job_id": job_id, "error": exc.code,
                                        "reason": str(exc), "source": identity})
            log.info("job %s failed: %s", job_id, exc)
            return RecordOutcome(rec.key, job_id, "failed", str(exc))
        files = render_all(result, decoded.rgb, alpha=self.settings.overlay_alpha,
                           extra={"job_id": job_id, "input": {"format": decoded.format, "mode": decoded.original_mode,
                                                              "frames": decoded.frames,
                                                              "exif_rotated": decoded.exif_rotated}})
        for name, body in files.items():
            self.s3.put_object(Bucket=self.settings.output_bucket, Key=self.layout.result_key(job_id, name),
                               Body=body, ContentType=ARTIFACTS[name])
        self._write_status(job_id, {
            "status": "done", "job_id": job_id, "source": identity, "files": list(files),
            "model": result.model.kind, "width": result.width, "height": result.height,
            "person_count": len(result.persons), "elapsed_ms": round(1000 * (time.perf_counter() - t0), 1)})
        return RecordOutcome(rec.key, job_id, "done")

    def _fetch(self, rec: S3ObjectRecord) -> tuple[bytes, str | None]:
        limit = self.settings.max_upload_bytes
        if rec.size is not None and rec.size > limit:
            raise ImageTooLarge(f"upload is {rec.size} bytes; the limit is {limit}")
        kwargs: dict[str, Any] = {"Bucket": rec.bucket, "Key": rec.key}
        if rec.version_id:
            kwargs["VersionId"] = rec.version_id
        try:
            obj = self.s3.get_object(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in _MISSING_CODES or code == "NoSuchVersion":
                from .exceptions import EmptyInput

                raise EmptyInput("the uploaded object no longer exists") from exc
            raise
        body = obj["Body"].read(limit + 1)
        if len(body) > limit:
            raise ImageTooLarge(f"upload is larger than {limit} bytes")
        etag = obj.get("ETag")
        return bytes(body), (str(etag).strip('"') if etag else None)
