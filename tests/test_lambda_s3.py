"""The Lambda handler entry on real S3 event payloads, against moto's S3 server (boto3 over HTTP).
Uploads go in through a real presigned POST (multipart form) where the flow uses one."""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import numpy as np
import pytest
import requests
from conftest import EVENTS, encode_jpeg
from humanparse.config import Settings
from humanparse.entries.events import parse_s3_event
from humanparse.entries.service import build_service
from humanparse.jobs.keys import Layout
from PIL import Image


def settings_for(aws: dict[str, Any], **kw: Any) -> Settings:
    return Settings(upload_bucket=aws["upload_bucket"], results_bucket=aws["results_bucket"],
                    s3_endpoint_url=aws["endpoint"], **kw)


@pytest.fixture()
def svc(aws: dict[str, Any], stub_parser: Any) -> Any:
    """The trigger under test with the stub parser; ``lite_svc`` runs the real lite model end to end."""
    return build_service(settings_for(aws), stub_parser, aws["s3"])


@pytest.fixture()
def lite_svc(aws: dict[str, Any], lite_parser: Any) -> Any:
    return build_service(settings_for(aws), lite_parser, aws["s3"])


def event_for(name: str, bucket: str, etag: str | None = None, size: int | None = None) -> dict[str, Any]:
    ev = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    for r in ev.get("Records", []):
        r["s3"]["bucket"]["name"] = bucket
        r["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
        r["s3"]["object"].pop("versionId", None)  # the test bucket is not versioned
        if etag is not None:
            r["s3"]["object"]["eTag"] = etag
        if size is not None:
            r["s3"]["object"]["size"] = size
    return ev


def put(aws: dict[str, Any], key: str, body: bytes, ctype: str = "image/jpeg") -> dict[str, Any]:
    resp = aws["s3"].put_object(Bucket=aws["upload_bucket"], Key=key, Body=body, ContentType=ctype)
    return {"etag": resp["ETag"].strip('"'), "size": len(body)}


def status(aws: dict[str, Any], job: str) -> dict[str, Any]:
    body = aws["s3"].get_object(Bucket=aws["results_bucket"], Key=f"results/{job}/status.json")["Body"].read()
    return json.loads(body)  # type: ignore[no-any-return]


def test_unicode_key_end_to_end(aws: dict[str, Any], lite_svc: Any, photo: np.ndarray) -> None:
    """End to end on the real lite model."""
    svc = lite_svc
    ev = event_for("s3-put-spaces-plus-unicode.json", aws["upload_bucket"])
    key = parse_s3_event(ev)[0].key
    meta = put(aws, key, encode_jpeg(photo, quality=90))
    ev = event_for("s3-put-spaces-plus-unicode.json", aws["upload_bucket"], **meta)
    out = svc.handler(ev, None)  # the Lambda entry, as AWS calls it
    (rec,) = out["records"]
    assert rec["status"] == "done" and rec["key"] == key
    st = status(aws, rec["job_id"])
    assert st["status"] == "done" and st["source"]["key"] == key and st["width"] == photo.shape[1]
    color = aws["s3"].get_object(Bucket=aws["results_bucket"], Key=f"results/{rec['job_id']}/color.png")
    img = Image.open(io.BytesIO(color["Body"].read()))
    assert img.size == (photo.shape[1], photo.shape[0])


def test_presigned_post_then_trigger(aws: dict[str, Any], svc: Any, photo: np.ndarray) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(svc.app)
    r = client.post("/uploads", json={"content_type": "image/jpeg", "filename": "a b.jpg"})
    assert r.status_code == 201, r.text
    up = r.json()
    data = encode_jpeg(photo)
    res = requests.post(up["upload"]["url"], data=up["upload"]["fields"],
                        files={"file": ("a b.jpg", data, "image/jpeg")}, timeout=30)
    assert res.status_code in (200, 204), res.text
    assert client.get(f"/jobs/{up['job_id']}").json()["status"] == "pending"
    key = Layout("uploads/", "results/").upload_key(up["job_id"], "image/jpeg")
    head = aws["s3"].head_object(Bucket=aws["upload_bucket"], Key=key)
    ev = event_for("s3-post-presigned.json", aws["upload_bucket"], etag=head["ETag"].strip('"'), size=len(data))
    ev["Records"][0]["s3"]["object"]["key"] = key
    assert svc.handler(ev, None)["records"][0]["status"] == "done"
    job = client.get(f"/jobs/{up['job_id']}").json()
    assert job["status"] == "done" and set(job["results"]) >= {"label.png", "color.png", "overlay.jpg", "result.json"}
    got = requests.get(job["results"]["label.png"], timeout=30)
    assert got.status_code == 200
    assert np.asarray(Image.open(io.BytesIO(got.content))).shape == photo.shape[:2]


def test_duplicate_delivery_gives_one_result_set(aws: dict[str, Any], svc: Any, photo: np.ndarray) -> None:
    key = "uploads/batch/a 1.jpg"
    meta = put(aws, key, encode_jpeg(photo))
    ev = event_for("s3-multi-record.json", aws["upload_bucket"], **meta)
    ev["Records"] = ev["Records"][:1]
    first = svc.handler(copy.deepcopy(ev), None)["records"][0]
    st1 = status(aws, first["job_id"])
    second = svc.handler(copy.deepcopy(ev), None)["records"][0]
    assert first["status"] == "done" and second["status"] == "skipped"
    assert status(aws, first["job_id"]) == st1  # untouched
    keys = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket=aws["results_bucket"], Prefix="results/")["Contents"]]
    # 6 parse files, keypoints.json, atr.png, lip.png, status.json
    assert len(keys) == 10 and all(k.startswith(f"results/{first['job_id']}/") for k in keys)
    # a new version of the same key (different ETag) is a new parse of the same job
    meta2 = put(aws, key, encode_jpeg(photo[:, ::-1].copy()))
    ev2 = event_for("s3-multi-record.json", aws["upload_bucket"], **meta2)
    ev2["Records"] = ev2["Records"][:1]
    assert svc.handler(ev2, None)["records"][0]["status"] == "done"
    assert status(aws, first["job_id"])["source"]["etag"] == meta2["etag"]


