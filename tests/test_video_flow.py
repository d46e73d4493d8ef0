"""Video in the job flow: the local runner end to end (upload a clip made here → split into chunks on
its queue → join → outputs), stop and restart mid-job, hostile videos failing with their code, and the S3 trigger's
chunk retry rule (a chunk that keeps failing fails the job, never hangs it)."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import requests
from humanparse.config import Settings
from humanparse.entries.service import build_service
from humanparse.video import iter_frames, probe
from humanparse.video.job import QueueFanOut, chunk_message, join_message
from PIL import Image
from runner import Runner
from test_local_runner import upload, wait
from test_video import _clip_from_photo, write_clip

FLOW_ENV = {"HUMANPARSE_VIDEO_CHUNK_FRAMES": "3", "HUMANPARSE_VIDEO_SAMPLE_FPS": "4",
            "HUMANPARSE_VIDEO_PROGRESS_INTERVAL_S": "0.2"}


def decode(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def wait_running(base: str, job: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        j: dict[str, Any] = requests.get(f"{base}/api/jobs/{job}", timeout=30).json()
        if j["status"] in ("done", "failed") or (j["status"] == "running" and j.get("frames_done")):
            return j
        time.sleep(0.1)
    raise TimeoutError(job)


def test_runner_splits_joins_resumes_and_fails_hostile_videos(tmp_path: Path, photo: np.ndarray,
                                                              shared_models: Path, lite_parser: Any) -> None:
    clip = write_clip(tmp_path / "clip.mp4", _clip_from_photo(photo, 25, (192, 144)), fps=10)  # 2.5 s
    info = probe(clip, fps=4.0)
    assert info.frames == 10  # 4 chunks of <= 3 frames
    data = tmp_path / "data"
    r = Runner(data, env=FLOW_ENV).start()
    try:
        job = upload(r.base, clip.read_bytes(), "video/mp4", "walk.mp4")
        bad = upload(r.base, b"this is a text file, not a clip" * 10, "video/mp4", "notes.mp4")
        cut = upload(r.base, clip.read_bytes()[: clip.stat().st_size // 3], "video/mp4", "cut.mp4")
        running = wait_running(r.base, job)
        assert running["status"] == "running" and running["kind"] == "video", running
        assert running["frames_total"] == 10 and 0 < running["frames_done"] < 10
        assert running["original"].startswith("http")
    finally:
        assert r.stop(120) == 0  # in-flight chunk finishes; queued chunk messages are dropped
    r = Runner(data, env=FLOW_ENV).start()  # the restart queues the unfinished job again: missing chunks only
    try:
        done = wait(r.base, job, 300)
        assert done["status"] == "done", done
        failed = wait(r.base, bad, 60)
        assert (failed["status"], failed["error"]) == ("failed", "not_a_video"), failed
        failed = wait(r.base, cut, 60)
        assert (failed["status"], failed["error"]) == ("failed", "truncated_video"), failed
        res = done["results"]
        assert set(res) == {"color.webm", "overlay.webm", "persons.webm", "labels.zip", "tracks.json",
                            "poster.jpg", "result.json"}
        assert done["frames_done"] == done["frames_total"] == 10
        result = requests.get(res["result.json"], timeout=30).json()
        assert result["chunks"] == [[0, 2], [2, 5], [5, 8], [8, 10]] and result["frames"] == 10
        for name in ("color.webm", "overlay.webm"):
            frames = decode(requests.get(res[name], timeout=30).content)
            assert len(frames) == 10 and frames[0].shape == (144, 192, 3), name
        with zipfile.ZipFile(io.BytesIO(requests.get(res["labels.zip"], timeout=30).content)) as z:
            names = sorted(n for n in z.namelist() if n.startswith("labels/"))
            assert len(names) == 10
            first = np.asarray(Image.open(io.BytesIO(z.read(names[0]))))
        frame0 = next(iter_frames(clip, info))
        assert np.array_equal(first, lite_parser.parse(frame0.rgb).label_map)  # ids match the frame's parse
        tracks = requests.get(res["tracks.json"], timeout=30).json()["tracks"]
        assert tracks and all(t["frames"] for t in tracks)
        assert requests.get(done["original"], timeout=30).content == clip.read_bytes()
        assert requests.get(res["poster.jpg"], timeout=30).content[:2] == b"\xff\xd8"
    finally:
        r.stop()


class FlakyParser:
    """The Parser boundary stubbed: fails on every call (a chunk that keeps failing)."""

    def __init__(self, info: Any) -> None:
        self.info = info

    def parse(self, rgb: np.ndarray, *, deadline: float | None = None) -> Any:
        raise RuntimeError("out of memory (simulated)")


def test_chunk_that_keeps_failing_fails_the_job(aws: dict[str, Any], stub_parser: Any, tmp_path: Path,
                                                photo: np.ndarray) -> None:
    settings = Settings(upload_bucket=aws["upload_bucket"], results_bucket=aws["results_bucket"],
                        s3_endpoint_url=aws["endpoint"], video_chunk_frames=2, video_sample_fps=4.0)
    sqs = aws["local"].client("sqs")
    queue = sqs.create_queue(QueueName=f"q-{aws['upload_bucket']}")["QueueUrl"]
    svc = build_service(settings, FlakyParser(stub_parser.info), aws["s3"])
    svc.trigger.video.fan_out = QueueFanOut(sqs, queue)
    clip = write_clip(tmp_path / "c.webm", _clip_from_photo(photo, 10, (64, 48)), codec="libvpx-vp9", fmt="webm")
    key = "uploads/" + "a" * 32 + "/video.webm"
    aws["s3"].put_object(Bucket=aws["upload_bucket"], Key=key, Body=clip.read_bytes(), ContentType="video/webm")
    etag = aws["s3"].head_object(Bucket=aws["upload_bucket"], Key=key)["ETag"].strip('"')
    from s3events import make_s3_event

    out = svc.handler(make_s3_event(aws["upload_bucket"], key, size=clip.stat().st_size, etag=etag))
    assert out["records"][0]["status"] == "running"
    status = svc.store.read_status("a" * 32)
    assert status is not None and status["status"] == "running"
    sent = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]]
    assert [m["index"] for m in sent] == list(range(status["chunks"]))
    msg = chunk_message("a" * 32, status["source"], status["plan"], 0)
    for _ in range(2):  # retried (the exception reaches the queue / the state machine's Retry)
        with pytest.raises(RuntimeError):
            svc.handler(msg)
    assert svc.handler(msg)["status"] == "failed"
    view = svc.store.job_view("a" * 32)
    assert view is not None and view["status"] == "failed" and view["error"] == "chunk_failed", view
    assert "out of memory" in view["detail"]
    assert svc.handler(msg)["status"] == "skipped"  # a late redelivery changes nothing


def _trigger(aws: dict[str, Any], parser: Any, **kw: Any) -> Any:
    settings = Settings(upload_bucket=aws["upload_bucket"], results_bucket=aws["results_bucket"],
                        s3_endpoint_url=aws["endpoint"], **kw)
    return build_service(settings, parser, aws["s3"])


def _put(aws: dict[str, Any], svc: Any, body: bytes, ctype: str, ext: str, job: str) -> dict[str, Any]:
    from s3events import make_s3_event

    key = f"uploads/{job}/video.{ext}"
    aws["s3"].put_object(Bucket=aws["upload_bucket"], Key=key, Body=body, ContentType=ctype)
    etag = aws["s3"].head_object(Bucket=aws["upload_bucket"], Key=key)["ETag"].strip('"')
    out: dict[str, Any] = svc.handler(make_s3_event(aws["upload_bucket"], key, size=len(body), etag=etag))
    return out


def test_hostile_videos_fail_with_their_code(aws: dict[str, Any], stub_parser: Any, tmp_path: Path,
                                             photo: np.ndarray) -> None:
    from test_video import write_audio_only

    frames = _clip_from_photo(photo, 20, (64, 48))
    good = write_clip(tmp_path / "g.mp4", frames).read_bytes()
    cases = {  # name: (bytes, content type, extension, settings, expected code)
        "empty": (b"", "video/mp4", "mp4", {}, "empty"),
        "text": (b"hello, not a clip" * 20, "video/webm", "webm", {}, "not_a_video"),
        "truncated": (good[: len(good) // 2], "video/mp4", "mp4", {}, "truncated_video"),
        "audio": (write_audio_only(tmp_path / "a.mp4").read_bytes(), "video/mp4", "mp4", {}, "audio_only"),
        "too-long": (good, "video/mp4", "mp4", {"video_max_seconds": 1.0}, "video_too_long"),
        "too-large": (good, "video/mp4", "mp4", {"video_max_bytes": 100}, "video_too_large"),
        "frame-too-large": (good, "video/mp4", "mp4", {"video_max_frame_megapixels": 0.001}, "video_too_large"),
        "codec": (write_clip(tmp_path / "m.mov", frames, codec="mjpeg").read_bytes(), "video/quicktime", "mov", {},
                  "unsupported_codec"),
    }
    for i, (name, (body, ctype, ext, kw, code)) in enumerate(cases.items()):
        svc = _trigger(aws, stub_parser, **kw)
        job = f"{i:032x}"
        out = _put(aws, svc, body, ctype, ext, job)
        view = svc.store.job_view(job)
        assert out["records"][0]["status"] == "failed" and view is not None, (name, out)
        assert (view["status"], view["error"], view["kind"]) == ("failed", code, "video"), (name, view)
    assert stub_parser.calls == 0  # refused before any frame was parsed


class StatusSpy:
    """The Parser boundary: the stub's parse, recording what status.json says while frames are parsed."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.info, self.seen = inner, inner.info, []
        self.read: Any = None

    def parse(self, rgb: np.ndarray, *, deadline: float | None = None) -> Any:
        if self.read is not None:
            doc = self.read()
            self.seen.append((doc["status"], doc.get("frames_done"), doc.get("frames_total")))
        return self.inner.parse(rgb)


