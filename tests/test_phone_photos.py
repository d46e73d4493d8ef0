"""a 12 MP phone photo (4032x3024 JPEG) parses through every entry with the real lite model — the CLI, the
HTTP ``/parse`` route (within its 4 MB body limit) and the S3 trigger (moto's server) — and each label map has the
photo's size; a 100 MP JPEG header with no data behind it is refused by ``/parse`` with 413 before any decoding."""

from __future__ import annotations

import base64
import io
import json
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import EVENTS
from humanparse.config import Settings
from humanparse.entries.cli import main
from humanparse.entries.events import parse_s3_event
from humanparse.entries.service import build_service
from PIL import Image

PHONE = (4032, 3024)  # (w, h): the common 12 MP phone size


@pytest.fixture(scope="module")
def phone_jpeg(people_photos: list[Path]) -> bytes:
    """A photo of two people cropped to 4:3 and enlarged to 4032x3024, JPEG q80 (as bench/scale.py makes them)."""
    im = Image.open(people_photos[2]).convert("RGB")
    w, h = im.size
    cw = min(w, h * 4 // 3)
    im = im.crop(((w - cw) // 2, 0, (w - cw) // 2 + cw, h)).resize(PHONE, Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def _settings(aws: dict[str, Any]) -> Settings:
    return Settings(upload_bucket=aws["upload_bucket"], results_bucket=aws["results_bucket"],
                    s3_endpoint_url=aws["endpoint"])


def _http(svc: Any, body: bytes, query: str = "") -> tuple[int, dict[str, str], bytes]:
    e: dict[str, Any] = json.loads((EVENTS / "function-url-post-parse.json").read_text(encoding="utf-8"))
    e["body"] = base64.b64encode(body).decode()
    if query:
        k, v = query.split("=")
        e["rawQueryString"], e["queryStringParameters"] = query, {k: v}
    out = svc.handler(e, None)
    raw = base64.b64decode(out["body"]) if out.get("isBase64Encoded") else out["body"].encode("utf-8")
    return out["statusCode"], {k.lower(): v for k, v in out.get("headers", {}).items()}, raw


def _label_size(png: bytes) -> tuple[int, int]:
    img = Image.open(io.BytesIO(png))
    assert np.asarray(img).max() > 0  # someone was found, not an empty map
    return img.size


def test_cli(phone_jpeg: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "phone.jpg"
    src.write_bytes(phone_jpeg)
    rc = main(["parse", str(src), "--out", str(tmp_path / "out"), "--model", "lite", "--threads", "2", "--json"])
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert rc == 0 and line["status"] == "parsed", line
    assert _label_size((tmp_path / "out" / "phone.label.png").read_bytes()) == PHONE
    over = Image.open(tmp_path / "out" / "phone.overlay.jpg")
    assert over.size == PHONE and over.format == "JPEG"


def test_http_parse(aws: dict[str, Any], lite_parser: Any, phone_jpeg: bytes) -> None:
    s = _settings(aws)
    assert len(phone_jpeg) < s.sync_max_bytes  # the test is about a photo the route accepts
    svc = build_service(s, lite_parser, aws["s3"])
    code, headers, body = _http(svc, phone_jpeg, "output=label")
    assert code == 200 and headers["content-type"] == "image/png", body[:300]
    assert _label_size(body) == PHONE


def test_s3_trigger(aws: dict[str, Any], lite_parser: Any, phone_jpeg: bytes) -> None:
    svc = build_service(_settings(aws), lite_parser, aws["s3"])
    ev: dict[str, Any] = json.loads((EVENTS / "s3-put-spaces-plus-unicode.json").read_text(encoding="utf-8"))
    for r in ev["Records"]:
        r["s3"]["bucket"]["name"], r["s3"]["bucket"]["arn"] = aws["upload_bucket"], f"arn:aws:s3:::{aws['upload_bucket']}"
        r["s3"]["object"].pop("versionId", None)
    key = parse_s3_event(ev)[0].key
    resp = aws["s3"].put_object(Bucket=aws["upload_bucket"], Key=key, Body=phone_jpeg, ContentType="image/jpeg")
    for r in ev["Records"]:
        r["s3"]["object"]["eTag"], r["s3"]["object"]["size"] = resp["ETag"].strip('"'), len(phone_jpeg)
    (rec,) = svc.handler(ev, None)["records"]
    assert rec["status"] == "done", rec
    got = aws["s3"].get_object(Bucket=aws["results_bucket"], Key=f"results/{rec['job_id']}/label.png")
    assert _label_size(got["Body"].read()) == PHONE
    over = aws["s3"].get_object(Bucket=aws["results_bucket"], Key=f"results/{rec['job_id']}/overlay.jpg")
    assert over["ContentType"] == "image/jpeg" and Image.open(io.BytesIO(over["Body"].read())).size == PHONE


def test_http_refuses_100mp_header_fast(aws: dict[str, Any], stub_parser: Any) -> None:
    """A 12000x9000 (108 MP) JPEG header with no scan data: 413 from the header, in well under a second."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, format="JPEG")
    head = buf.getvalue()
    sof = head.index(b"\xff\xc0")
    bomb = head[:sof + 5] + struct.pack(">HH", 9000, 12000) + head[sof + 9:head.index(b"\xff\xda")]
    svc = build_service(_settings(aws), stub_parser, aws["s3"])
    t = time.perf_counter()
    code, _, body = _http(svc, bomb)
    assert time.perf_counter() - t < 1.0
    assert code == 413 and json.loads(body)["error"] == "too_large" and stub_parser.calls == 0
