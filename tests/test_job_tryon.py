"""``GET /jobs/{id}/tryon``: a finished job's try-on images drawn from what the job stored (no re-parse, no photo
sent again). Through the local runner with a 12 MP phone-sized JPEG (over ``POST /parse``'s 4 MB body cap,
uploaded the page's way), and the refusals (unknown, pending, failed, replaced) on the app over moto."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from conftest import PEOPLE_PHOTO
from humanparse.entries.service import build_service
from PIL import Image
from runner import Runner
from test_local_runner import upload, wait
from test_tryon_entries import run_job, settings_for

PHONE = (4032, 3024)  # a 12 MP phone photo


def phone_photo() -> bytes:
    """The people photo upscaled to 12 MP with sensor-like grain (sigma 12), JPEG q92: ~4.8 MB, as a phone's."""
    big = np.asarray(Image.open(PEOPLE_PHOTO).convert("RGB").resize(PHONE, Image.Resampling.BICUBIC), np.int16)
    grain = np.random.default_rng(0).normal(0, 12, big.shape).astype(np.int16)
    buf = io.BytesIO()
    Image.fromarray(np.clip(big + grain, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def png_array(data: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG"
    return np.asarray(img)


def test_12mp_photo_tryon_through_the_runner(tmp_path: Path, shared_models: Path) -> None:
    data = phone_photo()
    assert len(data) > 4 * 1024 * 1024
    r = Runner(tmp_path / "data").start()
    try:
        sync = requests.post(f"{r.base}/api/parse?output=tryon&category=upper_body", data=data, timeout=60,
                             headers={"content-type": "image/jpeg"})
        assert sync.status_code == 413 and sync.json()["error"] == "too_large"  # why the job route exists
        job = upload(r.base, data, name="IMG_0001.jpg")
        assert wait(r.base, job)["status"] == "done"
        q = f"{r.base}/api/jobs/{job}/tryon?category=upper_body&person=1"
        res = requests.get(q + "&image=mask", timeout=120)
        assert res.status_code == 200 and res.headers["content-type"] == "image/png", res.text[:300]
        assert res.headers["x-humanparse-tryon"] == "drawn"
        mask = png_array(res.content)
        assert mask.shape == PHONE[::-1] and set(np.unique(mask)) == {0, 255} and (mask == 255).mean() > 0.01
        parse = requests.get(q + "&image=parse_agnostic", timeout=120)
        assert parse.status_code == 200 and png_array(parse.content).shape == PHONE[::-1]
        assert png_array(parse.content)[mask == 255].max() == 0 or (png_array(parse.content) < 20).all()
        # the 12 MP agnostic PNG is over Lambda's 6 MB response cap: stored beside the results, handed out signed
        link = requests.get(q + "&image=agnostic&large=url", timeout=120)
        assert link.status_code == 200 and link.headers["content-type"] == "application/json", link.text[:300]
        doc = link.json()
        assert doc["name"] == "tryon.upper_body.p1.agnostic.png" and doc["bytes"] > 4_125_000
        agn_png = requests.get(doc["url"], timeout=60).content
        assert len(agn_png) == doc["bytes"]
        agn = png_array(agn_png)
        photo = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        assert agn.shape == photo.shape and (agn[mask == 255] == 128).all()
        assert np.abs(agn[mask == 0].astype(np.int16) - photo[mask == 0]).max() <= 2  # the photo, losslessly
        moved = requests.get(q + "&image=agnostic", timeout=120, allow_redirects=False)
        assert moved.status_code == 303 and requests.get(moved.headers["location"], timeout=60).content == agn_png
        refusals = {"category=shirt": (422, "unknown_category"), "category=upper_body&person=9": (422, "unknown_person"),
                    "category=upper_body&image=sketch": (422, "invalid_request"),
                    "category=upper_body&large=inline": (422, "invalid_request"), "": (422, "unknown_category")}
        for query, (status, code) in refusals.items():
            bad = requests.get(f"{r.base}/api/jobs/{job}/tryon?{query}", timeout=60)
            assert (bad.status_code, bad.json()["error"]) == (status, code) and bad.json()["detail"], (query, bad.text)
        gone = requests.get(f"{r.base}/api/jobs/{'0' * 32}/tryon?category=upper_body", timeout=30)
        assert gone.status_code == 404 and gone.json()["error"] == "not_found"
        assert requests.get(f"{r.base}/api/jobs/nope/tryon?category=upper_body",
                            timeout=30).json()["error"] == "bad_job_id"
    finally:
        assert r.stop() == 0


# ------------------------------------------------------------------------------- the app over moto: job states
@pytest.fixture()
def app(aws: dict[str, Any], lite_parser: Any) -> Any:
    from fastapi.testclient import TestClient

    return TestClient(build_service(settings_for(aws), lite_parser, aws["s3"]).app)


def test_pending_failed_and_replaced_jobs_are_refused(aws: dict[str, Any], lite_parser: Any, app: Any) -> None:
    pending = "fedcba9876543210fedcba9876543210"
    aws["s3"].put_object(Bucket=aws["upload_bucket"], Key=f"uploads/{pending}/image.jpg", Body=b"x")
    r = app.get(f"/jobs/{pending}/tryon?category=upper_body")
    assert r.status_code == 409 and r.json()["error"] == "job_not_done" and "pending" in r.json()["detail"]
    failed = "00112233445566778899aabbccddeeff"
    aws["s3"].put_object(Bucket=aws["results_bucket"], Key=f"results/{failed}/status.json", Body=json.dumps(
        {"status": "failed", "job_id": failed, "error": "not_an_image", "detail": "not an image"}).encode())
    r = app.get(f"/jobs/{failed}/tryon?category=upper_body")
    assert r.status_code == 409 and "not_an_image" in r.json()["detail"]
    job, _ = run_job(aws, lite_parser)
    assert app.get(f"/jobs/{job}/tryon?category=upper_body").status_code == 200
    # the photo replaced under the same key (its new parse not yet done): not drawn from the old parse
    aws["s3"].put_object(Bucket=aws["upload_bucket"], Key=f"uploads/{job}/image.jpg",
                         Body=Image.open(PEOPLE_PHOTO).transpose(Image.Transpose.FLIP_LEFT_RIGHT).tobytes())
    r = app.get(f"/jobs/{job}/tryon?category=upper_body")
    assert r.status_code == 409 and "replaced" in r.json()["detail"]
    aws["s3"].delete_object(Bucket=aws["upload_bucket"], Key=f"uploads/{job}/image.jpg")
    r = app.get(f"/jobs/{job}/tryon?category=upper_body")
    assert r.status_code == 404 and r.json()["error"] == "upload_missing"


def test_stored_tryon_files_are_served_as_stored(aws: dict[str, Any], lite_parser: Any) -> None:
    from fastapi.testclient import TestClient

    job, st = run_job(aws, lite_parser, job_tryon_masks=True)
    app = TestClient(build_service(settings_for(aws, job_tryon_masks=True), lite_parser, aws["s3"]).app)
    r = app.get(f"/jobs/{job}/tryon?category=upper_body&image=agnostic")
    assert r.status_code == 200 and r.headers["x-humanparse-tryon"] == "stored"
    stored = aws["s3"].get_object(Bucket=aws["results_bucket"], Key=f"results/{job}/tryon.upper_body.p1.agnostic.png")
    assert r.content == stored["Body"].read()
    # a file the job did not store (nothing to mask) is drawn, and refused as POST /parse refuses it
    missing = {f"tryon.{c}.p1.mask.png" for c in ("upper_body", "lower_body", "dresses", "full_body")} - set(st["files"])
    for name in missing:
        r = app.get(f"/jobs/{job}/tryon?category={name.split('.')[1]}")
        assert r.status_code == 422 and r.json()["error"] == "nothing_to_mask"


def test_through_lambda_png_and_signed_link(aws: dict[str, Any], lite_parser: Any,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Through Mangum with a Function URL event: the PNG base64-encoded as Lambda sends binary bodies, and an
    image over the response cap (the cap lowered here: a 12 MP photo's job is the runner test's) as a 303 to a
    signed GET of the stored file, or with large=url as JSON."""
    from humanparse.entries.api.routes import tryon as route
    from test_lambda_http import call, ev

    job, _ = run_job(aws, lite_parser)
    svc = build_service(settings_for(aws), lite_parser, aws["s3"])
    path = f"/jobs/{job}/tryon"

    def get(query: str) -> tuple[int, dict[str, str], bytes]:
        return call(svc, ev("function-url-get-job.json", rawPath=path, rawQueryString=query))

    code, headers, body = get("category=upper_body&image=agnostic")
    assert code == 200 and headers["content-type"] == "image/png" and body[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setattr(route, "MAX_SYNC_RESPONSE", 1000)
    code, headers, _ = get("category=upper_body&image=agnostic")
    assert code == 303
    stored = aws["s3"].get_object(Bucket=aws["results_bucket"], Key=f"results/{job}/tryon.upper_body.p1.agnostic.png")
    assert requests.get(headers["location"], timeout=30).content == stored["Body"].read() == body
    code, _, raw = get("category=upper_body&image=agnostic&large=url")
    doc = json.loads(raw)
    assert code == 200 and doc["bytes"] == len(body) and requests.get(doc["url"], timeout=30).content == body
    code, _, raw = get("category=upper_body&person=2")
    assert code == 422 and json.loads(raw)["error"] == "unknown_person"


def test_a_job_stored_without_keypoints_still_draws(aws: dict[str, Any], lite_parser: Any, app: Any) -> None:
    """Jobs parsed before keypoints were stored (result format 2) have no keypoints.json: drawn without them."""
    job, st = run_job(aws, lite_parser)
    with_kp = app.get(f"/jobs/{job}/tryon?category=upper_body")
    aws["s3"].delete_object(Bucket=aws["results_bucket"], Key=f"results/{job}/keypoints.json")
    without = app.get(f"/jobs/{job}/tryon?category=upper_body")
    assert with_kp.status_code == without.status_code == 200, without.text
    a, b = png_array(with_kp.content) == 255, png_array(without.content) == 255
    assert b.sum() > 1000 and (a & b).sum() > 0.5 * a.sum()
    aws["s3"].delete_object(Bucket=aws["results_bucket"], Key=f"results/{job}/label.png")
    gone = app.get(f"/jobs/{job}/tryon?category=upper_body")
    assert gone.status_code == 404 and "label.png" in gone.json()["detail"]
