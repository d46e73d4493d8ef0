"""Issue 18: the functions' JSON log lines and their CloudWatch EMF metrics, read from real runs of the Lambda
entry (``Service.handler``) on S3 notifications against moto's S3 server; the parser is the stub (the model is
not the point here)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from conftest import encode_jpeg
from humanparse import observability
from humanparse.service import build_service
from test_lambda_s3 import event_for, put, settings_for


@dataclass
class FakeContext:
    """What the Lambda runtime hands in: only ``aws_request_id`` is read."""

    aws_request_id: str


@pytest.fixture()
def svc(aws: dict[str, Any], stub_parser: Any) -> Any:
    return build_service(settings_for(aws), stub_parser, aws["s3"])


@pytest.fixture()
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if this were a new container: the next invocation is the cold one, the model took 1234.5 ms."""
    monkeypatch.setattr(observability, "_cold", True)
    monkeypatch.setattr(observability, "_model_load_ms", 1234.5)


def upload_event(aws: dict[str, Any], body: bytes) -> tuple[dict[str, Any], str]:
    ev = event_for("s3-put-spaces-plus-unicode.json", aws["upload_bucket"])
    from humanparse.events import parse_s3_event

    key = parse_s3_event(ev)[0].key
    meta = put(aws, key, body)
    return event_for("s3-put-spaces-plus-unicode.json", aws["upload_bucket"], **meta), key


def run(svc: Any, ev: dict[str, Any], request_id: str) -> dict[str, Any]:
    out: dict[str, Any] = svc.handler(ev, FakeContext(request_id))
    return out


def test_log_fields(aws: dict[str, Any], svc: Any, photo: np.ndarray, fresh_process: None) -> None:
    handler = observability.logger.logger_handler
    buf = io.StringIO()
    old = handler.setStream(buf)  # type: ignore[attr-defined]
    try:
        ev, key = upload_event(aws, encode_jpeg(photo[:200, :160], quality=90))
        (rec,) = run(svc, ev, "req-1")["records"]
        ev2, _ = upload_event(aws, b"this is not an image")
        (rec2,) = run(svc, ev2, "req-2")["records"]
    finally:
        handler.setStream(old)  # type: ignore[attr-defined]
    assert (rec["status"], rec2["status"]) == ("done", "failed")
    lines = [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]  # each line is JSON
    parsed = [line for line in lines if line["message"] == "parsed"]
    assert len(parsed) == 1, lines
    p = parsed[0]
    assert p["level"] == "INFO" and p["service"] == "humanparse"
    assert p["job_id"] == rec["job_id"] and p["s3_key"] == key  # decoded key (spaces, +, unicode)
    assert p["model"] == "stub" and p["precision"] == "fp32" and p["persons"] == 1
    assert p["request_id"] == "req-1" and p["cold_start"] is True
    assert isinstance(p["elapsed_ms"], float) and p["elapsed_ms"] >= p["parse_ms"] > 0
    failed = [line for line in lines if line["message"] == "job failed"]
    assert len(failed) == 1, lines
    f = failed[0]
    assert f["level"] == "WARNING" and f["error"] == "not_an_image" and f["job_id"] == rec2["job_id"]
    assert f["request_id"] == "req-2" and f["cold_start"] is False and f["s3_key"] == key
    # keys bound to one invocation do not leak into the next line logged outside it
    observability.logger.info("after")
    assert "request_id" not in observability.logger.thread_safe_get_current_keys()


def emf_blobs(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            out.append(json.loads(line))
    return out


def test_emf_metrics_on_an_s3_trigger_run(aws: dict[str, Any], svc: Any, photo: np.ndarray, fresh_process: None,
                                         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")  # as inside Lambda, where it is on by default
    capsys.readouterr()
    ev, _ = upload_event(aws, encode_jpeg(photo[:200, :160], quality=90))
    run(svc, ev, "req-1")
    ev2, _ = upload_event(aws, b"this is not an image")
    run(svc, ev2, "req-2")
    blobs = emf_blobs(capsys.readouterr().out)
    by_metric: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for blob in blobs:
        (directive,) = blob["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "humanparse"
        assert isinstance(blob["_aws"]["Timestamp"], int)
        for m in directive["Metrics"]:
            by_metric.setdefault(m["Name"], (m, {"dims": directive["Dimensions"], "blob": blob}))
    units = {name: m["Unit"] for name, (m, _) in by_metric.items()}
    assert units == {"ColdStart": "Count", "ModelLoadTime": "Milliseconds", "ParseTime": "Milliseconds",
                     "ImagesParsed": "Count", "PersonsFound": "Count", "Failures": "Count"}, units
    # one blob for the first invocation: the cold start, the load time and the parse, dimension service
    _, first = by_metric["ParseTime"]
    assert first["dims"] == [["service"]] and first["blob"]["service"] == "humanparse"
    values = {k: v if isinstance(v, list) else [v] for k, v in first["blob"].items() if k in units}
    assert values["ImagesParsed"] == [1.0] and values["PersonsFound"] == [1.0]
    assert values["ColdStart"] == [1.0] and values["ModelLoadTime"] == [1234.5]
    assert 0 < values["ParseTime"][0] < 60_000
    # failures by error code: their own blob, ErrorCode as a dimension
    _, fail = by_metric["Failures"]
    assert fail["dims"] == [["service", "ErrorCode"]]
    assert fail["blob"]["ErrorCode"] == "not_an_image" and fail["blob"]["Failures"] in (1.0, [1.0])
    # the second invocation is warm: no second ColdStart
    assert sum("ColdStart" in b for b in blobs) == 1


def test_metrics_stay_off_outside_lambda(aws: dict[str, Any], svc: Any, photo: np.ndarray,
                                         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The local runner's default: nothing is recorded (so nothing accumulates) and no EMF on its console."""
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    ev, _ = upload_event(aws, encode_jpeg(photo[:200, :160], quality=90))
    run(svc, ev, "req-1")
    assert emf_blobs(capsys.readouterr().out) == []
    assert not observability.metrics.metric_set
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "humanparse-parser")
    assert observability.metrics_enabled()
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    assert not observability.metrics_enabled()
