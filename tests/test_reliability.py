"""Hostile inputs through every entry, keys, S3's own policy enforcement, event faults, fuzzing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from conftest import EVENTS, ROOT, encode_jpeg, encode_png
from hostile import cases, expected_ok
from humanparse.config import Settings
from humanparse.entries.service import build_service
from humanparse.exceptions import InputError
from humanparse.pipeline.imageio import decode_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CASES = cases()
IDS = [c[0] for c in CASES]


@pytest.fixture()
def svc(aws: dict[str, Any], lite_parser: Any) -> Any:
    s = Settings(upload_bucket=aws["upload_bucket"], results_bucket=aws["results_bucket"],
                 s3_endpoint_url=aws["endpoint"], max_megapixels=40)
    return build_service(s, lite_parser, aws["s3"])


@pytest.mark.parametrize("name,data,ctype,expected", CASES, ids=IDS)
def test_hostile_input_http_parse(svc: Any, name: str, data: bytes, ctype: str, expected: str) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(svc.app)
    t = time.perf_counter()
    r = client.post("/parse", content=data, headers={"content-type": ctype})
    assert time.perf_counter() - t < 30
    if expected == "ok":
        assert r.status_code == 200, r.text[:300]
        assert "legend" in r.json()
    else:
        assert 400 <= r.status_code < 500, r.text[:300]
        assert expected_ok(expected, r.json()["error"]), r.json()
    assert client.get("/healthz").status_code == 200  # still serving


@pytest.mark.parametrize("name,data,ctype,expected", CASES, ids=IDS)
def test_hostile_input_upload_trigger(aws: dict[str, Any], svc: Any, name: str, data: bytes, ctype: str,
                                      expected: str) -> None:
    key = f"uploads/hostile/{name}.png"
    etag = aws["s3"].put_object(Bucket=aws["upload_bucket"], Key=key, Body=data, ContentType=ctype)["ETag"]
    ev = json.loads((EVENTS / "s3-post-presigned.json").read_text())
    ev["Records"][0]["s3"]["bucket"]["name"] = aws["upload_bucket"]
    ev["Records"][0]["s3"]["object"].update(key=key, eTag=etag.strip('"'), size=len(data))
    rec = svc.handler(ev, None)["records"][0]
    status = json.loads(aws["s3"].get_object(Bucket=aws["results_bucket"],
                                             Key=f"results/{rec['job_id']}/status.json")["Body"].read())
    if expected == "ok":
        assert status["status"] == "done", status
    else:
        assert status["status"] == "failed" and expected_ok(expected, status["error"]) and status["detail"], status


def test_hostile_inputs_batch_cli(tmp_path: Path, shared_models: Path) -> None:
    paths = []
    for name, data, _, _ in CASES:
        p = tmp_path / "in" / f"{name}.jpg"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(data)
        paths.append(p)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(ROOT / "local_runner.py"), "parse", *map(str, paths), "--out", str(out),
                        "--quiet"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 1  # some failed, and the exit code says so
    for name, _, _, expected in CASES:
        produced = (out / f"{name}.json").exists()
        assert produced == (expected == "ok"), (name, r.stderr[-2000:])
        if expected != "ok":
            assert f"failed {tmp_path / 'in' / name}.jpg: " in r.stderr
    n_ok = sum(e == "ok" for *_, e in CASES)
    assert f"{n_ok} parsed, {len(CASES) - n_ok} failed" in r.stderr


# ---------------------------------------------------------------------------------- S3's own policy checks
def test_presigned_policy_enforced_by_storage(aws: dict[str, Any], stub_parser: Any) -> None:
    from fastapi.testclient import TestClient

    s = Settings(upload_bucket=aws["upload_bucket"], results_bucket=aws["results_bucket"], max_upload_bytes=20_000)
    client = TestClient(build_service(s, stub_parser, aws["s3"]).app)

    def post(ctype: str = "image/jpeg", body: bytes = b"x" * 1000, extra: dict[str, str] | None = None,
             declared: str | None = None) -> requests.Response:
        up = client.post("/uploads", json={"content_type": ctype}).json()["upload"]
        fields = dict(up["fields"], **(extra or {}))
        if declared:
            fields["Content-Type"] = declared
        return requests.post(up["url"], data=fields, files={"file": ("f", body, declared or ctype)}, timeout=30)

    assert post().status_code in (200, 204)
    r = post(body=b"x" * 30_000)
    assert r.status_code == 400 and "EntityTooLarge" in r.text
    r = post(declared="text/html")
    assert r.status_code == 403 and "Policy Condition failed" in r.text
    r = post(extra={"x-amz-meta-evil": "1"})
    assert r.status_code == 403 and "Extra input fields" in r.text
    up = client.post("/uploads", json={"content_type": "image/jpeg"}).json()["upload"]
    forged = dict(up["fields"], key="uploads/../results/x/status.json")
    r = requests.post(up["url"], data=forged, files={"file": ("f", b"x", "image/jpeg")}, timeout=30)
    assert r.status_code == 403  # the key is part of the signed policy


# --------------------------------------------------------------------------------------------- keys
def test_very_long_and_odd_keys(aws: dict[str, Any], svc: Any) -> None:
    photo = encode_png(np.full((64, 64, 3), 120, np.uint8))
    keys = ["uploads/" + "é" * 500 + ".png",  # 1008 bytes of UTF-8: near S3's 1024-byte cap
            "uploads/a%2Fb/100% real+photo .png", "uploads/./x.png", "uploads/x/../../y.png"]
    for key in keys:
        etag = aws["s3"].put_object(Bucket=aws["upload_bucket"], Key=key, Body=photo)["ETag"].strip('"')
        from s3events import make_s3_event

        rec = svc.handler(make_s3_event(aws["upload_bucket"], key, size=len(photo), etag=etag), None)["records"][0]
        if "/./" in key or "/../" in key:
            assert rec["status"] == "ignored"
        else:
            assert rec["status"] == "done" and rec["key"] == key
    listed = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket=aws["results_bucket"], Prefix="results/")["Contents"]]
    assert all(k.startswith("results/") and len(k.split("/")[1]) == 32 for k in listed)


# -------------------------------------------------------------------------------------------- events
def test_out_of_order_events(aws: dict[str, Any], svc: Any, photo: np.ndarray) -> None:
    from s3events import make_s3_event

    key = "uploads/ooo/photo.jpg"
    old = aws["s3"].put_object(Bucket=aws["upload_bucket"], Key=key, Body=encode_jpeg(photo))["ETag"].strip('"')
    new = aws["s3"].put_object(Bucket=aws["upload_bucket"], Key=key,
                               Body=encode_jpeg(photo[:, ::-1].copy()))["ETag"].strip('"')
    ev_new = make_s3_event(aws["upload_bucket"], key, size=1, etag=new)
    ev_new["Records"][0]["s3"]["object"]["sequencer"] = "0062E99A88DC4074B0"
    ev_old = make_s3_event(aws["upload_bucket"], key, size=1, etag=old)
    ev_old["Records"][0]["s3"]["object"]["sequencer"] = "0062E99A88DC4074A0"
    assert svc.handler(ev_new, None)["records"][0]["status"] == "done"
    late = svc.handler(ev_old, None)["records"][0]
    assert late["status"] == "skipped" and "stale" in late["reason"]


class FailingPuts:
    """A boto3 S3 client whose Nth put_object raises a throttling error (the one stubbed boundary)."""

    def __init__(self, real: Any, fail_at: int) -> None:
        self.real, self.fail_at, self.puts = real, fail_at, 0

    def put_object(self, **kw: Any) -> Any:
        from botocore.exceptions import ClientError

        self.puts += 1
        if self.puts == self.fail_at:
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}},
                              "PutObject")
        return self.real.put_object(**kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_transient_failure_mid_write_leaves_no_half_result(aws: dict[str, Any], stub_parser: Any,
                                                           photo: np.ndarray) -> None:
    from fastapi.testclient import TestClient

    s = Settings(upload_bucket=aws["upload_bucket"], results_bucket=aws["results_bucket"])
    flaky = build_service(s, stub_parser, FailingPuts(aws["s3"], fail_at=3))
    key = "uploads/0123456789abcdef0123456789abcdef/image.jpg"
    data = encode_jpeg(photo)
    etag = aws["s3"].put_object(Bucket=aws["upload_bucket"], Key=key, Body=data)["ETag"].strip('"')
    ev = json.loads((EVENTS / "s3-post-presigned.json").read_text())
    ev["Records"][0]["s3"]["bucket"]["name"] = aws["upload_bucket"]
    ev["Records"][0]["s3"]["object"].update(key=key, eTag=etag, size=len(data))
    with pytest.raises(Exception, match="SlowDown"):
        flaky.handler(ev, None)  # raised → Lambda retries (then the DLQ)
    good = build_service(s, stub_parser, aws["s3"])
    client = TestClient(good.app)
    assert client.get("/jobs/0123456789abcdef0123456789abcdef").json()["status"] == "pending"  # not half "done"
    assert good.handler(ev, None)["records"][0]["status"] == "done"  # the retry completes it
    assert client.get("/jobs/0123456789abcdef0123456789abcdef").json()["status"] == "done"


# -------------------------------------------------------------------------------------------- fuzzing
SEEDS = [c[1] for c in CASES if c[1]][:8]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
       st.integers(0, 10_000))
def test_decode_mutations_only_raise_input_errors(seed: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(seed[: max(1, len(seed) - cut)] if cut % 3 == 0 else seed)
    for pos, val in flips:
        if data:
            data[pos % len(data)] = val
    try:
        out = decode_image(bytes(data), max_megapixels=2)
        assert out.rgb.dtype == np.uint8 and out.rgb.ndim == 3 and out.rgb.shape[2] == 3
    except InputError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_decode_random_bytes(data: bytes) -> None:
    try:
        decode_image(data, max_megapixels=2)
    except InputError:
        pass


def test_atheris_fuzz_run_bounded() -> None:
    pytest.importorskip("atheris")
    resource = pytest.importorskip("resource")

    # libFuzzer reads its RSS as getrusage's peak, which a forked child inherits from this (pytest) process —
    # over 2 GB once the M2FP tests ran — so the 2 GB budget is counted on top of that inherited peak.
    inherited_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "fuzz" / "fuzz_decode.py"), "-runs=4000",
                        "-max_len=4096", f"-rss_limit_mb={inherited_mb + 2048}"], capture_output=True, text=True,
                       timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Done 4000 runs" in r.stderr