def test_short_clip_runs_in_one_invocation_with_progress(aws: dict[str, Any], stub_parser: Any, tmp_path: Path,
                                                         photo: np.ndarray) -> None:
    spy = StatusSpy(stub_parser)
    svc = _trigger(aws, spy, video_progress_interval_s=0.0, video_sample_fps=5.0)
    job = "b" * 32
    spy.read = lambda: svc.store.read_status(job)
    body = write_clip(tmp_path / "s.webm", _clip_from_photo(photo, 20, (64, 48)), codec="libvpx-vp9",
                      fmt="webm").read_bytes()
    out = _put(aws, svc, body, "video/webm", "webm", job)
    assert out["records"][0]["status"] == "done"
    assert [s[0] for s in spy.seen] == ["running"] * 10 and spy.seen[-1][1:] == (9, 10), spy.seen
    view = svc.store.job_view(job)
    assert view is not None and view["status"] == "done" and view["frames_done"] == view["frames_total"] == 10
    assert set(view["results"]) == {"color.webm", "overlay.webm", "persons.webm", "labels.zip", "tracks.json",
                                    "poster.jpg", "result.json"}
    assert requests.get(view["original"], timeout=30).content == body
    keys = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket=aws["results_bucket"])["Contents"]]
    assert not [k for k in keys if "/work/" in k]  # one invocation: no work objects
    # redelivery of the same event: skipped, nothing parsed again
    calls = stub_parser.calls
    assert _put(aws, svc, body, "video/webm", "webm", job)["records"][0]["status"] == "skipped"
    assert stub_parser.calls == calls


