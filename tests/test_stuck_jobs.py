"""No job stays ``running`` forever, and every video frame is bounded before it is decoded: a clip whose frame size
grows mid-stream is parsed (frames scaled to the first frame's size), one whose second keyframe claims
16000x16000 fails with ``video_too_large`` before the decoder allocates it; an error on an upload's own bytes
fails its job at once; an overdue ``running`` job is failed by whoever reads it; a restart changes nothing."""

from __future__ import annotations

import fractions
import io
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import requests

VP8_START = b"\x9d\x01\x2a"  # a VP8 keyframe's start code; its 14-bit width and height follow


def _vp8_packets(w: int, h: int, n: int) -> list[Any]:
    cc = av.CodecContext.create("libvpx", "w")
    cc.width, cc.height, cc.pix_fmt = w, h, "yuv420p"
    cc.time_base, cc.framerate = fractions.Fraction(1, 10), 10
    rng = np.random.default_rng(w)
    packets: list[Any] = []
    for i in range(n):
        img = np.zeros((h, w, 3), np.uint8)
        img[h // 4: 3 * h // 4, w // 3: 2 * w // 3] = (200, 150, 120)
        img = np.clip(img + rng.integers(0, 20, img.shape), 0, 255).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        packets += cc.encode(frame)
    return packets + list(cc.encode(None))


def growing_webm(parts: tuple[tuple[int, int, int], ...] = ((160, 128, 10), (320, 256, 10))) -> bytes:
    """One VP8 stream in WebM whose picture size changes at each part's first (key)frame: (width, height, frames)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="webm") as c:
        s = c.add_stream("libvpx", rate=10)
        s.width, s.height, s.pix_fmt = parts[0][0], parts[0][1], "yuv420p"
        t = 0
        for w, h, n in parts:
            for p in _vp8_packets(w, h, n):
                p.stream, p.pts, p.dts, p.time_base = s, t, t, fractions.Fraction(1, 10)
                t += 1
                c.mux(p)
    return buf.getvalue()


def keyframe_bomb() -> bytes:
    """``growing_webm`` whose second keyframe's header claims 16000x16000 (the file stays ~37 KB)."""
    clip = bytearray(growing_webm())
    at = clip.find(VP8_START + (320).to_bytes(2, "little") + (256).to_bytes(2, "little"))
    assert at > 0
    clip[at + 3: at + 7] = (16000).to_bytes(2, "little") * 2
    return bytes(clip)


# ------------------------------------------------------------------------------------------- decoding
def test_frame_size_change_is_scaled_to_the_first_frame(tmp_path: Path) -> None:
    from humanparse.video.decode import iter_frames, probe

    path = tmp_path / "grow.webm"
    path.write_bytes(growing_webm())
    info = probe(path, fps=None)
    frames = list(iter_frames(path, info))
    assert (info.width, info.height) == (160, 128) and len(frames) == 20
    assert {f.rgb.shape for f in frames} == {(128, 160, 3)}  # the 320x256 half, scaled to the first size


def test_keyframe_claiming_16000x16000_is_refused_before_decode(tmp_path: Path) -> None:
    from humanparse.exceptions import VideoTooLarge
    from humanparse.video.decode import iter_frames, probe

    path = tmp_path / "bomb.webm"
    path.write_bytes(keyframe_bomb())
    info = probe(path, fps=None)  # the first keyframe is small: the probe passes
    with pytest.raises(VideoTooLarge, match="claims a picture size over the limit"):
        list(iter_frames(path, info))


def test_only_storage_and_network_errors_are_retried() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError
    from humanparse.exceptions import NotAVideo, StorageUnavailable, is_transient

    assert is_transient(ClientError({"Error": {"Code": "SlowDown"}}, "PutObject"))
    assert is_transient(EndpointConnectionError(endpoint_url="http://x")) and is_transient(StorageUnavailable())
    assert is_transient(MemoryError()) and is_transient(RuntimeError("DefaultCPUAllocator: out of memory"))
    assert not is_transient(ValueError("index can't contain negative values")) and not is_transient(NotAVideo())
    assert not is_transient(av.error.InvalidDataError(1094995529, "Invalid data"))  # an OSError, from the bytes


# ------------------------------------------------------------------------------------------ job rules
class BrokenParser:
    """The Parser boundary stubbed: an error that the same image raises every time."""

    def __init__(self, info: Any) -> None:
        self.info = info
        self.calls = 0

    def parse(self, rgb: np.ndarray, *, deadline: float | None = None) -> Any:
        self.calls += 1
        raise ValueError("index can't contain negative values")


def test_an_error_on_the_upload_itself_fails_the_job_at_once(aws: dict[str, Any], stub_parser: Any) -> None:
    from conftest import encode_png
    from humanparse.config import Settings
    from humanparse.entries.service import build_service
    from s3events import make_s3_event

    settings = Settings(upload_bucket=aws["upload_bucket"], results_bucket=aws["results_bucket"],
                        s3_endpoint_url=aws["endpoint"])
    parser = BrokenParser(stub_parser.info)
    svc = build_service(settings, parser, aws["s3"])
    key = "uploads/" + "b" * 32 + "/image.png"
    body = encode_png(np.full((64, 48, 3), 128, np.uint8))
    aws["s3"].put_object(Bucket=aws["upload_bucket"], Key=key, Body=body, ContentType="image/png")
    etag = aws["s3"].head_object(Bucket=aws["upload_bucket"], Key=key)["ETag"].strip('"')
    event = make_s3_event(aws["upload_bucket"], key, size=len(body), etag=etag)
    assert svc.handler(event)["records"][0]["status"] == "failed"  # returned, not raised: no retry
    view = svc.store.job_view("b" * 32)
    assert view is not None and view["status"] == "failed" and view["error"] == "processing_failed", view
    assert "negative values" in view["detail"]
    assert svc.handler(event)["records"][0]["status"] == "skipped" and parser.calls == 1  # never again


def test_a_clip_started_three_times_without_finishing_fails(aws: dict[str, Any], stub_parser: Any,
                                                           tmp_path: Path) -> None:
    from humanparse.config import Settings
    from humanparse.entries.service import build_service
    from s3events import make_s3_event

    svc = build_service(Settings(upload_bucket=aws["upload_bucket"], results_bucket=aws["results_bucket"],
                                 s3_endpoint_url=aws["endpoint"]), stub_parser, aws["s3"])
    key, clip = f"uploads/{'e' * 32}/clip.webm", growing_webm(((160, 128, 4),))
    job = svc.store.layout.job_id_for_key(key)
    aws["s3"].put_object(Bucket=aws["upload_bucket"], Key=key, Body=clip, ContentType="video/webm")
    # three earlier starts that never finished (the process was killed each time)
    aws["s3"].put_object(Bucket=aws["results_bucket"], Key=f"results/{job}/work/start.attempts", Body=b"3")
    etag = aws["s3"].head_object(Bucket=aws["upload_bucket"], Key=key)["ETag"].strip('"')
    out = svc.handler(make_s3_event(aws["upload_bucket"], key, size=len(clip), etag=etag))
    view = svc.store.job_view(job)
    assert view is not None and view["status"] == "failed" and view["error"] == "processing_failed", (view, out)
    assert "started 3 times" in view["detail"]


def test_an_overdue_running_job_is_failed_by_its_next_reader(aws: dict[str, Any]) -> None:
    from humanparse.config import Settings
    from humanparse.jobs.store import JobStore

    store = JobStore(aws["s3"], Settings(upload_bucket=aws["upload_bucket"], results_bucket=aws["results_bucket"],
                                         s3_endpoint_url=aws["endpoint"]))
    late, fresh = "c" * 32, "d" * 32
    store.write_status(late, {"status": "running", "kind": "video", "job_id": late, "deadline": time.time() - 5})
    store.write_status(fresh, {"status": "running", "kind": "video", "job_id": fresh, "deadline": time.time() + 600})
    view = store.job_view(late)
    assert view is not None and view["status"] == "failed" and view["error"] == "job_timeout", view
    assert (store.read_status(late) or {}).get("status") == "failed"  # written back: the worker skips it too
    assert (store.job_view(fresh) or {}).get("status") == "running"


# ------------------------------------------------------------------------------------- the real runner
def _upload(base: str, body: bytes) -> str:
    answer = requests.post(base + "/api/uploads", json={"content_type": "video/webm"}, timeout=30).json()
    up = answer["upload"]
    sent = requests.post(up["url"], data=up["fields"], files={"file": ("clip.webm", body, "video/webm")}, timeout=60)
    assert sent.status_code == 204, sent.text
    return str(answer["job_id"])


def _statuses(data: Path) -> dict[str, bytes]:
    """Every stored status.json record, raw (a rewrite would change its bytes)."""
    return {p.name: p.read_bytes() for p in (data / "objects").rglob("*status%2Ejson")}


def test_odd_clips_end_quickly_small_and_stay_ended_after_restart(tmp_path: Path) -> None:
    from runner import Runner
    from test_bounded_memory import reset_peak, rss_mb, wait_final

    data = tmp_path / "data"
    r = Runner(data).start()
    try:
        pid = r.proc.pid  # type: ignore[union-attr]
        # warm-up: the model's first parse and the video encoders take their memory once per process
        warm = wait_final(r.base, _upload(r.base, growing_webm(((160, 128, 10),))), 120)
        assert warm["status"] == "done", warm
        base = reset_peak(pid)
        t0 = time.time()
        grow, bomb = _upload(r.base, growing_webm()), _upload(r.base, keyframe_bomb())
        grown, bombed = wait_final(r.base, grow, 120), wait_final(r.base, bomb, 120)
        took, peak = time.time() - t0, rss_mb(pid, "VmHWM") - base
        print(f"growing clip {grown['status']}, 16000x16000 keyframe {bombed['status']} {bombed.get('error')}: "
              f"{took:.1f} s, peak +{peak:.1f} MB over {base:.0f} MB")
        assert grown["status"] == "done" and (grown["width"], grown["height"]) == (160, 128), grown
        assert bombed["status"] == "failed" and bombed["error"] == "video_too_large", bombed
        assert peak <= 64, peak
    finally:
        assert r.stop() == 0
    before = _statuses(data)
    assert len(before) == 3
    r2 = Runner(data).start()
    try:
        time.sleep(3.0)  # a resumed job would be running or rewritten by now
        for job, want in ((grow, "done"), (bomb, "failed"), (warm["job_id"], "done")):
            assert requests.get(f"{r2.base}/api/jobs/{job}", timeout=30).json()["status"] == want
        assert _statuses(data) == before
        assert "0 jobs resumed" in r2.log(), r2.log()
    finally:
        r2.stop()
