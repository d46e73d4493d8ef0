"""The HTTP entry through Mangum, with API Gateway v2 / Function URL event payloads, against moto S3."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import numpy as np
import pytest
from conftest import EVENTS, ROOT, encode_jpeg, encode_png
from humanparse.config import Settings
from humanparse.entries.service import build_service
from PIL import Image


def settings_for(aws: dict[str, Any], **kw: Any) -> Settings:
    return Settings(upload_bucket=aws["upload_bucket"], results_bucket=aws["results_bucket"],
                    s3_endpoint_url=aws["endpoint"], cors_origins=("https://app.example.com",), **kw)


@pytest.fixture()
def svc(aws: dict[str, Any], stub_parser: Any) -> Any:
    """The adapter under test with the stub parser; ``lite_svc`` runs the real lite model end to end."""
    return build_service(settings_for(aws), stub_parser, aws["s3"])


@pytest.fixture()
def lite_svc(aws: dict[str, Any], lite_parser: Any) -> Any:
    return build_service(settings_for(aws), lite_parser, aws["s3"])


def ev(name: str, **changes: Any) -> dict[str, Any]:
    e: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    e.update(changes)
    if "rawPath" in changes:  # API Gateway puts the path in both places
        e["requestContext"]["http"]["path"] = changes["rawPath"]
    return e


def call(svc: Any, event: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    out = svc.handler(event, None)
    body = out.get("body", "")
    raw = base64.b64decode(body) if out.get("isBase64Encoded") else body.encode("utf-8")
    return out["statusCode"], {k.lower(): v for k, v in out.get("headers", {}).items()}, raw


def test_healthz(svc: Any) -> None:
    code, headers, body = call(svc, ev("apigw-v2-get-healthz.json"))
    doc = json.loads(body)
    assert code == 200 and doc["status"] == "ok" and doc["model"]["kind"] == "stub"


def test_post_uploads_presigned_post(svc: Any, aws: dict[str, Any]) -> None:
    code, _, body = call(svc, ev("apigw-v2-post-uploads.json"))
    doc = json.loads(body)
    assert code == 201, body
    f = doc["upload"]["fields"]
    assert doc["upload"]["url"].startswith(aws["endpoint"])
    assert f["key"] == f"uploads/{doc['job_id']}/image.jpg" and f["Content-Type"] == "image/jpeg"
    policy = json.loads(base64.b64decode(f["policy"]))
    conds = policy["conditions"]
    assert ["content-length-range", 1, 15 * 1024 * 1024] in conds and {"Content-Type": "image/jpeg"} in conds


@pytest.mark.parametrize("payload,status,err", [
    ({"content_type": "application/pdf"}, 415, "unsupported_format"),  # one code for a wrong type everywhere
    ({"content_type": "image/png", "size": 16 * 1024 * 1024}, 413, "too_large"),
    ({"content_type": "image/png", "size": 0}, 400, "empty"),
    ({"nothing": 1}, 422, "invalid_request"),
])
def test_post_uploads_refusals(svc: Any, payload: dict[str, Any], status: int, err: str) -> None:
    code, _, body = call(svc, ev("apigw-v2-post-uploads.json", body=json.dumps(payload)))
    assert code == status and json.loads(body)["error"] == err


def test_get_job_states(svc: Any, aws: dict[str, Any]) -> None:
    code, _, body = call(svc, ev("function-url-get-job.json"))
    assert code == 404 and json.loads(body)["error"] == "not_found"
    bad = ev("function-url-get-job.json", rawPath="/jobs/..%2F..%2Fetc")
    code, _, _ = call(svc, bad)
    assert code in (400, 404)
    aws["s3"].put_object(Bucket=aws["upload_bucket"], Key="uploads/0123456789abcdef0123456789abcdef/image.png", Body=b"x")
    code, _, body = call(svc, ev("function-url-get-job.json"))
    assert code == 200 and json.loads(body)["status"] == "pending"


def test_sync_parse_json_and_png(lite_svc: Any, photo: np.ndarray) -> None:
    """End to end on the real lite model."""
    svc = lite_svc
    data = encode_jpeg(photo)
    e = ev("function-url-post-parse.json", body=base64.b64encode(data).decode())
    code, headers, body = call(svc, e)
    assert code == 200, body[:300]
    doc = json.loads(body)
    lab = np.asarray(Image.open(io.BytesIO(base64.b64decode(doc["label_png_base64"]))))
    assert lab.shape == photo.shape[:2] and doc["person_count"] >= 1 and doc["legend"]
    e = ev("function-url-post-parse.json", body=base64.b64encode(data).decode(), rawQueryString="output=color",
           queryStringParameters={"output": "color"})
    code, headers, body = call(svc, e)
    assert code == 200 and headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(body)).size == (photo.shape[1], photo.shape[0])


@pytest.mark.parametrize("data,status,err", [
    (b"not an image", 415, "not_an_image"),
    (b"", 400, "empty"),
    (encode_png(np.zeros((4, 4, 3), np.uint8)), 422, "too_small"),
])
def test_sync_parse_refusals(svc: Any, data: bytes, status: int, err: str) -> None:
    code, _, body = call(svc, ev("function-url-post-parse.json", body=base64.b64encode(data).decode()))
    assert code == status and json.loads(body)["error"] == err


def test_sync_parse_body_limit(aws: dict[str, Any], stub_parser: Any) -> None:
    s = Settings(upload_bucket=aws["upload_bucket"], sync_max_bytes=1000)
    svc = build_service(s, stub_parser, aws["s3"])
    code, _, body = call(svc, ev("function-url-post-parse.json", body=base64.b64encode(b"x" * 5000).decode()))
    assert code == 413 and json.loads(body)["error"] == "too_large"


def test_cors_only_for_configured_origin(svc: Any) -> None:
    e = ev("apigw-v2-get-healthz.json")
    e["headers"]["origin"] = "https://app.example.com"
    _, headers, _ = call(svc, e)
    assert headers.get("access-control-allow-origin") == "https://app.example.com"
    assert "access-control-allow-credentials" not in headers
    e["headers"]["origin"] = "https://evil.example.net"
    _, headers, _ = call(svc, e)
    assert "access-control-allow-origin" not in headers


def test_openapi_served(svc: Any) -> None:
    code, _, body = call(svc, ev("apigw-v2-get-healthz.json", rawPath="/openapi.json"))
    assert code == 200 and "/uploads" in json.loads(body)["paths"]


# ----------------------------------------------------------------------------- multipart /parse
def test_parse_multipart_and_raw_body_give_the_same_json(svc: Any, photo: np.ndarray) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(svc.app)
    data = encode_jpeg(photo)
    raw = client.post("/parse", content=data, headers={"content-type": "image/jpeg"})
    form = client.post("/parse", files={"file": ("photo.jpg", data, "image/jpeg")})
    assert raw.status_code == 200 and form.status_code == 200, form.text[:300]

    def same(doc: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in doc.items() if k not in ("timings_ms", "cached")}

    assert same(raw.json()) == same(form.json())
    assert form.json()["cached"] is True  # the same bytes again: the first answer filled the cache
    png = client.post("/parse?output=label", files={"file": ("photo.jpg", data, "image/jpeg")})
    assert png.headers["content-type"] == "image/png"
    assert np.asarray(Image.open(io.BytesIO(png.content))).shape == photo.shape[:2]
    over = client.post("/parse?output=overlay", content=data, headers={"content-type": "image/jpeg"})
    assert over.status_code == 200 and over.headers["content-type"] == "image/jpeg"
    jpg = Image.open(io.BytesIO(over.content))
    assert jpg.format == "JPEG" and jpg.size == photo.shape[1::-1]


def test_parse_image_answer_over_the_response_cap_is_413(aws: dict[str, Any], stub_parser: Any, photo: np.ndarray,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Lambda sends an image answer base64-encoded: one that would not fit is refused, not cut by Lambda."""
    from fastapi.testclient import TestClient
    from humanparse.entries.api.routes import parse

    client = TestClient(build_service(settings_for(aws, cache_enabled=False), stub_parser, aws["s3"]).app)
    data = encode_jpeg(photo)
    size = len(client.post("/parse?output=overlay", content=data, headers={"content-type": "image/jpeg"}).content)
    monkeypatch.setattr(parse, "MAX_SYNC_RESPONSE", size * 4 // 3 - 1)
    r = client.post("/parse?output=overlay", content=data, headers={"content-type": "image/jpeg"})
    assert r.status_code == 413 and r.json()["error"] == "response_too_large"


def test_parse_multipart_refusals(aws: dict[str, Any], stub_parser: Any, photo: np.ndarray) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(build_service(settings_for(aws, sync_max_bytes=20_000), stub_parser, aws["s3"]).app)
    big = encode_png(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8))
    r = client.post("/parse", files={"file": ("big.png", big, "image/png")})
    assert r.status_code == 413 and r.json()["error"] == "too_large"
    r = client.post("/parse", files={"photo": ("a.png", encode_png(photo[:64, :64]), "image/png")})
    assert r.status_code == 422 and r.json()["error"] == "invalid_request" and "file" in r.json()["detail"]
    r = client.post("/parse", files={"file": ("a.txt", b"hello", "text/plain")})
    assert r.status_code == 415 and r.json()["error"] == "not_an_image"


