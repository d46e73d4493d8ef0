"""The functions' JSON log lines and their CloudWatch EMF metrics, read from real runs of the Lambda
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
from humanparse.entries.service import build_service
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
    from humanparse.entries.events import parse_s3_event

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



def test_http_entry_logs_and_flushes_per_invocation(svc: Any, photo: np.ndarray, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A synchronous ``POST /parse`` through the Lambda entry (a real Function URL payload): a "parsed" line
    with the invocation's request id, and the parse metrics flushed when the invocation ends."""
    import base64

    from conftest import EVENTS

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    ev = json.loads((EVENTS / "function-url-post-parse.json").read_text(encoding="utf-8"))
    ev["body"] = base64.b64encode(encode_jpeg(photo[:200, :160], quality=90)).decode()
    handler = observability.logger.logger_handler
    buf = io.StringIO()
    old = handler.setStream(buf)  # type: ignore[attr-defined]
    try:
        capsys.readouterr()
        out = svc.handler(ev, FakeContext("req-http"))
    finally:
        handler.setStream(old)  # type: ignore[attr-defined]
    assert out["statusCode"] == 200
    lines = [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]
    (p,) = [x for x in lines if x["message"] == "parsed"]
    assert p["request_id"] == "req-http" and p["model"] == "stub" and p["persons"] == 1
    (blob,) = [b for b in emf_blobs(capsys.readouterr().out) if "ParseTime" in b]
    assert blob["ImagesParsed"] in (1.0, [1.0]) and not observability.metrics.metric_set


def test_http_parse_failure_is_counted(svc: Any, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A refused synchronous parse counts in Failures by its code, as a refused upload does in the trigger."""
    import base64

    from conftest import EVENTS

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    ev = json.loads((EVENTS / "function-url-post-parse.json").read_text(encoding="utf-8"))
    ev["body"] = base64.b64encode(b"this is not an image").decode()
    capsys.readouterr()
    out = svc.handler(ev, FakeContext("req-bad"))
    assert out["statusCode"] == 415
    blobs = [b for b in emf_blobs(capsys.readouterr().out) if "Failures" in b]
    assert blobs and blobs[0]["ErrorCode"] == "not_an_image", blobs

class Collect:
    """An X-Ray emitter that keeps what would go to the daemon."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send_entity(self, entity: Any) -> None:
        self.sent.append(entity)

    def set_daemon_address(self, address: Any) -> None:
        pass

    @property
    def ip(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return 2000


def test_xray_subsegments_on_an_s3_trigger_run(aws: dict[str, Any], svc: Any, photo: np.ndarray,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Tracing is off outside Lambda (as in every other test); switched on here, a real trigger run records
    fetch, decode, parse, render and write, in that order, under one segment."""
    from aws_xray_sdk import global_sdk_config
    from aws_xray_sdk.core import xray_recorder

    assert observability.tracer.disabled  # off by default outside Lambda
    emitter = Collect()
    was_enabled, old_emitter, old_sampling = global_sdk_config.sdk_enabled(), xray_recorder.emitter, \
        xray_recorder.sampling
    monkeypatch.setattr(observability.tracer, "disabled", False)
    global_sdk_config.set_sdk_enabled(True)
    xray_recorder.configure(emitter=emitter, sampling=False)
    ev, _ = upload_event(aws, encode_jpeg(photo[:200, :160], quality=90))
    try:
        xray_recorder.begin_segment("test")
        (rec,) = run(svc, ev, "req-1")["records"]
        segment = xray_recorder.current_segment()
        xray_recorder.end_segment()
    finally:
        xray_recorder.configure(emitter=old_emitter, sampling=old_sampling)
        global_sdk_config.set_sdk_enabled(was_enabled)
    assert rec["status"] == "done"
    names = [s.name for s in segment.subsegments]
    assert [n for n in names if n in ("fetch", "decode", "parse", "render", "write")] == \
        ["fetch", "decode", "parse", "render", "write"], names
    assert emitter.sent and emitter.sent[-1] is segment


@pytest.mark.parametrize("mode", ["Active", "PassThrough"])
def test_template_tracing_switch(mode: str) -> None:
    """The template's ``Tracing`` parameter reaches both functions through the SAM translator, and their roles
    may write to X-Ray."""
    from test_infra import render

    t = render(Tracing=mode)
    for fn in ("ParserFunction", "ApiFunction"):
        props = t["Resources"][fn]["Properties"]
        assert props["TracingConfig"] == {"Mode": {"Ref": "Tracing"}}
        role = t["Resources"][props["Role"]["Fn::GetAtt"][0]]["Properties"]
        assert any("AWSXrayWriteOnlyAccess" in str(a) for a in role["ManagedPolicyArns"])
    assert t["Parameters"]["Tracing"]["AllowedValues"] == ["Active", "PassThrough"]