class DeadlineSpy:
    """The Parser boundary: the stub's parse, recording the deadline each frame was given."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.info, self.deadlines = inner, inner.info, []

    def parse(self, rgb: np.ndarray, *, deadline: float | None = None) -> Any:
        self.deadlines.append(deadline)
        return self.inner.parse(rgb)


def test_video_job_metrics_log_and_frame_budget(aws: dict[str, Any], stub_parser: Any, tmp_path: Path,
                                                photo: np.ndarray, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A clip through the trigger emits FramesParsed (README) and a "video parsed" log line; a failed clip counts
    in Failures by its code; every frame's parse gets Settings.parse_time_budget_s."""
    from humanparse import observability
    from test_observability import emf_blobs

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")  # as inside Lambda
    spy = DeadlineSpy(stub_parser)
    svc = _trigger(aws, spy, video_sample_fps=5.0, parse_time_budget_s=7.5)
    body = write_clip(tmp_path / "s.webm", _clip_from_photo(photo, 10, (64, 48)), codec="libvpx-vp9",
                      fmt="webm").read_bytes()
    capsys.readouterr()
    handler = observability.logger.logger_handler
    buf = io.StringIO()
    old = handler.setStream(buf)  # type: ignore[attr-defined]
    try:
        t0 = time.monotonic()
        assert _put(aws, svc, body, "video/webm", "webm", "c" * 32)["records"][0]["status"] == "done"
        t1 = time.monotonic()
        assert _put(aws, svc, b"not a clip" * 50, "video/webm", "webm", "d" * 32)["records"][0]["status"] == "failed"
    finally:
        handler.setStream(old)  # type: ignore[attr-defined]
    blobs = emf_blobs(capsys.readouterr().out)
    frames = [b["FramesParsed"] for b in blobs if "FramesParsed" in b]
    assert frames in ([5.0], [[5.0]]), blobs
    fails = [b for b in blobs if "Failures" in b]
    assert [b["ErrorCode"] for b in fails] == ["not_a_video"], blobs
    lines = [json.loads(x) for x in buf.getvalue().splitlines() if x.strip()]
    (done,) = [x for x in lines if x["message"] == "video parsed"]
    assert done["job_id"] == "c" * 32 and done["frames"] == 5 and done["model"] == "stub" and done["elapsed_ms"] > 0
    assert done["s3_key"] == f"uploads/{'c' * 32}/video.webm"
    (failed,) = [x for x in lines if x["message"] == "job failed"]
    assert failed["job_id"] == "d" * 32 and failed["error"] == "not_a_video" and failed["level"] == "WARNING"
    assert len(spy.deadlines) == 5
    assert all(d is not None and t0 + 7.5 <= d <= t1 + 7.5 for d in spy.deadlines), spy.deadlines


