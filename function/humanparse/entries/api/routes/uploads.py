"""``POST /uploads``: a job id and a presigned POST the browser sends the photo with."""

from __future__ import annotations

import logging
from typing import Literal

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from humanparse.entries.api.deps import CacheDep, SettingsDep, StoreDep
from humanparse.entries.api.limits import JsonCappedRoute
from humanparse.exceptions import EmptyInput, ImageTooLarge, UnsupportedFormat, VideoTooLarge
from humanparse.jobs.keys import is_video_type, new_job_id
from humanparse.jobs.status import JobSource

router = APIRouter(route_class=JsonCappedRoute)
log = logging.getLogger("humanparse.entries.api")


class UploadRequest(BaseModel):
    content_type: str = Field(description="MIME type the browser will send, e.g. image/jpeg")
    filename: str | None = Field(default=None, max_length=255,
                                 description="kept as metadata, control characters removed, cut to 200 bytes")
    size: int | None = Field(default=None, ge=0, description="bytes, if known: refused early when too big")
    sha256: str | None = Field(default=None, pattern="^[0-9a-fA-F]{64}$",
                               description="SHA-256 of the file (hex): a known photo is answered from the cache "
                                           "(no upload); otherwise the upload must be exactly these bytes")


class PresignedPost(BaseModel):
    url: str = Field(description="where to POST the form")
    fields: dict[str, str] = Field(description="form fields to send before the file field")


class UploadCreated(BaseModel):
    """A new job: a presigned POST to send the file with, or (a photo the cache knows) a job already done."""

    job_id: str
    status_url: str = Field(description="GET it for the job's status (a JobStatus)")
    upload: PresignedPost | None = Field(default=None, description="absent when the job is done already")
    expires_in: int | None = Field(default=None, description="seconds the presigned POST stays valid")
    max_bytes: int | None = Field(default=None, description="the largest file the storage accepts")
    kind: Literal["image", "video"] | None = None
    status: Literal["done"] | None = Field(default=None, description="done already: answered from the cache")
    cached: bool | None = Field(default=None, description="true when answered from the cache (no upload)")


# response_model_exclude_unset: each of the two answers has only its own fields, as before the model
@router.post("/uploads", status_code=201, response_model=UploadCreated, response_model_exclude_unset=True)
def create_upload(req: UploadRequest, request: Request, settings: SettingsDep, store: StoreDep,
                  cache: CacheDep) -> UploadCreated:
    ct = req.content_type.split(";")[0].strip().lower()
    # the API's own prefix (the local runner mounts it at /api, Lambda serves it at the root), so the URL works
    # as given
    jobs = f"{request.scope.get('root_path', '')}/jobs"
    if ct not in settings.allowed_content_types:
        raise UnsupportedFormat(f"{ct or 'no type'} is not accepted; send one of "
                                f"{', '.join(settings.allowed_content_types)}")
    video = is_video_type(ct)
    max_bytes = settings.video_max_bytes if video else settings.max_upload_bytes
    if req.size is not None and req.size > max_bytes:
        raise (VideoTooLarge if video else ImageTooLarge)(f"{req.size} bytes is over the {max_bytes} byte limit")
    if req.size == 0:
        raise EmptyInput()
    # videos are not cached (each clip is parsed): a declared hash would only be a check nobody reads
    sha256 = req.sha256.lower() if req.sha256 and not video else None
    if sha256 and cache.enabled:
        job_id = new_job_id()
        try:
            hit = cache.reuse(sha256, job_id, JobSource(via="POST /uploads"))
        except (ClientError, BotoCoreError):  # the cache only saves work: a storage hiccup means "upload it"
            log.warning("cache look-up failed; uploading instead", exc_info=True)
            hit = None
        if hit is not None:
            # the photo never leaves the browser: the job is done already, no presigned POST
            return UploadCreated(job_id=job_id, status="done", cached=True, status_url=f"{jobs}/{job_id}")
    job_id, upload = store.create_upload(ct, req.filename, sha256)
    return UploadCreated(job_id=job_id, upload=PresignedPost.model_validate(upload),
                         expires_in=settings.presign_expires_s, max_bytes=max_bytes, status_url=f"{jobs}/{job_id}",
                         kind="video" if video else "image")
