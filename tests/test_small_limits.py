"""The smaller rules: a stored record's header (content type, ETag) checks itself like its body; an APNG is read
from its first animation frame, not a hidden default image; S3's key rules (at most 1024 bytes of UTF-8, else
``KeyTooLongError`` and nothing stored; a newline is a legal character); a non-ASCII API token works as UTF-8."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from botocore.exceptions import ClientError
from PIL import Image


# --------------------------------------------------------------------------------------- record header
@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Any]:
    """An open data folder at ``tmp_path / "data"`` (no fsync: these tests check formats, not crashes)."""
    from humanparse.local.durable import DiskStore

    opened = DiskStore(tmp_path / "data", fsync=False)
    opened.open()
    yield opened
    opened.close()


@pytest.mark.parametrize("field,old,new", [("content type", b"image/png", b"image/pnf"),
                                           ("etag", b'"etag": "abc', b'"etag": "abd')])
def test_a_flipped_bit_in_the_header_is_caught(store: Any, tmp_path: Path, field: str, old: bytes, new: bytes) -> None:
    from humanparse.local.durable import Record

    store.put(Record("b", "uploads/x/p.png", b"pixels", "abcdef", {"Content-Type": "image/png"}))
    store.put(Record("b", "uploads/y/p.png", b"pixels", "abcdef", {"Content-Type": "image/png"}))
    path = store.path("b", "uploads/x/p.png")
    blob = path.read_bytes()
    assert blob.count(old) == 1, (field, blob[:300])
    path.write_bytes(blob.replace(old, new))  # one bit: 'g' -> 'f', 'c' -> 'd'
    assert [r.key for r in store.scan("b")] == ["uploads/y/p.png"]  # the flipped one is not served
    assert any((tmp_path / "data" / "quarantine").rglob("*")), "moved to quarantine"


def test_records_of_the_previous_format_are_still_read(store: Any) -> None:
    import hashlib
    import json

    from humanparse.local.durable import MAGIC_V1

    head = {"bucket": "b", "key": "k", "size": 2, "sha256": hashlib.sha256(b"hi").hexdigest(), "etag": "e",
            "metadata": {}, "last_modified": ""}
    target = store.path("b", "k")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(MAGIC_V1 + json.dumps(head).encode() + b"\n" + b"hi")
    assert [(r.key, r.body) for r in store.scan("b")] == [("k", b"hi")]


def test_big_records_are_started_from_disk_in_pieces(store: Any) -> None:
    from humanparse.local.durable import Record

    body = np.random.default_rng(0).integers(0, 256, 3 << 20, dtype=np.uint8).tobytes()
    store.put_stream(Record("b", "big", b"", "e"), lambda: iter([body[:1 << 20], body[1 << 20:]]),
                     size=len(body))
    (rec,) = list(store.scan("b"))
    assert rec.body == b"" and rec.body_at is not None and b"".join(rec.chunks()) == body


# ---------------------------------------------------------------------------------------------- APNG
def test_apng_with_a_default_image_is_read_from_its_first_animation_frame() -> None:
    from humanparse.pipeline.imageio import decode_image

    hidden, first, second = (Image.new("RGB", (64, 48), c) for c in ((255, 0, 0), (0, 200, 0), (0, 0, 255)))
    buf = io.BytesIO()
    hidden.save(buf, format="PNG", save_all=True, append_images=[first, second], default_image=True)
    img = decode_image(buf.getvalue())
    assert tuple(img.rgb[10, 10]) == (0, 200, 0) and img.frames == 2
    plain = io.BytesIO()
    first.save(plain, format="PNG", save_all=True, append_images=[second])  # no default image: frame 0
    assert tuple(decode_image(plain.getvalue()).rgb[10, 10]) == (0, 200, 0)


# ------------------------------------------------------------------------------------------- S3 keys
@pytest.fixture(scope="module")
def s3srv() -> Iterator[dict[str, Any]]:
    from humanparse.local.s3local import EmbeddedS3

    srv = EmbeddedS3()
    srv.start()
    aws = srv.provision(["keys-bucket"], [])
    yield {"s3": aws.client("s3"), "bucket": "keys-bucket"}
    srv.stop()


def test_keys_follow_s3s_length_rule(s3srv: dict[str, Any]) -> None:
    s3, bucket = s3srv["s3"], s3srv["bucket"]
    longest = "uploads/" + "é" * 508  # 8 + 1016 = 1024 bytes
    s3.put_object(Bucket=bucket, Key=longest, Body=b"ok")
    assert s3.get_object(Bucket=bucket, Key=longest)["Body"].read() == b"ok"
    for key in ("uploads/" + "é" * 509, "uploads/" + "k" * 1092):  # 1026 and 1100 bytes
        with pytest.raises(ClientError) as ei:
            s3.put_object(Bucket=bucket, Key=key, Body=b"no")
        assert ei.value.response["Error"]["Code"] == "KeyTooLongError"
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert all(len(k.encode()) <= 1024 for k in listed)
    # the browser's way: a presigned POST for a 1,100-byte key is refused, nothing stored
    key = "uploads/" + "p" * 1092
    post = s3.generate_presigned_post(bucket, key, ExpiresIn=300)
    r = requests.post(post["url"], data=post["fields"], files={"file": ("p.png", b"x", "image/png")}, timeout=30)
    assert r.status_code == 400 and re.search(r"<Code>KeyTooLongError</Code>", r.text), r.text
    assert key not in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_a_newline_is_a_legal_key_character(s3srv: dict[str, Any]) -> None:
    s3, bucket = s3srv["s3"], s3srv["bucket"]
    for key in ("uploads/line\nbreak.png", "uploads/big\nline.bin"):
        body = b"n" * ((9 << 20) if "big" in key else 10)  # the big one is served from the key's buffer
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
        part = s3.get_object(Bucket=bucket, Key=key, Range="bytes=5-9")
        assert part["Body"].read() == body[5:10] and part["ContentRange"] == f"bytes 5-9/{len(body)}"
        assert key in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="uploads/").get("Contents", [])]
        s3.delete_object(Bucket=bucket, Key=key)


# --------------------------------------------------------------------------------------------- token
def test_a_non_ascii_token_works_as_utf8(aws: dict[str, Any], stub_parser: Any) -> None:
    from fastapi.testclient import TestClient
    from humanparse.entries.service import build_service
    from test_lambda_s3 import settings_for

    for token in ("pässwörd-€-令牌", "café-crème"):
        client = TestClient(build_service(settings_for(aws, api_token=token), stub_parser, aws["s3"]).app)
        utf8 = client.get("/config", headers={"Authorization": b"Bearer " + token.encode("utf-8")})
        assert utf8.status_code == 200, (token, utf8.text)
        wrong = client.get("/config", headers={"Authorization": b"Bearer " + token[:-1].encode("utf-8")})
        assert wrong.status_code == 401
    # a browser's fetch sends a latin-1 token as latin-1 bytes: that works too
    latin = client.get("/config", headers={"Authorization": b"Bearer " + "café-crème".encode("latin-1")})
    assert latin.status_code == 200