def test_forged_video_messages_are_ignored(aws: dict[str, Any], stub_parser: Any, tmp_path: Path,
                                           photo: np.ndarray) -> None:
    """Chunk/join messages that did not come from our trigger: a bad job id, another bucket, a key outside
    uploads/ (each naming a real clip, so a message that got through would parse and write)."""
    svc = _trigger(aws, stub_parser, video_sample_fps=4.0)
    s3, up, out = aws["s3"], aws["upload_bucket"], aws["results_bucket"]
    body = write_clip(tmp_path / "f.webm", _clip_from_photo(photo, 4, (64, 48)), codec="libvpx-vp9",
                      fmt="webm").read_bytes()
    job = "e" * 32
    good_key = f"uploads/{job}/video.webm"
    places = {(up, good_key), (out, good_key), (up, f"results/{job}/video.webm"), (up, f"elsewhere/{job}.webm"),
              (up, f"uploads/{'f' * 32}/video.webm")}
    for bucket, key in places:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="video/webm")
    plan = [[0, 2]]
    forged = [
        ("../../etc", {"bucket": up, "key": good_key}),  # not a job id
        (job.upper(), {"bucket": up, "key": good_key}),
        (job, {"bucket": out, "key": good_key}),  # another bucket
        (job, {"bucket": up, "key": f"results/{job}/video.webm"}),  # outside uploads/
        (job, {"bucket": up, "key": f"elsewhere/{job}.webm"}),
        (job, {"bucket": up, "key": f"uploads/{'f' * 32}/video.webm"}),  # another job's upload
        (job, {"bucket": up}),  # no key at all
    ]
    for job_id, source in forged:
        for msg in (chunk_message(job_id, source, plan, 0), join_message(job_id, source, 1),
                    {**join_message(job_id, source, 1), "humanparse_video": "fail"}):
            res = svc.handler(msg)
            assert res["status"] == "ignored" and res["reason"], (job_id, source, res)
    assert stub_parser.calls == 0
    assert s3.list_objects_v2(Bucket=out).get("KeyCount") == 1  # only the clip put there above
    assert {o["Key"] for o in s3.list_objects_v2(Bucket=up)["Contents"]} == {k for b, k in places if b == up}
    # the real message is still handled
    assert svc.handler(chunk_message(job, {"bucket": up, "key": good_key}, plan, 0))["status"] == "chunk_done"
    assert stub_parser.calls == 2
