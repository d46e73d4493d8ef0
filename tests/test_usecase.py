"""The one use case (``humanparse.pipeline.usecase.parse_image``) and the three entries that call it."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import encode_jpeg
from humanparse.config import Settings
from humanparse.entries.service import build_service
from humanparse.exceptions import NotAnImage
from humanparse.pipeline.rendering import ARTIFACTS
from humanparse.pipeline.usecase import ParseOptions, ParseOutput, parse_image
from PIL import Image


def test_parse_image_contract(stub_parser: Any, photo: np.ndarray) -> None:
    out = parse_image(encode_jpeg(photo), stub_parser, ParseOptions(), extra={"source": "x.jpg"})
    assert isinstance(out, ParseOutput) and list(out.files) == list(ARTIFACTS)
    assert out.labels.shape == photo.shape[:2] and out.labels.dtype == np.uint8
    assert out.persons.shape == photo.shape[:2] and int(out.persons.max()) == 1
    assert out.summary == json.loads(out.files["result.json"])
    assert out.summary["source"] == "x.jpg" and out.summary["input"]["format"] == "JPEG"
    assert set(out.timings) == {"decode", "parse", "render", "total"} and out.timings["total"] >= 0
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(out.files["label.png"]))), out.labels)
    with pytest.raises(NotAnImage):
        parse_image(b"not an image", stub_parser)
    assert stub_parser.calls == 1  # a refused input never reaches the parser


def test_three_entries_give_the_same_label_map(aws: dict[str, Any], lite_parser: Any, photo: np.ndarray,
                                               tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """HTTP /parse, the S3 trigger and the CLI on the real lite model: one use case, one answer."""
    from fastapi.testclient import TestClient
    from humanparse.entries.cli import cmd_parse

    data = encode_jpeg(photo)
    svc = build_service(Settings(upload_bucket=aws["upload_bucket"], results_bucket=aws["results_bucket"]),
                        lite_parser, aws["s3"])
    http = TestClient(svc.app).post("/parse?output=label", files={"file": ("p.jpg", data, "image/jpeg")}).content
    key = "uploads/0123456789abcdef0123456789abcdef/image.jpg"
    aws["s3"].put_object(Bucket=aws["upload_bucket"], Key=key, Body=data)
    from s3events import make_s3_event

    etag = aws["s3"].head_object(Bucket=aws["upload_bucket"], Key=key)["ETag"]
    assert svc.handler(make_s3_event(aws["upload_bucket"], key, size=len(data), etag=etag), None)["failed"] == 0
    s3_png = aws["s3"].get_object(Bucket=aws["results_bucket"],
                                  Key="results/0123456789abcdef0123456789abcdef/label.png")["Body"].read()
    src = tmp_path / "p.jpg"
    src.write_bytes(data)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    args = argparse.Namespace(images=[str(src), str(bad)], out=str(tmp_path / "out"), quiet=True, model="lite",
                              model_dir=None, lite_dir=None, cache_dir=None, threads=2)
    assert cmd_parse(args) == 1  # one failed, named with the same code as HTTP and status.json
    err = capsys.readouterr().err
    assert f"{bad}: not_an_image:" in err and f"1 parsed, 1 failed: {bad} (not_an_image) → {tmp_path / 'out'}" in err
    cli = (tmp_path / "out" / "p.label.png").read_bytes()
    maps = [np.asarray(Image.open(io.BytesIO(b))) for b in (http, s3_png, cli)]
    assert maps[0].shape == photo.shape[:2]
    assert all(np.array_equal(maps[0], m) for m in maps[1:])