def test_openapi_shows_both_parse_request_forms(svc: Any) -> None:
    code, _, body = call(svc, ev("apigw-v2-get-healthz.json", rawPath="/openapi.json"))
    content = json.loads(body)["paths"]["/parse"]["post"]["requestBody"]["content"]
    assert "file" in content["multipart/form-data"]["schema"]["properties"]
    assert content["image/jpeg"]["schema"]["format"] == "binary"


# ------------------------------------------------------------------------------ offline docs
@pytest.mark.parametrize("page,asset", [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")])
def test_docs_pages_use_packaged_assets(svc: Any, page: str, asset: str) -> None:
    """Both on the Lambda app (through Mangum) and mounted under /api as the local runner does."""
    from fastapi.testclient import TestClient
    from humanparse.local.web import build_site

    code, _, body = call(svc, ev("apigw-v2-get-healthz.json", rawPath=page))
    html = body.decode()
    assert code == 200 and f'src="/docs-assets/{asset}"' in html
    assert "cdn.jsdelivr" not in html and "fonts.googleapis" not in html and "unpkg" not in html
    code, headers, js = call(svc, ev("apigw-v2-get-healthz.json", rawPath=f"/docs-assets/{asset}"))
    assert code == 200 and len(js) > 500_000 and "javascript" in headers["content-type"]
    site = TestClient(build_site(svc.app, ROOT / "frontend"))
    page_html = site.get(f"/api{page}").text
    assert f"/api/docs-assets/{asset}" in page_html and "/api/openapi.json" in page_html
    assert site.get(f"/api/docs-assets/{asset}").status_code == 200


# --------------------------------------------------------------------- JSON bodies are capped
def test_json_bodies_over_the_cap_are_refused(svc: Any) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(svc.app)
    huge = json.dumps({"content_type": "image/jpeg", "filename": "x", "pad": "a" * 200_000})
    r = client.post("/uploads", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "request_too_large"

    def chunks() -> Any:  # no Content-Length: the cap holds while streaming
        yield b'{"content_type": "image/jpeg", "pad": "'
        for _ in range(100):
            yield b"a" * 10_000
        yield b'"}'

    r = client.post("/uploads", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "request_too_large"
    r = client.post("/uploads", json={"content_type": "image/jpeg", "filename": "ok.jpg"})
    assert r.status_code == 201


# ------------------------------------------------------------ file names never break metadata
@pytest.mark.parametrize("name", ["a\r\nX: 1\r\n.jpg", "tab\there\x00nul\x7f.jpg", "é" * 127 + ".jpg",
                                  "\u2028line\u200bsep.jpg"])
def test_upload_filename_is_made_safe_for_metadata(svc: Any, name: str) -> None:
    from fastapi.testclient import TestClient

    r = TestClient(svc.app).post("/uploads", json={"content_type": "image/jpeg", "filename": name})
    assert r.status_code == 201, r.text
    meta = r.json()["upload"]["fields"]["x-amz-meta-filename"]
    assert all(32 <= ord(c) < 127 for c in meta) and len(meta.encode()) <= 200 and meta.endswith(".jpg")


# ------------------------------------------------------------------- one error vocabulary
def test_every_error_has_one_code_status_and_message() -> None:
    from humanparse import exceptions as ex

    def family(cls: type) -> list[type]:
        return [cls] + [d for c in cls.__subclasses__() for d in family(c)]

    classes = family(ex.HumanParseError)
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes)), sorted(codes)
    assert all(400 <= c.http_status < 600 and c.message for c in classes)
    assert issubclass(ex.EventFormatError, ex.HumanParseError)
    assert "unsupported_type" not in codes and ex.UploadMissing.code != ex.EmptyInput.code
    err = ex.ImageTooLarge("12 bytes over")
    assert err.to_dict() == {"error": "too_large", "detail": "12 bytes over"}
    assert ex.UploadMissing().to_dict()["detail"] == ex.UploadMissing.message


def test_failed_job_answers_error_and_detail(svc: Any, aws: dict[str, Any]) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(svc.app)
    job = "0123456789abcdef0123456789abcdef"
    key = f"results/{job}/status.json"
    aws["s3"].put_object(Bucket=aws["results_bucket"], Key=key, Body=json.dumps(
        {"status": "failed", "error": "not_an_image", "detail": "not an image"}).encode())
    assert client.get(f"/jobs/{job}").json() == {"job_id": job, "status": "failed", "error": "not_an_image",
                                                  "detail": "not an image"}
    aws["s3"].put_object(Bucket=aws["results_bucket"], Key=key, Body=json.dumps(  # written by an old version
        {"status": "failed", "error": "not_an_image", "reason": "old words"}).encode())
    assert client.get(f"/jobs/{job}").json()["detail"] == "old words"
