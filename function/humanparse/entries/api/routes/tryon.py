"""``GET /jobs/{job_id}/tryon?category=upper_body&person=1&image=mask|agnostic|parse_agnostic``: one try-on image
of a finished photo job, drawn from what the job stored (label and persons maps, keypoints, the uploaded photo):
no second parse and no photo in the request, so a photo over ``POST /parse``'s body cap (a 12 MP phone JPEG is
4-6 MB) has its try-on images too. The PNG is the answer when it fits Lambda's 6 MB response cap; a larger one
(a 12 MP agnostic image) is stored beside the job's results and handed out as a presigned GET: a 303 redirect
(``curl -L``), or with ``large=url`` a JSON ``{name, url, bytes}`` (the page: a browser following a cross-origin
redirect sends ``Origin: null``, which the results bucket's CORS rule does not allow)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, ParamSpec, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from humanparse.entries.api.deps import StoreDep
from humanparse.entries.api.routes.parse import MAX_SYNC_RESPONSE, wanted
from humanparse.exceptions import BadJobId, InvalidRequest, StorageUnavailable
from humanparse.jobs.keys import is_job_id
from humanparse.jobs.store import JobStore
from humanparse.pipeline.rendering import content_type
from humanparse.pipeline.tryon_files import TRYON_IMAGES, JobTryOn, job_tryon

router = APIRouter()
P = ParamSpec("P")
T = TypeVar("T")
LARGE = ("redirect", "url")


@router.get("/jobs/{job_id}/tryon",
            responses={200: {"description": "the try-on PNG (or, with large=url and a PNG over the response cap, "
                                            "JSON {name, url, bytes})", "content": {"image/png": {}}},
                       303: {"description": "a PNG over the response cap: a presigned GET of the stored file"},
                       404: {"description": "no such job, or its results expired"},
                       409: {"description": "job_not_done: pending, running or failed"},
                       422: {"description": "unknown_category, unknown_person, no_person, nothing_to_mask"}})
async def get_job_tryon(job_id: str, store: StoreDep,
                        category: Annotated[str | None, Query(description="upper_body, lower_body, dresses, "
                                                                          "full_body")] = None,
                        person: Annotated[int, Query(description="1 = the strongest person")] = 1,
                        image: Annotated[str, Query(description=", ".join(TRYON_IMAGES))] = "mask",
                        large: Annotated[str, Query(description="a PNG over the response cap: redirect (303 to "
                                                                "a presigned GET) or url (JSON with it)")] = "redirect",
                        ) -> Response:
    if not is_job_id(job_id):
        raise BadJobId()
    wanted("tryon", category, person, image)  # unknown category / image / person < 1: refused before any read
    if large not in LARGE:
        raise InvalidRequest(f"large must be one of {', '.join(LARGE)}")
    assert category is not None
    got = await run_in_threadpool(_guarded, job_tryon, store, job_id, category, person, image)
    headers = {"X-Humanparse-Tryon": "stored" if got.stored else "drawn"}
    if len(got.body) * 4 // 3 <= MAX_SYNC_RESPONSE:  # Lambda sends binary bodies base64-encoded
        return Response(got.body, media_type=content_type(got.name), headers=headers)
    url = await run_in_threadpool(_guarded, _link, store, job_id, got)
    if large == "url":
        return JSONResponse({"name": got.name, "url": url, "bytes": len(got.body)}, headers=headers)
    return RedirectResponse(url, status_code=303, headers=headers)


def _link(store: JobStore, job_id: str, got: JobTryOn) -> str:
    """A presigned GET of the image, stored beside the job's results first unless it is one of them."""
    if not got.stored:
        store.write_results(job_id, {got.name: got.body})
    return store.result_url(job_id, got.name)


def _guarded(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(...)`` with storage trouble as ``storage_unavailable`` (503), as the other job routes answer it."""
    try:
        return fn(*args, **kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise StorageUnavailable(str(exc)) from exc
