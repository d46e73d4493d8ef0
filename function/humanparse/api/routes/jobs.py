"""``GET /jobs/{job_id}``: pending, done (signed result URLs) or failed (``error`` + ``detail``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ...exceptions import BadJobId, JobNotFound
from ...jobs import is_job_id
from ..deps import StoreDep

router = APIRouter()


@router.get("/jobs/{job_id}")
def get_job(job_id: str, store: StoreDep) -> dict[str, Any]:
    if not is_job_id(job_id):
        raise BadJobId()
    view = store.job_view(job_id)
    if view is None:
        raise JobNotFound()
    return view
