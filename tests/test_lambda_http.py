"""The HTTP entry through Mangum, with API Gateway v2 / Function URL event payloads, against moto S3."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import numpy as np
import pytest
from conftest import EVENTS, encode_jpeg, encode_png
from humanparse.config import Settings
from humanparse.service import build_service
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