def test_never_retriggers_on_output_or_outside_prefix(aws: dict[str, Any], svc: Any) -> None:
    for name in ("s3-results-recursion.json", "s3-outside-prefix.json", "s3-delete.json"):
        out = svc.handler(event_for(name, aws["upload_bucket"]), None)
        assert all(r["status"] == "ignored" for r in out["records"]), name
    assert "Contents" not in aws["s3"].list_objects_v2(Bucket=aws["results_bucket"])
    assert svc.handler(json.loads((EVENTS / "s3-test-event.json").read_text()), None)["records"] == []


@pytest.mark.parametrize("body,code", [
    (b"this is not an image at all", "not_an_image"),
    (b"", "empty"),
])
def test_bad_upload_writes_failed_and_returns(aws: dict[str, Any], svc: Any, body: bytes, code: str) -> None:
    key = "uploads/batch/a 1.jpg"
    meta = put(aws, key, body)
    ev = event_for("s3-multi-record.json", aws["upload_bucket"], **meta)
    ev["Records"] = ev["Records"][:1]
    rec = svc.handler(ev, None)["records"][0]
    st = status(aws, rec["job_id"])
    assert rec["status"] == "failed" and st["status"] == "failed" and st["error"] == code and st["detail"]
    assert svc.handler(ev, None)["records"][0]["status"] == "skipped"  # never retried forever


def test_truncated_and_too_big(aws: dict[str, Any], stub_parser: Any, photo: np.ndarray) -> None:
    svc = build_service(settings_for(aws, max_upload_bytes=20_000), stub_parser, aws["s3"])
    big = encode_jpeg(np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8), quality=95)
    for body, code in ((encode_jpeg(photo)[:3000], "truncated"), (big, "too_large")):
        meta = put(aws, "uploads/batch/a 1.jpg", body)
        ev = event_for("s3-multi-record.json", aws["upload_bucket"], **meta)
        ev["Records"] = ev["Records"][:1]
        rec = svc.handler(ev, None)["records"][0]
        assert rec["status"] == "failed", rec
        assert status(aws, rec["job_id"])["error"] in (code, "not_an_image")


def test_deleted_object_is_recorded_not_crashed(aws: dict[str, Any], svc: Any) -> None:
    ev = event_for("s3-multi-record.json", aws["upload_bucket"])
    ev["Records"] = ev["Records"][:1]  # object never existed / already deleted
    rec = svc.handler(ev, None)["records"][0]
    st = status(aws, rec["job_id"])
    assert rec["status"] == "failed" and "no longer exists" in st["detail"]
    assert st["error"] == "upload_missing"  # its own code, not "empty"


def test_transient_s3_failure_raises_for_retry(aws: dict[str, Any], stub_parser: Any) -> None:
    from humanparse.local.s3local import LocalAws

    dead = LocalAws("http://127.0.0.1:9", "us-east-1").client("s3")  # nothing listens on port 9
    svc = build_service(settings_for(aws), stub_parser, dead)
    ev = event_for("s3-post-presigned.json", aws["upload_bucket"])
    with pytest.raises(Exception) as ei:
        svc.handler(ev, None)
    assert "Connect" in type(ei.value).__name__ or "connect" in str(ei.value).lower()


