"""S3 event parsing at the edge, on the real payloads in tests/events/ (plus property-based fuzzing)."""

from __future__ import annotations

import json
from urllib.parse import quote_plus

import pytest
from conftest import EVENTS
from humanparse.entries.events import EventFormatError, is_s3_event, parse_s3_event
from humanparse.jobs.keys import Layout
from hypothesis import given, settings
from hypothesis import strategies as st
from s3events import make_s3_event


def load(name: str) -> dict:  # type: ignore[type-arg]
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def test_keys_are_unquote_plus_decoded() -> None:
    (r,) = parse_s3_event(load("s3-put-spaces-plus-unicode.json"))
    assert r.key == "uploads/summer party +2024/my photo 图片 été.jpg"
    assert r.bucket == "humanparse-uploads" and r.size == 1024 and r.is_create
    assert r.version_id == "3HL4kqtJlcpXroDTDmjVBH40Nrjfkd"


def test_several_records_and_percent() -> None:
    recs = parse_s3_event(load("s3-multi-record.json"))
    assert [r.key for r in recs] == ["uploads/batch/a 1.jpg", "uploads/batch/b%c.png"]


def test_test_event_and_non_events() -> None:
    assert parse_s3_event(load("s3-test-event.json")) == []
    assert is_s3_event(load("s3-test-event.json"))
    assert not is_s3_event(load("apigw-v2-get-healthz.json"))
    with pytest.raises(EventFormatError):
        parse_s3_event({"Records": [{"eventSource": "aws:s3", "s3": {}}]})
    with pytest.raises(EventFormatError):
        parse_s3_event({"hello": 1})


def test_layout_job_ids() -> None:
    lay = Layout("uploads/", "results/")
    assert lay.job_id_for_key("uploads/0123456789abcdef0123456789abcdef/image.png") == "0123456789abcdef0123456789abcdef"
    other = lay.job_id_for_key("uploads/summer party +2024/my photo 图片.jpg")
    assert len(other) == 32 and other == lay.job_id_for_key("uploads/summer party +2024/my photo 图片.jpg")
    assert not lay.in_uploads("results/x/status.json") and not lay.in_uploads("other/photo.jpg")
    (r,) = parse_s3_event(load("s3-outside-prefix.json"))[1:]
    # a traversal-looking key is just a key; its results live under a hash id, never under its text
    assert "/" not in lay.job_id_for_key(r.key) and ".." not in lay.result_key(lay.job_id_for_key(r.key), "x")


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=300))
def test_any_key_roundtrips_through_encoding(key: str) -> None:
    ev = make_s3_event("b", key, size=1, etag="e")
    assert parse_s3_event(ev)[0].key == key
    ev["Records"][0]["s3"]["object"]["key"] = quote_plus(key)
    assert parse_s3_event(ev)[0].key == key


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
                    max_leaves=30))
def test_garbage_never_crashes_unexpectedly(payload: object) -> None:
    try:
        parse_s3_event(payload)
    except EventFormatError:
        pass
