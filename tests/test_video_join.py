"""The video join within its budget: preview videos drawn at a capped size (labels.zip keeps the clip's own size),
the join's cost estimate, and a clip whose join would overrun refused when its job starts, before any chunk runs.

Clips are made here (VP8 WebM, a few frames); the stub parser of test_video labels bright blobs."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from humanparse.exceptions import VideoTooLong
from humanparse.video import VideoInfo, iter_frames, probe, process_video
from humanparse.video.chunks import PREVIEW_MAX_SIDE, check_join_budget, estimate_join_s, preview_size
from humanparse.video.job import QueueFanOut
from PIL import Image
from test_video import BlobParser, blobs, write_clip
from test_video_flow import _put, _trigger

VP8 = {"codec": "libvpx", "fmt": "webm"}


def frames_of(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def zip_maps(path: Path, folder: str) -> list[np.ndarray]:
    with zipfile.ZipFile(path) as z:
        names = sorted(n for n in z.namelist() if n.startswith(f"{folder}/"))
        return [np.asarray(Image.open(io.BytesIO(z.read(n)))) for n in names]


def info(width: int, height: int, frames: int, source_frames: int | None = None) -> VideoInfo:
    times = tuple(i / 10 for i in range(frames))
    return VideoInfo(width=width, height=height, rotation=0, codec="h264", container="mp4",
                     duration_s=frames / 10, source_frames=source_frames or 3 * frames, source_fps=30.0, fps=10.0,
                     times=times, pts=tuple(range(frames)))


def test_preview_size_caps_the_long_side_keeps_aspect_and_even_sizes() -> None:
    assert preview_size(3840, 2160) == (1280, 720)
    assert preview_size(1920, 1080) == (1280, 720)
    assert preview_size(1080, 1920) == (720, 1280)  # portrait: the long side is the height
    assert preview_size(1366, 768) == (1280, 720)
    assert preview_size(2001, 1001) == (1280, 640)
    assert preview_size(1280, 720) == (1280, 720)  # within the cap: the clip's own size
    assert preview_size(161, 121) == (161, 121)  # (odd sizes within the cap: the writer pads one row/column)
    for w, h in [(4096, 2160), (3000, 2), (2, 3000), (1921, 1081), (5000, 1700)]:
        pw, ph = preview_size(w, h)
        assert max(pw, ph) <= PREVIEW_MAX_SIDE and pw % 2 == 0 and ph % 2 == 0, (w, h, pw, ph)
        scale = PREVIEW_MAX_SIDE / max(w, h)  # aspect kept: each side within one pixel of the exact scale
        assert all(abs(a - b * scale) <= 1 or a == 2 for a, b in ((pw, w), (ph, h))), (w, h, pw, ph)


def test_hd_clip_previews_are_capped_while_labels_zip_keeps_full_size(tmp_path: Path) -> None:
    size = (744, 1324)  # (H, W): long side over the cap
    clip = write_clip(tmp_path / "wide.webm", blobs(3, lambda i: [(100 + 40 * i, 200, 400 + 40 * i, 600)], size),
                      **VP8)
    parser = BlobParser()
    result = process_video(parser, clip, tmp_path / "work", tmp_path / "out", fps=None)
    out = tmp_path / "out"
    assert (result["width"], result["height"]) == (1324, 744)
    assert result["preview"] == {"width": 1280, "height": 720}
    for name in ("color.webm", "overlay.webm", "persons.webm"):
        frames = frames_of((out / name).read_bytes())
        assert len(frames) == 3 and frames[0].shape == (720, 1280, 3), name
    labels = zip_maps(out / "labels.zip", "labels")
    persons = zip_maps(out / "labels.zip", "persons")
    assert len(labels) == len(persons) == 3
    assert all(m.shape == size for m in labels + persons)
    source = [f.rgb for f in iter_frames(clip, probe(clip, fps=None))]
    assert np.array_equal(labels[1], parser.parse(source[1]).label_map)  # the full-size parse, byte for byte
    # the colour preview is the label map drawn small: the blob's part colour inside, black outside
    color = frames_of((out / "color.webm").read_bytes())[0].astype(int)
    scale = 1280 / 1324
    inside = color[int(400 * scale), int(250 * scale)]
    assert inside.sum() > 150 and color[20, 20].sum() < 40, (inside, color[20, 20])
    poster = np.asarray(Image.open(out / "poster.jpg"))
    assert poster.shape == (720, 1280, 3)


def test_rotated_clip_is_scaled_in_the_decoder_as_viewed(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "rot.webm", blobs(3, lambda i: [(20, 10 + 5 * i, 60, 40 + 5 * i)], (80, 160)),
                      rotation=90, **VP8)
    info = probe(clip, fps=None)
    assert (info.width, info.height) == (80, 160)  # viewed: portrait
    small = [f.rgb for f in iter_frames(clip, info, size=preview_size(info.width, info.height, 64))]
    assert small[0].shape == (64, 32, 3)
    result = process_video(BlobParser(), clip, tmp_path / "w", tmp_path / "o", fps=None, max_side=64)
    assert result["preview"] == {"width": 32, "height": 64}
    assert frames_of((tmp_path / "o" / "overlay.webm").read_bytes())[0].shape == (64, 32, 3)
    assert all(m.shape == (160, 80) for m in zip_maps(tmp_path / "o" / "labels.zip", "labels"))


def test_join_estimate_grows_with_frames_and_size_and_the_budget_refuses_with_figures() -> None:
    small, hd, uhd = info(640, 360, 1200), info(1920, 1080, 1200), info(3840, 2160, 1200)
    assert estimate_join_s(small) < estimate_join_s(hd) < estimate_join_s(uhd)
    assert estimate_join_s(info(1920, 1080, 100)) < estimate_join_s(hd)
    # above the preview cap only the decode and the full-size label work grow, not the three encodes
    assert estimate_join_s(uhd) < estimate_join_s(uhd, max_side=3840)
    check_join_budget(hd, estimate_join_s(hd) + 1)  # within: nothing raised
    with pytest.raises(VideoTooLong) as e:
        check_join_budget(uhd, 100.0)
    msg = str(e.value)
    assert "3840x2160" in msg and "1200 sampled frames" in msg and "the limit is 100 s" in msg, msg
    fit_s = float(msg.split("about ")[2].split(" s")[0])
    assert 0 < fit_s < uhd.duration_s  # how much of this clip would fit, in seconds of video


def test_clip_over_the_join_budget_is_refused_before_any_chunk(aws: dict[str, Any], tmp_path: Path) -> None:
    parser = BlobParser()
    svc = _trigger(aws, parser, video_join_budget_s=0.01, video_chunk_frames=2, video_sample_fps=5.0)
    sqs = aws["local"].client("sqs")
    queue = sqs.create_queue(QueueName=f"q-{aws['upload_bucket']}")["QueueUrl"]
    svc.trigger.video.fan_out = QueueFanOut(sqs, queue)  # a split job would send chunk messages here
    body = write_clip(tmp_path / "c.webm", blobs(20, lambda i: [(8 + 2 * i, 30, 32 + 2 * i, 80)]), **VP8).read_bytes()
    job = "c" * 32
    out = _put(aws, svc, body, "video/webm", "webm", job)
    assert out["records"][0]["status"] == "failed", out
    view = svc.store.job_view(job)
    assert view is not None and (view["status"], view["error"], view["kind"]) == ("failed", "video_too_long", "video")
    assert "the limit is 0.01 s" in view["detail"] and "shorten the clip" in view["detail"], view
    assert parser.calls == 0  # refused before any frame was parsed
    assert "Messages" not in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0)  # no chunk went out
    # the same clip within the default budget runs and finishes
    ok = _trigger(aws, parser, video_sample_fps=5.0)
    assert _put(aws, ok, body, "video/webm", "webm", "d" * 32)["records"][0]["status"] == "done"
    done = ok.store.read_status("d" * 32)
    assert done is not None and done["status"] == "done"
    doc = json.loads(ok.store.read_result("d" * 32, "result.json") or b"{}")
    assert doc["preview"] == {"width": 128, "height": 96} and doc["timings"]["join_estimate_s"] > 0


def test_default_join_budget_leaves_room_in_the_parser_function_timeout() -> None:
    from humanparse.config import Settings
    from test_infra import load_template

    timeout = float(load_template()["Resources"]["ParserFunction"]["Properties"]["Timeout"])
    budget = Settings().video_join_budget_s
    assert budget <= timeout * 2 / 3  # the rest: fetching the clip and chunk zips, storing the outputs
    # the longest accepted clip at 1080p (1,200 sampled frames of a 30 fps source) fits; at 4K it is refused
    check_join_budget(info(1920, 1080, 1200), budget)
    with pytest.raises(VideoTooLong):
        check_join_budget(info(3840, 2160, 1200), budget)
