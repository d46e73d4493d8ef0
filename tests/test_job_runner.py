"""A new entry is a few lines around ``JobRunner``: here a consumer of some other queue, which knows an upload's
bucket and key, runs its job through the same lifecycle as the S3 trigger (skip rules, cache, results before
status, failures as a status)."""

from __future__ import annotations

from typing import Any

import numpy as np
from conftest import StubParser, encode_png
from humanparse.config import Settings
from humanparse.jobs.cache import ResultCache
from humanparse.jobs.keys import new_job_id
from humanparse.jobs.runner import JobRequest, JobRunner
from humanparse.jobs.status import JobSource, JobStatus
from humanparse.jobs.store import JobStore


def consume(runner: JobRunner, bucket: str, key: str, job_id: str) -> tuple[str, JobStatus | None]:
    """The whole entry: a message naming an upload → a job request → the runner."""
    stored = runner.store.head_upload(bucket, key)
    request = JobRequest(job_id, JobSource(bucket=bucket, key=key, etag=stored.etag if stored else None), stored)
    _, skip = runner.check(request)
    if skip:
        return skip, None
    status = runner.run(request)
    return status.status, status


def test_another_entry_runs_a_job_through_the_runner(aws: dict[str, Any], stub_parser: StubParser) -> None:
    settings = Settings(upload_bucket=aws["upload_bucket"], results_bucket=aws["results_bucket"],
                        s3_endpoint_url=aws["endpoint"])
    store = JobStore(aws["s3"], settings)
    runner = JobRunner(stub_parser, store, ResultCache(store, stub_parser, settings), settings)
    body = encode_png(np.full((64, 48, 3), 128, np.uint8))
    aws["s3"].put_object(Bucket=aws["upload_bucket"], Key="uploads/queue/a.png", Body=body, ContentType="image/png")
    job = new_job_id()

    state, status = consume(runner, aws["upload_bucket"], "uploads/queue/a.png", job)
    assert state == "done" and status is not None and status.width == 48 and status.height == 64
    stored_files = {k.rsplit("/", 1)[-1] for k in store.list_keys(f"results/{job}/")}
    assert set(status.files or []) | {"status.json"} == stored_files
    assert store.read_job(job) == status and stub_parser.calls == 1
    assert consume(runner, aws["upload_bucket"], "uploads/queue/a.png", job) == ("already processed", None)

    again = new_job_id()  # the same bytes as another job: copied from the cache, not parsed
    state, status = consume(runner, aws["upload_bucket"], "uploads/queue/a.png", again)
    assert state == "done" and status is not None and status.cached and stub_parser.calls == 1

    gone = new_job_id()  # a message about an upload that is not there: a failed job, not an exception
    state, status = consume(runner, aws["upload_bucket"], "uploads/queue/gone.png", gone)
    assert state == "failed" and status is not None and status.error == "upload_missing"
    view = store.job_view(gone)
    assert view is not None and view["status"] == "failed" and view["error"] == "upload_missing"
