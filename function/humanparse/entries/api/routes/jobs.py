"""``GET /jobs/{job_id}``: pending, done (signed result URLs) or failed (``error`` + ``detail``).
``GET /jobs?key=<source key>``: the same answer for an object put straight into the upload bucket (``aws s3 cp``,
a bulk copy, a backfill): its job id is derived from the key (``jobs.Layout.job_id_for_key``), so the key is
all its owner needs."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import APIRouter, Query

from humanparse.entries.api.deps import SettingsDep, StoreDep
from humanparse.exceptions import BadJobId, InvalidRequest, JobNotFound, StorageUnavailable
from humanparse.jobs.keys import is_job_id

router = APIRouter()


@router.get("/jobs")
def get_job_by_key(store: StoreDep, settings: SettingsDep,
                   key: str = Query(description="the object's key in the upload bucket, as stored (URL-encode it "
                                                "in the query string), e.g. uploads/shoot 1/IMG_0001.jpg")
                   ) -> dict[str, Any]:
    if not store.layout.in_uploads(key):
        raise InvalidRequest(f"keys start with {settings.upload_prefix!r} (and have no '.' or '..' segments)")
    job_id = store.layout.job_id_for_key(key)
    view = store.job_view(job_id)
    if view is None:
        try:
            arrived = store.upload_exists(key)
        except (ClientError, BotoCoreError) as exc:
            raise StorageUnavailable(str(exc)) from exc
        if not arrived:
            raise JobNotFound(f"nothing stored under {key!r}")
        view = {"job_id": job_id, "status": "pending"}
    return {**view, "key": key}


@router.get("/jobs/{job_id}")
def get_job(job_id: str, store: StoreDep) -> dict[str, Any]:
    if not is_job_id(job_id):
        raise BadJobId()
    view = store.job_view(job_id)
    if view is None:
        raise JobNotFound()
    return view
