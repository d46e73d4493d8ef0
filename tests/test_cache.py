"""Content-addressed results. Adapter level (HTTP app + S3 trigger with the stub parser, moto's real
server behind the local gate, real presigned POSTs) and, at the end, the local runner end to end with the lite
model and a plain boto3 client dropping a folder into its bucket."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import numpy as np
import pytest
import requests
from conftest import EVENTS, PEOPLE_PHOTO, StubParser, encode_jpeg
from fastapi.testclient import TestClient
from humanparse.config import Settings
from humanparse.entries.service import Service, build_service

PHOTO_A = encode_jpeg(np.full((64, 48, 3), 120, np.uint8))
PHOTO_B = encode_jpeg(np.full((64, 48, 3), 30, np.uint8))


def _parses(log: str) -> int:
    """Parses the runner ran: one JSON "parsed" log line each (observability.record_parse)."""
    return len(re.findall(r'"message":\s*"parsed"', log))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def settings_for(aws: dict[str, Any], **kw: Any) -> Settings:
    return Settings(upload_bucket=aws["upload_bucket"], results_bucket=aws["results_bucket"],
                    s3_endpoint_url=aws["endpoint"], **kw)


def event(bucket: str, key: str, etag: str, size: int) -> dict[str, Any]:
    """A real S3 notification with this object: the key URL-encoded as S3 sends it (space → +)."""
    ev = json.loads((EVENTS / "s3-post-presigned.json").read_text(encoding="utf-8"))
    obj = ev["Records"][0]["s3"]
    obj["bucket"].update(name=bucket, arn=f"arn:aws:s3:::{bucket}")
    obj["object"].update(key=quote_plus(key, safe="/"), eTag=etag, size=size)
    obj["object"].pop("sequencer", None)
    return copy.deepcopy(ev)


def deliver(svc: Service, aws: dict[str, Any], key: str) -> dict[str, Any]:
    head = aws["s3"].head_object(Bucket=aws["upload_bucket"], Key=key)
    out: dict[str, Any] = svc.handler(event(aws["upload_bucket"], key, head["ETag"].strip('"'),
                                            head["ContentLength"]))
    return out


def post_upload(client: TestClient, data: bytes, **extra: Any) -> dict[str, Any]:
    r = client.post("/uploads", json={"content_type": "image/jpeg", "filename": "a.jpg", "sha256": sha(data),
                                      **extra})
    assert r.status_code == 201, r.text
    doc: dict[str, Any] = r.json()
    return doc


def send_form(up: dict[str, Any], data: bytes) -> requests.Response:
    return requests.post(up["url"], data=up["fields"], files={"file": ("a.jpg", data, "image/jpeg")}, timeout=30)


def results(aws: dict[str, Any], job: str) -> dict[str, bytes]:
    s3, bucket = aws["s3"], aws["results_bucket"]
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"results/{job}/").get("Contents", [])
    return {o["Key"].rsplit("/", 1)[1]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            for o in listed if not o["Key"].endswith("status.json")}


def parse_once(svc: Service, aws: dict[str, Any], client: TestClient, data: bytes) -> str:
    """Upload through POST /uploads + the presigned POST, deliver the event; the job id (done)."""
    up = post_upload(client, data)
    assert "upload" in up and not up.get("cached"), up
    assert send_form(up["upload"], data).status_code == 204
    key = up["upload"]["fields"]["key"]
    assert deliver(svc, aws, key)["records"][0]["status"] == "done"
    return str(up["job_id"])


@pytest.fixture()
def svc(aws: dict[str, Any], stub_parser: StubParser) -> Service:
    return build_service(settings_for(aws), stub_parser, aws["s3"])


# ------------------------------------------------------------------------------------------------ hits
def test_api_and_trigger_share_one_cache(svc: Service) -> None:
    """One ResultCache per process: the trigger uses the object the HTTP routes get through ``Depends``."""
    from humanparse.entries.api.deps import get_cache

    class _Req:
        app = svc.app

    assert get_cache(_Req()) is svc.trigger.cache  # type: ignore[arg-type]


def test_second_upload_of_the_same_bytes_is_done_at_once_without_a_parse(
        svc: Service, aws: dict[str, Any], stub_parser: StubParser) -> None:
    client = TestClient(svc.app)
    first = parse_once(svc, aws, client, PHOTO_A)
    assert stub_parser.calls == 1
    again = post_upload(client, PHOTO_A)
    assert again["cached"] is True and again["status"] == "done" and "upload" not in again
    view = client.get(f"/jobs/{again['job_id']}").json()
    assert view["status"] == "done" and view["cached"] is True and view["job_id"] != first
    assert stub_parser.calls == 1  # no parse ran
    assert results(aws, again["job_id"]) == results(aws, first)  # the same bytes, copied server-side
    assert set(view["results"]) == set(results(aws, first))
    assert "cached" not in client.get(f"/jobs/{first}").json()


def test_trigger_reuses_a_result_for_bytes_dropped_under_another_key(
        svc: Service, aws: dict[str, Any], stub_parser: StubParser) -> None:
    client = TestClient(svc.app)
    first = parse_once(svc, aws, client, PHOTO_A)
    aws["s3"].put_object(Bucket=aws["upload_bucket"], Key="uploads/copy/a.jpg", Body=PHOTO_A)
    rec = deliver(svc, aws, "uploads/copy/a.jpg")["records"][0]
    assert rec["status"] == "done" and rec["reason"] == "cached"
    assert stub_parser.calls == 1
    st = svc.store.read_status(rec["job_id"])
    assert st is not None and st["cached"] is True and st["source"]["key"] == "uploads/copy/a.jpg"
    assert results(aws, rec["job_id"]) == results(aws, first)


def test_parse_endpoint_answers_from_the_cache(svc: Service, aws: dict[str, Any], stub_parser: StubParser) -> None:
    client = TestClient(svc.app)
    first = parse_once(svc, aws, client, PHOTO_A)
    r = client.post("/parse", content=PHOTO_A, headers={"content-type": "image/jpeg"})
    assert r.status_code == 200 and r.headers["x-humanparse-cache"] == "hit"
    doc = r.json()
    assert doc["cached"] is True and "job_id" not in doc and doc["person_count"] == 1
    assert base64.b64decode(doc["label_png_base64"]) == results(aws, first)["label.png"]
    r = client.post("/parse?output=color", content=PHOTO_A, headers={"content-type": "image/jpeg"})
    assert r.headers["x-humanparse-cache"] == "hit" and r.content == results(aws, first)["color.png"]
    assert stub_parser.calls == 1
    r = client.post("/parse", content=PHOTO_B, headers={"content-type": "image/jpeg"})
    assert r.headers["x-humanparse-cache"] == "miss" and stub_parser.calls == 2


def test_parse_endpoint_fills_the_cache_for_itself_and_the_page(
        svc: Service, aws: dict[str, Any], stub_parser: StubParser) -> None:
    """A new photo sent to POST /parse twice is parsed once; then uploaded from the page (POST /uploads with its
    SHA-256, as the page sends it) it is done at once, with the same files."""
    client = TestClient(svc.app)
    first = client.post("/parse", content=PHOTO_B, headers={"content-type": "image/jpeg"})
    assert first.status_code == 200 and first.headers["x-humanparse-cache"] == "miss"
    assert "cached" not in first.json() and stub_parser.calls == 1
    again = client.post("/parse", files={"file": ("b.jpg", PHOTO_B, "image/jpeg")})
    assert again.headers["x-humanparse-cache"] == "hit" and again.json()["cached"] is True
    assert again.json()["label_png_base64"] == first.json()["label_png_base64"]
    assert stub_parser.calls == 1
    up = post_upload(client, PHOTO_B)
    assert up["cached"] is True and "upload" not in up
    view = client.get(f"/jobs/{up['job_id']}").json()
    assert view["status"] == "done" and view["cached"] is True and view["person_count"] == 1
    assert results(aws, up["job_id"])["label.png"] == base64.b64decode(first.json()["label_png_base64"])
    assert stub_parser.calls == 1


def test_parse_endpoint_answers_when_the_cache_cannot_be_written(
        aws: dict[str, Any], stub_parser: StubParser) -> None:
    """Storage trouble loses the cache entry, never the answer."""
    settings = Settings(upload_bucket=aws["upload_bucket"], results_bucket="no-such-bucket-here",
                        s3_endpoint_url=aws["endpoint"])
    broken = build_service(settings, stub_parser, aws["s3"])
    r = TestClient(broken.app).post("/parse", content=PHOTO_A, headers={"content-type": "image/jpeg"})
    assert r.status_code == 200 and r.json()["person_count"] == 1


# ---------------------------------------------------------------------------------------------- misses
def test_changed_output_setting_or_model_misses(svc: Service, aws: dict[str, Any], stub_parser: StubParser) -> None:
    parse_once(svc, aws, TestClient(svc.app), PHOTO_A)
    from humanparse.engine.types import ModelInfo

    other_model = StubParser()
    other_model.info = ModelInfo(kind="stub", model_id="stub-v2", supported_labels=(0, 5, 9, 13))
    for changed in (build_service(settings_for(aws, overlay_alpha=0.3), stub_parser, aws["s3"]),
                    build_service(settings_for(aws, person_score_thr=0.5), stub_parser, aws["s3"]),
                    build_service(settings_for(aws), other_model, aws["s3"])):
        up = post_upload(TestClient(changed.app), PHOTO_A)
        assert "upload" in up and not up.get("cached")
        assert changed.trigger.cache.lookup(sha(PHOTO_A)) is None
    assert svc.trigger.cache.lookup(sha(PHOTO_A)) is not None


def test_results_removed_by_lifecycle_are_a_miss_not_an_error(
        svc: Service, aws: dict[str, Any], stub_parser: StubParser) -> None:
    client = TestClient(svc.app)
    first = parse_once(svc, aws, client, PHOTO_A)
    aws["s3"].delete_object(Bucket=aws["results_bucket"], Key=f"results/{first}/overlay.jpg")
    up = post_upload(client, PHOTO_A)
    assert "upload" in up and not up.get("cached")  # the index pointed at a job with a file gone
    assert send_form(up["upload"], PHOTO_A).status_code == 204
    rec = deliver(svc, aws, up["upload"]["fields"]["key"])["records"][0]
    assert rec["status"] == "done" and rec["reason"] == "" and stub_parser.calls == 2
    st = svc.store.read_status(up["job_id"])
    assert st is not None and "overlay.jpg" in results(aws, up["job_id"]) and not st.get("cached")
    assert post_upload(client, PHOTO_A)["cached"] is True  # the index now names the complete job


def test_cache_disabled_reads_and_writes_nothing(aws: dict[str, Any], stub_parser: StubParser) -> None:
    off = build_service(settings_for(aws, cache_enabled=False), stub_parser, aws["s3"])
    client = TestClient(off.app)
    parse_once(off, aws, client, PHOTO_A)
    parse_once(off, aws, client, PHOTO_A)
    assert stub_parser.calls == 2
    listed = aws["s3"].list_objects_v2(Bucket=aws["results_bucket"], Prefix="cache/")
    assert listed.get("KeyCount", 0) == 0


def test_concurrent_uploads_of_the_same_bytes_leave_a_whole_index(
        svc: Service, aws: dict[str, Any], stub_parser: StubParser) -> None:
    """Both may parse; whichever index write lands last names a job that is done with every file there."""
    from concurrent.futures import ThreadPoolExecutor

    keys = [f"uploads/race/{i}.jpg" for i in range(4)]
    for key in keys:
        aws["s3"].put_object(Bucket=aws["upload_bucket"], Key=key, Body=PHOTO_B)
    with ThreadPoolExecutor(4) as pool:
        recs = [o["records"][0] for o in pool.map(lambda k: deliver(svc, aws, k), keys)]
    assert all(r["status"] == "done" for r in recs)
    entry = svc.trigger.cache.lookup(sha(PHOTO_B))
    assert entry is not None and entry.job_id in {r["job_id"] for r in recs}
    assert set(results(aws, entry.job_id)) == set(entry.status["files"])
    for r in recs:  # every done status names files that exist
        st = svc.store.read_status(r["job_id"])
        assert st is not None and set(results(aws, r["job_id"])) == set(st["files"])
    assert 1 <= stub_parser.calls <= 4


# ------------------------------------------------------------------------------------------- tampering
def test_bytes_other_than_declared_are_refused_by_the_storage(svc: Service, aws: dict[str, Any]) -> None:
    up = post_upload(TestClient(svc.app), PHOTO_A)
    assert up["upload"]["fields"]["x-amz-checksum-sha256"] == base64.b64encode(
        hashlib.sha256(PHOTO_A).digest()).decode()
    r = send_form(up["upload"], PHOTO_B)
    assert r.status_code == 400 and "<Code>BadDigest</Code>" in r.text
    listed = aws["s3"].list_objects_v2(Bucket=aws["upload_bucket"], Prefix=f"uploads/{up['job_id']}/")
    assert listed.get("KeyCount", 0) == 0
    fields = dict(up["upload"]["fields"], **{"x-amz-checksum-sha256": base64.b64encode(
        hashlib.sha256(PHOTO_B).digest()).decode()})  # the hash of what is sent, but not the signed one
    assert requests.post(up["upload"]["url"], data=fields, files={"file": ("a.jpg", PHOTO_B, "image/jpeg")},
                         timeout=30).status_code == 403


def test_tampered_upload_fails_and_never_answers_for_the_declared_hash(
        svc: Service, aws: dict[str, Any], stub_parser: StubParser) -> None:
    """Bytes that differ from the declared hash (here: overwritten with the run's own key, past the policy)."""
    up = post_upload(TestClient(svc.app), PHOTO_A)
    key = up["upload"]["fields"]["key"]
    aws["s3"].put_object(Bucket=aws["upload_bucket"], Key=key, Body=PHOTO_B, Metadata={"sha256": sha(PHOTO_A)})
    rec = deliver(svc, aws, key)["records"][0]
    assert rec["status"] == "failed"
    st = svc.store.read_status(up["job_id"])
    assert st is not None and st["error"] == "checksum_mismatch" and sha(PHOTO_A) in st["detail"]
    assert stub_parser.calls == 0
    assert svc.trigger.cache.lookup(sha(PHOTO_A)) is None and svc.trigger.cache.lookup(sha(PHOTO_B)) is None
    assert not post_upload(TestClient(svc.app), PHOTO_A).get("cached")


# ----------------------------------------------------------------------------------- found by its key
def test_jobs_by_source_key(svc: Service, aws: dict[str, Any]) -> None:
    client = TestClient(svc.app)
    keys = ["uploads/shoot 1/IMG 0001.jpg", "uploads/shoot 1/sub dir/été 2.jpg", "uploads/a+b/日本.jpg"]
    for i, key in enumerate(keys):
        aws["s3"].put_object(Bucket=aws["upload_bucket"], Key=key, Body=PHOTO_A if i else PHOTO_B)
    pending = client.get("/jobs", params={"key": keys[0]}).json()
    assert pending["status"] == "pending" and pending["key"] == keys[0]
    for key in keys:
        deliver(svc, aws, key)
        view = client.get("/jobs?key=" + quote(key, safe="")).json()
        assert view["status"] == "done" and view["key"] == key and "color.png" in view["results"], view
    assert client.get("/jobs", params={"key": "uploads/shoot 1/nope.jpg"}).status_code == 404
    for bad in ("results/x/status.json", "uploads/../results/x.jpg", "elsewhere.jpg"):
        r = client.get("/jobs", params={"key": bad})
        assert r.status_code == 422 and r.json()["error"] == "invalid_request", bad


def test_checksum_rule_of_the_embedded_s3() -> None:
    from humanparse.local.policy import S3Error, check_checksum

    good = base64.b64encode(hashlib.sha256(b"abc").digest()).decode()
    check_checksum({}, b"anything")
    check_checksum({"x-amz-checksum-sha256": good, "x-amz-checksum-algorithm": "SHA256"}, b"abc")
    for fields, code in (({"x-amz-checksum-sha256": good}, "BadDigest"),
                         ({"x-amz-checksum-sha256": "not base64!"}, "InvalidRequest"),
                         ({"x-amz-checksum-sha256": base64.b64encode(b"short").decode()}, "InvalidRequest"),
                         ({"x-amz-checksum-sha256": good, "x-amz-checksum-algorithm": "CRC32"}, "InvalidRequest")):
        with pytest.raises(S3Error) as ei:
            check_checksum(fields, b"abd")
        assert ei.value.code == code and ei.value.status.startswith("400")


# ------------------------------------------------------------------------------- local runner, end to end
def wait_done(base: str, path: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = requests.get(base + path, timeout=30)
        if r.status_code == 200 and r.json()["status"] in ("done", "failed"):
            doc: dict[str, Any] = r.json()
            return doc
        time.sleep(0.2)
    raise TimeoutError(path)


def test_local_runner_end_to_end(tmp_path: Path) -> None:
    """The lite model: parse once, the same bytes again are done at once with no parse (the worker log counts
    parses), a boto3 client with the runner's credentials drops a folder and finds every result by its key."""
    from runner import Runner

    config = tmp_path / "aws-config"
    r = Runner(tmp_path / "data", "--model", "lite", env={"HUMANPARSE_LOCAL_AWS_CONFIG": str(config)}).start()
    try:
        base = r.base + "/api"
        photo = PEOPLE_PHOTO.read_bytes()
        up = requests.post(base + "/uploads", json={"content_type": "image/jpeg", "sha256": sha(photo)},
                           timeout=30).json()
        assert send_form(up["upload"], photo).status_code == 204
        first = wait_done(base, f"/jobs/{up['job_id']}")
        assert first["status"] == "done" and not first.get("cached")
        deadline = time.monotonic() + 15
        while _parses(r.log()) < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        parses = _parses(r.log())
        assert parses == 1, r.log()
        again = requests.post(base + "/uploads", json={"content_type": "image/jpeg", "sha256": sha(photo)},
                              timeout=30).json()
        assert again["cached"] is True and "upload" not in again
        view = requests.get(f"{base}/jobs/{again['job_id']}", timeout=30).json()
        assert view["status"] == "done" and view["cached"] is True
        for name in ("color.png", "label.png", "result.json"):
            assert requests.get(view["results"][name], timeout=30).content == \
                requests.get(first["results"][name], timeout=30).content
        # the folder, with any S3 client: the profile the runner wrote (0600) names its endpoint and key
        assert config.stat().st_mode & 0o077 == 0
        s3 = _client_from_profile(config)
        keys = [f"uploads/shoot 1/été/IMG {i}.jpg" for i in range(3)] + ["uploads/日本/a+b.jpg"]
        for i, key in enumerate(keys):
            body = photo if i == 0 else encode_jpeg(np.full((80, 60, 3), 40 * i, np.uint8))
            s3.put_object(Bucket="humanparse-uploads", Key=key, Body=body, ContentType="image/jpeg")
        found = [wait_done(base, "/jobs?key=" + quote(k, safe="")) for k in keys]
        assert [f["status"] for f in found] == ["done"] * 4, found
        assert found[0]["cached"] is True  # the same bytes as the first photo
        deadline = time.monotonic() + 15  # the "parsed" line is logged just after status.json says done
        while _parses(r.log()) < parses + 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
        assert _parses(r.log()) == parses + 3  # the first key's bytes were not parsed again
    finally:
        r.stop()
    # the copies of a cached job are on disk like any other result: a restart serves them
    r = Runner(tmp_path / "data", "--model", "lite").start()
    try:
        view = requests.get(f"{r.base}/api/jobs/{again['job_id']}", timeout=30).json()
        assert view["status"] == "done" and view["cached"] is True
        assert requests.get(view["results"]["label.png"], timeout=30).content[:8] == b"\x89PNG\r\n\x1a\n"
        assert _parses(r.log().split("embedded S3 at")[-1]) == 0  # nothing was queued again
    finally:
        r.stop()


def _client_from_profile(config: Path) -> Any:
    import configparser

    import boto3
    from botocore.config import Config

    prof = configparser.ConfigParser()
    prof.read(config)
    sec = prof["profile humanparse-local"]
    return boto3.client("s3", endpoint_url=sec["endpoint_url"], region_name=sec["region"],
                        aws_access_key_id=sec["aws_access_key_id"], aws_secret_access_key=sec["aws_secret_access_key"],
                        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
