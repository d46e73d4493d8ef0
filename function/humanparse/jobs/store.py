"""Where a job's state lives: one ``JobStore`` over one S3 client for creating uploads, reading and writing
``status.json``, writing result files and signing result URLs. Key names come from ``jobs.Layout``; the one
rule for "this object is not there" is ``is_missing``. Used by the HTTP app, the S3 trigger and the local runner."""

from __future__ import annotations

import base64
import json
import logging
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from humanparse.config import Settings
from humanparse.exceptions import JobTimedOut, StorageUnavailable
from humanparse.jobs.keys import Layout, is_video_type, new_job_id
from humanparse.pipeline.rendering import content_type

log = logging.getLogger("humanparse.jobs.store")

# S3 says NoSuchKey for GET, 404/NotFound for HEAD (no body to carry a code), NoSuchVersion for a gone version.
MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchVersion"})


def is_missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in MISSING_CODES


def _or_none(call: Any, bucket: str, key: str, version_id: str | None = None, **extra: Any) -> Any:
    """``call(Bucket=, Key=[, VersionId=], **extra)`` (an S3 client method), or None when the object is not
    there; every other error raises (transient ones must reach Lambda's retry)."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, **extra}
    if version_id:
        kwargs["VersionId"] = version_id
    try:
        return call(**kwargs)
    except ClientError as exc:
        if is_missing(exc):
            return None
        raise


def safe_filename(name: str, max_bytes: int = 200) -> str:
    """A user's file name made fit for ``x-amz-meta-filename``: control characters (CR/LF/NUL/DEL, Unicode
    Cc/Cf) removed — in a header they split or break it — quotes dropped, non-ASCII as ``?`` (S3 metadata is
    ASCII), cut to ``max_bytes``. Empty when nothing printable is left."""
    kept = "".join(ch for ch in unicodedata.normalize("NFC", name) if unicodedata.category(ch)[0] != "C")
    ascii_ = kept.encode("ascii", "replace").decode("ascii").replace('"', "").strip()
    return ascii_[:max_bytes]


@dataclass(frozen=True)
class StoredObject:
    """What S3 says about an upload: its real length and ETag (quotes stripped), and version if any."""

    size: int
    etag: str | None
    version_id: str | None
    content_type: str | None = None
    declared_sha256: str | None = None  # hex, from ``x-amz-meta-sha256`` (POST /uploads with a ``sha256``)


class JobStore:
    def __init__(self, s3: Any, settings: Settings) -> None:
        self.s3, self.settings = s3, settings
        self.layout = Layout(settings.upload_prefix, settings.results_prefix)

    # --------------------------------------------------------------------------------------------- uploads
    def create_upload(self, content_type: str, filename: str | None = None,
                      sha256: str | None = None) -> tuple[str, dict[str, Any]]:
        """A new job id and a presigned POST (``{"url", "fields"}``) for its upload; the policy pins the
        key, the type and the size range, and with ``sha256`` (hex) the bytes: S3 checks
        ``x-amz-checksum-sha256`` (base64) against what arrives, ``x-amz-meta-sha256`` tells the trigger."""
        s = self.settings
        job_id = new_job_id()
        fields: dict[str, str] = {"Content-Type": content_type}
        max_bytes = s.video_max_bytes if is_video_type(content_type) else s.max_upload_bytes
        conditions: list[Any] = [{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]]
        if sha256:
            bound = {"x-amz-checksum-algorithm": "SHA256",
                     "x-amz-checksum-sha256": base64.b64encode(bytes.fromhex(sha256)).decode("ascii"),
                     "x-amz-meta-sha256": sha256}
            fields.update(bound)
            conditions.extend({k: v} for k, v in bound.items())
        safe = safe_filename(filename or "", s.max_filename_bytes)
        if safe:
            fields["x-amz-meta-filename"] = safe
            conditions.append({"x-amz-meta-filename": safe})
        try:
            post: dict[str, Any] = self.s3.generate_presigned_post(
                Bucket=s.upload_bucket, Key=self.layout.upload_key(job_id, content_type), Fields=fields,
                Conditions=conditions, ExpiresIn=s.presign_expires_s)
        except (ClientError, BotoCoreError) as exc:
            raise StorageUnavailable(f"could not sign the upload: {exc}") from exc
        return job_id, {"url": post["url"], "fields": post["fields"]}

    def upload_arrived(self, job_id: str) -> bool:
        listed = self.s3.list_objects_v2(Bucket=self.settings.upload_bucket,
                                         Prefix=self.layout.upload_job_prefix(job_id), MaxKeys=1)
        return bool(listed.get("KeyCount"))

    def upload_exists(self, key: str) -> bool:
        """Is ``key`` stored in the upload bucket? A listing (the API's grant is ListBucket on the prefix)."""
        listed = self.s3.list_objects_v2(Bucket=self.settings.upload_bucket, Prefix=key, MaxKeys=1)
        return any(o.get("Key") == key for o in listed.get("Contents", []))

    def head_upload(self, bucket: str, key: str, version_id: str | None = None) -> StoredObject | None:
        """The stored object's own length and ETag, or None when it is not there."""
        head = _or_none(self.s3.head_object, bucket, key, version_id)
        if head is None:
            return None
        etag = head.get("ETag")
        declared = (head.get("Metadata") or {}).get("sha256")
        return StoredObject(int(head.get("ContentLength", 0)), str(etag).strip('"') if etag else None,
                            head.get("VersionId"), head.get("ContentType"),
                            str(declared).lower() if declared else None)

    def read_upload(self, bucket: str, key: str, limit: int, version_id: str | None = None) -> bytes | None:
        """At most ``limit + 1`` bytes of the object (so a caller can tell "over the limit"), or None if gone."""
        obj = _or_none(self.s3.get_object, bucket, key, version_id)
        return None if obj is None else bytes(obj["Body"].read(limit + 1))

    def download_upload(self, bucket: str, key: str, dest: Path, version_id: str | None = None) -> bool:
        """Stream the object to ``dest`` (a video: up to ``video_max_bytes``, never held in memory). False if gone."""
        obj = _or_none(self.s3.get_object, bucket, key, version_id)
        if obj is None:
            return False
        with dest.open("wb") as f:
            for block in iter(lambda: obj["Body"].read(1 << 20), b""):
                f.write(block)
        return True

    def read_head(self, bucket: str, key: str, n: int = 16) -> bytes:
        """The object's first ``n`` bytes (a ranged GET: enough to sniff a container's signature)."""
        try:
            obj = self.s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{n - 1}")
        except ClientError as exc:
            if is_missing(exc) or exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return b""
            raise
        return bytes(obj["Body"].read(n))

    # ------------------------------------------------------------------------------ video work objects
    def put_result_file(self, job_id: str, name: str, path: Path, content_type: str) -> None:
        with path.open("rb") as f:
            self.s3.put_object(Bucket=self.settings.output_bucket, Key=self.layout.result_key(job_id, name),
                               Body=f, ContentType=content_type)

    def put_object(self, key: str, path: Path, content_type: str = "application/octet-stream") -> None:
        with path.open("rb") as f:
            self.s3.put_object(Bucket=self.settings.output_bucket, Key=key, Body=f, ContentType=content_type)

    def get_object_to(self, key: str, dest: Path) -> bool:
        return self.download_upload(self.settings.output_bucket, key, dest)

    def list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.settings.output_bucket,
                                                                      Prefix=prefix):
            keys.extend(str(o["Key"]) for o in page.get("Contents", []))
        return keys

    def delete_keys(self, keys: list[str]) -> None:
        for key in keys:
            self.s3.delete_object(Bucket=self.settings.output_bucket, Key=key)

    def upload_url(self, bucket: str, key: str) -> str:
        """A presigned GET of an upload (the page's "Original" view of a video)."""
        url: str = self.s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                                  ExpiresIn=self.settings.result_url_expires_s)
        return url

    # ---------------------------------------------------------------------------------------------- status
    def read_status(self, job_id: str) -> dict[str, Any] | None:
        return self.read_json(self.layout.status_key(job_id))

    def write_status(self, job_id: str, doc: dict[str, Any]) -> None:
        self.s3.put_object(Bucket=self.settings.output_bucket, Key=self.layout.status_key(job_id),
                           Body=json.dumps(doc, ensure_ascii=False).encode("utf-8"),
                           ContentType="application/json", CacheControl="no-store")

    def write_results(self, job_id: str, files: dict[str, bytes]) -> None:
        """Every result file; call before ``write_status(done)`` so a reader that sees done sees them all."""
        for name, body in files.items():
            self.s3.put_object(Bucket=self.settings.output_bucket, Key=self.layout.result_key(job_id, name),
                               Body=body, ContentType=content_type(name))

    def result_url(self, job_id: str, name: str) -> str:
        url: str = self.s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.settings.output_bucket, "Key": self.layout.result_key(job_id, name)},
            ExpiresIn=self.settings.result_url_expires_s)
        return url

    def expire_overdue(self, job_id: str, status: dict[str, Any] | None) -> dict[str, Any] | None:
        """A ``running`` status past its ``deadline`` (epoch seconds: its worker died, its message went to the
        dead-letter queue) becomes ``failed`` (``job_timeout``), written back when this role may write it, so
        no job shows ``running`` forever. Anything else is returned as it is."""
        deadline = (status or {}).get("deadline")
        if status is None or status.get("status") != "running" or not isinstance(deadline, (int, float)) \
                or time.time() <= deadline:
            return status
        over = JobTimedOut(f"the job was still running {time.time() - deadline:.0f} s past its deadline; "
                           "it was stopped. Upload the file again to retry.")
        failed: dict[str, Any] = {k: status[k] for k in ("kind", "job_id", "source") if k in status}
        failed.update(status="failed", **over.to_dict())
        try:
            self.write_status(job_id, failed)
        except (ClientError, BotoCoreError):
            log.warning("job %s is overdue; its failed status could not be written", job_id)
        return failed

    def job_view(self, job_id: str) -> dict[str, Any] | None:
        """The public answer for a job: pending / done (with signed result URLs) / failed (``error`` +
        ``detail``; results written by old versions said ``reason``). None when neither status nor upload exist."""
        try:
            status = self.expire_overdue(job_id, self.read_status(job_id))
            if status is None:
                return {"job_id": job_id, "status": "pending"} if self.upload_arrived(job_id) else None
            out: dict[str, Any] = {"job_id": job_id, "status": status.get("status")}
            if status.get("kind") == "video":
                out.update(self._video_view(job_id, status))
            if status.get("status") == "failed":
                out.update(error=status.get("error"), detail=status.get("detail", status.get("reason")))
                return out
            if status.get("status") != "done":
                return out
            out["results"] = {name: self.result_url(job_id, name) for name in status.get("files", [])}
        except (ClientError, BotoCoreError) as exc:
            raise StorageUnavailable(str(exc)) from exc
        out.update({k: status[k] for k in ("model", "width", "height", "person_count", "elapsed_ms", "cached")
                    if k in status})
        return out

    def _video_view(self, job_id: str, status: dict[str, Any]) -> dict[str, Any]:
        """A video job's extra answer: kind, progress (a split job sums its chunks' progress objects) and the
        original upload's URL (the page's "Original" view)."""
        out: dict[str, Any] = {"kind": "video", "frames_total": status.get("frames_total"),
                               "frames_done": status.get("frames_done", 0)}
        if status.get("status") == "running" and int(status.get("chunks", 1)) > 1:
            done = 0
            for key in self.list_keys(self.layout.work_prefix(job_id)):
                if key.endswith(".progress"):
                    obj = self.s3.get_object(Bucket=self.settings.output_bucket, Key=key)
                    done += int(obj["Body"].read() or b"0")
            out["frames_done"] = done
        src = status.get("source", {})
        if src.get("bucket") and src.get("key"):
            out["original"] = self.upload_url(src["bucket"], src["key"])
        return out

    # ------------------------------------------------------------------------ result cache
    def cache_key_name(self, key: str) -> str:
        """The index object of a cache key, in the results bucket beside (not inside) the results prefix, so
        ``results/`` holds job folders only; the template's lifecycle rule on ``cache/`` expires it as
        ``results/``. Outside the uploads prefix, so it never triggers a parse when both share a bucket."""
        return f"cache/{key}.json"

    def read_json(self, key: str) -> dict[str, Any] | None:
        """A small JSON object of the results bucket, or None when it is not there."""
        obj = _or_none(self.s3.get_object, self.settings.output_bucket, key)
        if obj is None:
            return None
        doc: dict[str, Any] = json.loads(obj["Body"].read())
        return doc

    def put_json(self, key: str, doc: dict[str, Any]) -> None:
        """One PUT: S3 stores the whole object or nothing, so a reader never sees half an index."""
        self.s3.put_object(Bucket=self.settings.output_bucket, Key=key, ContentType="application/json",
                           Body=json.dumps(doc, ensure_ascii=False).encode("utf-8"), CacheControl="no-store")

    def read_result(self, job_id: str, name: str) -> bytes | None:
        obj = _or_none(self.s3.get_object, self.settings.output_bucket, self.layout.result_key(job_id, name))
        return None if obj is None else bytes(obj["Body"].read())

    def copy_results(self, src_job: str, dst_job: str, names: list[str]) -> bool:
        """Server-side copies (CopyObject: no bytes through us, no re-encode) of ``names``; False as soon as a
        source is gone (lifecycle removed it). Call before ``write_status(done)``, as ``write_results``."""
        bucket = self.settings.output_bucket

        def copy(name: str) -> bool:
            try:
                self.s3.copy_object(Bucket=bucket, Key=self.layout.result_key(dst_job, name),
                                    CopySource={"Bucket": bucket, "Key": self.layout.result_key(src_job, name)},
                                    MetadataDirective="COPY")
            except ClientError as exc:
                if is_missing(exc):
                    return False
                raise
            return True

        # at once: each copy is a round trip (and a durable write on the local runner); a hit's 7 copies one
        # after another were most of its time
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(names)))) as pool:
            return all(list(pool.map(copy, names)))