def test_backfill_batch_raw_keys(aws: dict[str, Any], svc: Any, photo: np.ndarray) -> None:
    """A Distributed Map batch (ItemReader = ListObjectsV2): keys are raw, with '+' and '%' kept literally."""
    ev = json.loads((EVENTS / "sfn-distributed-map-batch.json").read_text(encoding="utf-8"))
    ev["BatchInput"]["bucket"] = aws["upload_bucket"]
    for item in ev["Items"]:
        meta = put(aws, item["Key"], encode_jpeg(photo))
        item["Etag"], item["Size"] = f'"{meta["etag"]}"', meta["size"]
    out = svc.handler(ev, None)
    assert [r["status"] for r in out["records"]] == ["done", "done"] and out["failed"] == 0
    assert [r["key"] for r in out["records"]] == [i["Key"] for i in ev["Items"]]
    assert svc.handler(ev, None)["records"][0]["status"] == "skipped"


# ------------------------------------------------------ decided from the stored object itself
def _done_job(aws: dict[str, Any], svc: Any, photo: np.ndarray) -> tuple[dict[str, Any], dict[str, Any]]:
    meta = put(aws, "uploads/batch/a 1.jpg", encode_jpeg(photo))
    ev = event_for("s3-multi-record.json", aws["upload_bucket"], **meta)
    ev["Records"] = ev["Records"][:1]
    rec = svc.handler(copy.deepcopy(ev), None)["records"][0]
    assert rec["status"] == "done"
    return ev, status(aws, rec["job_id"])


@pytest.mark.parametrize("forged", [{"size": 10**12}, {"size": 10**12, "eTag": None},
                                    {"eTag": "0" * 32}, {"eTag": "0" * 32, "sequencer": "FFFFFFFFFFFFFFFFFF"}])
def test_forged_event_never_overwrites_a_done_result(aws: dict[str, Any], svc: Any, photo: np.ndarray,
                                                     forged: dict[str, Any]) -> None:
    ev, before = _done_job(aws, svc, photo)
    obj = ev["Records"][0]["s3"]["object"]
    for k, v in forged.items():
        if v is None:
            obj.pop(k, None)
        else:
            obj[k] = v
    rec = svc.handler(ev, None)["records"][0]
    assert rec["status"] == "skipped", rec
    assert status(aws, rec["job_id"]) == before


def test_trigger_sizes_the_upload_from_storage_not_the_event(aws: dict[str, Any], stub_parser: Any,
                                                             photo: np.ndarray) -> None:
    svc = build_service(settings_for(aws, max_upload_bytes=20_000), stub_parser, aws["s3"])
    small = encode_jpeg(photo[:100, :100])
    meta = put(aws, "uploads/batch/a 1.jpg", small)
    ev = event_for("s3-multi-record.json", aws["upload_bucket"], etag=meta["etag"], size=10**9)
    ev["Records"] = ev["Records"][:1]
    assert svc.handler(ev, None)["records"][0]["status"] == "done"  # the event's size is not believed
    big = encode_jpeg(np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8), quality=95)
    meta = put(aws, "uploads/batch/b.jpg", big)
    ev = event_for("s3-multi-record.json", aws["upload_bucket"], etag=meta["etag"], size=10)
    ev["Records"] = ev["Records"][:1]
    ev["Records"][0]["s3"]["object"]["key"] = "uploads/batch/b.jpg"
    rec = svc.handler(ev, None)["records"][0]
    assert rec["status"] == "failed" and status(aws, rec["job_id"])["error"] == "too_large"


# ------------------------------------------------ a CR/LF file name through the whole flow
def test_control_characters_in_filename_do_not_break_the_job(aws: dict[str, Any], svc: Any,
                                                             photo: np.ndarray) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(svc.app)
    up = client.post("/uploads", json={"content_type": "image/jpeg", "filename": "a\r\nX: 1\r\n.jpg"}).json()
    data = encode_jpeg(photo)
    res = requests.post(up["upload"]["url"], data=up["upload"]["fields"],
                        files={"file": ("a.jpg", data, "image/jpeg")}, timeout=30)
    assert res.status_code in (200, 204), res.text
    key = Layout("uploads/", "results/").upload_key(up["job_id"], "image/jpeg")
    head = aws["s3"].head_object(Bucket=aws["upload_bucket"], Key=key)
    assert head["Metadata"]["filename"] == "aX: 1.jpg"
    ev = event_for("s3-post-presigned.json", aws["upload_bucket"], etag=head["ETag"].strip('"'), size=len(data))
    ev["Records"][0]["s3"]["object"]["key"] = key
    assert svc.handler(ev, None)["records"][0]["status"] == "done"
    assert client.get(f"/jobs/{up['job_id']}").json()["status"] == "done"
