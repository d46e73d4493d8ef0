"""On AWS the durability promise rests on S3: the trigger's writes must stay right when Lambda runs an
invocation again after it timed out midway, and when the upload is gone before its parse."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import encode_jpeg
from humanparse.entries.events import parse_s3_event
from humanparse.entries.service import build_service
from test_lambda_s3 import event_for, put, settings_for, status


class LambdaTimeout(BaseException):
    """What the trigger sees when Lambda stops an invocation at its timeout: nothing after this runs."""


class RecordingS3:
    """boto3's S3 client, passed through; notes each ``put_object`` key and can stop the run at the n-th."""

    def __init__(self, s3: Any, stop_at_put: int | None = None) -> None:
        self._s3, self.stop_at_put, self.puts = s3, stop_at_put, []

    def put_object(self, **kw: Any) -> Any:
        if self.stop_at_put is not None and len(self.puts) + 1 == self.stop_at_put:
            raise LambdaTimeout
        self.puts.append(kw["Key"])
        return self._s3.put_object(**kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)


def _uploaded_event(aws: dict[str, Any], photo: np.ndarray) -> tuple[dict[str, Any], str]:
    ev = event_for("s3-put-spaces-plus-unicode.json", aws["upload_bucket"])
    key = parse_s3_event(ev)[0].key
    meta = put(aws, key, encode_jpeg(photo, quality=90))
    return event_for("s3-put-spaces-plus-unicode.json", aws["upload_bucket"], **meta), key


def _pending(aws: dict[str, Any], job: str) -> bool:
    try:
        status(aws, job)
    except aws["s3"].exceptions.NoSuchKey:
        return True
    return False


def test_rerun_after_a_timeout_midway_rewrites_results_and_writes_status_last(
        aws: dict[str, Any], lite_parser: Any, photo: np.ndarray) -> None:
    ev, _ = _uploaded_event(aws, photo)
    first = RecordingS3(aws["s3"], stop_at_put=3)  # killed after two result files
    with pytest.raises(LambdaTimeout):
        build_service(settings_for(aws), lite_parser, first).handler(ev, None)
    job = first.puts[0].split("/")[1]
    assert len(first.puts) == 2 and _pending(aws, job)  # half the files, no status: still pending, not done

    again = RecordingS3(aws["s3"])  # Lambda's retry of the same event
    (rec,) = build_service(settings_for(aws), lite_parser, again).handler(ev, None)["records"]
    st = status(aws, job)
    assert rec["status"] == "done" and st["status"] == "done"
    job_puts = [k for k in again.puts if k.startswith(f"results/{job}/")]  # the cache index comes after
    assert job_puts[-1].endswith("/status.json")  # written last
    assert {k.rsplit("/", 1)[1] for k in job_puts[:-1]} == set(st["files"])  # every file rewritten
    assert set(first.puts) <= set(again.puts)  # the half-written ones included
    for name in st["files"]:
        assert aws["s3"].head_object(Bucket=aws["results_bucket"], Key=f"results/{job}/{name}")["ContentLength"] > 0


def test_upload_deleted_before_its_parse_ends_failed_with_a_reason(
        aws: dict[str, Any], lite_parser: Any, photo: np.ndarray) -> None:
    ev, key = _uploaded_event(aws, photo)
    aws["s3"].delete_object(Bucket=aws["upload_bucket"], Key=key)
    svc = build_service(settings_for(aws), lite_parser, aws["s3"])
    (rec,) = svc.handler(ev, None)["records"]  # returns normally: no retry storm for a gone object
    st = status(aws, rec["job_id"])
    assert rec["status"] == "failed" and st["status"] == "failed" and st["error"]
    assert "no longer exists" in (st.get("detail") or st.get("reason") or "")
    assert svc.handler(ev, None)["records"][0]["status"] == "skipped"  # redelivery keeps the final answer
