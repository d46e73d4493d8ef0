"""``POST /uploads``: a job id and a presigned POST the browser sends the photo with."""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from humanparse.entries.api.deps import CacheDep, SettingsDep, StoreDep
from humanparse.entries.api.limits import JsonCappedRoute
from humanparse.exceptions import EmptyInput, ImageTooLarge, UnsupportedFormat, VideoTooLarge
from humanparse.jobs.keys import is_video_type, new_job_id

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


@router.post("/uploads", status_code=201)
def create_upload(req: UploadRequest, request: Request, settings: SettingsDep, store: StoreDep,
                  cache: CacheDep) -> dict[str, Any]:
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
            hit = cache.reuse(sha256, job_id, {"via": "POST /uploads"})
        except (ClientError, BotoCoreError):  # the cache only saves work: a storage hiccup means "upload it"
            log.warning("cache look-up failed; uploading instead", exc_info=True)
            hit = None
        if hit is not None:
            # the photo never leaves the browser: the job is done already, no presigned POST
            return {"job_id": job_id, "status": "done", "cached": True, "status_url": f"{jobs}/{job_id}"}
    job_id, upload = store.create_upload(ct, req.filename, sha256)
    return {"job_id": job_id, "upload": upload, "expires_in": settings.presign_expires_s,
            "max_bytes": max_bytes, "status_url": f"{jobs}/{job_id}", "kind": "video" if video else "image"}
