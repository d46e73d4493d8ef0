"""``POST /uploads``: a job id and a presigned POST the browser sends the photo with."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ...exceptions import EmptyInput, ImageTooLarge, UnsupportedFormat, VideoTooLarge
from ...jobs import is_video_type
from ..deps import SettingsDep, StoreDep
from ..limits import JsonCappedRoute

router = APIRouter(route_class=JsonCappedRoute)


class UploadRequest(BaseModel):
    content_type: str = Field(description="MIME type the browser will send, e.g. image/jpeg")
    filename: str | None = Field(default=None, max_length=255,
                                 description="kept as metadata, control characters removed, cut to 200 bytes")
    size: int | None = Field(default=None, ge=0, description="bytes, if known: refused early when too big")


@router.post("/uploads", status_code=201)
def create_upload(req: UploadRequest, settings: SettingsDep, store: StoreDep) -> dict[str, Any]:
    ct = req.content_type.split(";")[0].strip().lower()
    if ct not in settings.allowed_content_types:
        raise UnsupportedFormat(f"{ct or 'no type'} is not accepted; send one of "
                                f"{', '.join(settings.allowed_content_types)}")
    video = is_video_type(ct)
    max_bytes = settings.video_max_bytes if video else settings.max_upload_bytes
    if req.size is not None and req.size > max_bytes:
        raise (VideoTooLarge if video else ImageTooLarge)(f"{req.size} bytes is over the {max_bytes} byte limit")
    if req.size == 0:
        raise EmptyInput()
    job_id, upload = store.create_upload(ct, req.filename)
    return {"job_id": job_id, "upload": upload, "expires_in": settings.presign_expires_s,
            "max_bytes": max_bytes, "status_url": f"/jobs/{job_id}", "kind": "video" if video else "image"}
