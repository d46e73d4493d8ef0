"""Job ids and where a job's objects live. Results are addressed by server-generated ids only, so no
user-controlled key text ever becomes part of an output key (no traversal, no odd characters)."""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass

JOB_ID_RE = re.compile(r"^[0-9a-f]{32}$")
UPLOAD_NAME = "image"
VIDEO_UPLOAD_NAME = "video"
# The accepted upload types, spelled once, and the extension each gives the upload's key (the S3 notification
# filters on these suffixes). ``Settings.allowed_content_types`` defaults to these keys.
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp",
              "video/mp4": "mp4", "video/quicktime": "mov", "video/webm": "webm"}
VIDEO_TYPES = frozenset(ct for ct in EXTENSIONS if ct.startswith("video/"))
VIDEO_SUFFIXES = frozenset(f".{EXTENSIONS[ct]}" for ct in VIDEO_TYPES) | {".m4v", ".mkv"}
STATUS_NAME = "status.json"


def new_job_id() -> str:
    return uuid.uuid4().hex


def is_job_id(value: str) -> bool:
    return bool(JOB_ID_RE.match(value))


def is_video_type(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() in VIDEO_TYPES


def is_video_key(key: str) -> bool:
    """By the key's suffix (what the S3 notification filters on)."""
    return any(key.lower().endswith(sfx) for sfx in VIDEO_SUFFIXES)


@dataclass(frozen=True)
class Layout:
    upload_prefix: str  # e.g. "uploads/"
    results_prefix: str  # e.g. "results/"

    def upload_key(self, job_id: str, content_type: str = "image/jpeg") -> str:
        name = VIDEO_UPLOAD_NAME if is_video_type(content_type) else UPLOAD_NAME
        return f"{self.upload_prefix}{job_id}/{name}.{EXTENSIONS.get(content_type, 'jpg')}"

    def upload_job_prefix(self, job_id: str) -> str:
        return f"{self.upload_prefix}{job_id}/"

    def result_key(self, job_id: str, name: str) -> str:
        return f"{self.results_prefix}{job_id}/{name}"

    def status_key(self, job_id: str) -> str:
        return self.result_key(job_id, STATUS_NAME)

    def work_prefix(self, job_id: str) -> str:
        """A split video job's intermediate files (one zip per chunk), removed after the join."""
        return self.result_key(job_id, "work/")

    def chunk_key(self, job_id: str, index: int) -> str:
        return f"{self.work_prefix(job_id)}chunk-{index:04d}.zip"

    def in_uploads(self, key: str) -> bool:
        """True for keys we process: under the uploads prefix, not under results, no ``.``/``..`` segments
        (S3 treats them literally, but a key that *reads* as escaping the prefix is refused outright), not a
        folder marker (``.../``, what the S3 console's "Create folder" writes). The S3 notification filters on
        the prefix only (suffix filters are case-sensitive), so this is the filter."""
        if not key.startswith(self.upload_prefix) or key.startswith(self.results_prefix) or key.endswith("/"):
            return False
        rest = key[len(self.upload_prefix):]
        return bool(rest) and not any(seg in (".", "..") for seg in rest.split("/")) and len(key) <= 1024

    def job_id_for_key(self, key: str) -> str:
        """``uploads/<job id>/image.<ext>`` (what POST /uploads hands out) → that id; any other key under the
        uploads prefix (a bulk copy, a backfill) → a stable hash of the key, so duplicates map to one job."""
        rest = key[len(self.upload_prefix):]
        parts = rest.split("/")
        if len(parts) == 2 and is_job_id(parts[0]) and parts[1].split(".")[0] in (UPLOAD_NAME, VIDEO_UPLOAD_NAME):
            return parts[0]
        return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
