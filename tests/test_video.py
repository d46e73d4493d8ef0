"""Video: decoding (formats, rotation, variable frame rate, every hostile input), person tracking with known motion,
chunk planning, and the chunk → join pipeline on clips made here with PyAV (nothing committed).

The lite network parses a clip made from the shipped photo; elsewhere a stub parser (one boundary: the Parser protocol) labels
bright blobs, because there the model is not the point."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from humanparse.engine.persons import persons_from_masks
from humanparse.engine.types import ModelInfo, ParseResult
from humanparse.exceptions import (
    AudioOnly,
    CorruptVideo,
    EmptyInput,
    NoFrames,
    NotAVideo,
    TruncatedVideo,
    UnsupportedCodec,
    VideoTooLarge,
    VideoTooLong,
)
from humanparse.video import (
    DecodeReport,
    Tracker,
    VideoLimits,
    iter_frames,
    join_chunks,
    plan_chunks,
    probe,
    process_chunk,
    process_video,
    select_frames,
)
from PIL import Image

FAST = {"libvpx": {"deadline": "realtime", "cpu-used": "8"}, "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8"},
        "libx264": {"preset": "ultrafast"}, "libx265": {"preset": "ultrafast", "x265-params": "log-level=none"}}


def write_clip(path: Path, frames: Sequence[np.ndarray], *, codec: str = "libx264", fps: int = 10,
               times: Sequence[float] | None = None, rotation: int = 0,
               fmt: str | None = None, options: dict[str, str] | None = None,
               replace: dict[int, bytes] | None = None) -> Path:
    """Encode (H, W, 3) uint8 RGB frames. ``times`` (s) make a variable-rate clip; ``replace`` swaps packet k's
    payload for garbage bytes (a corrupt frame mid-stream)."""
    c = av.open(str(path), "w", format=fmt, options=options or {})
    s = c.add_stream(codec, rate=fps, options=dict(FAST.get(codec, {})))
    h, w = frames[0].shape[:2]
    s.width, s.height, s.pix_fmt = w, h, "yuvj420p" if codec == "mjpeg" else "yuv420p"
    s.codec_context.time_base = Fraction(1, 1000)
    if rotation:
        s.set_display_rotation(rotation)
    k = 0

    def mux(packets: list[av.Packet]) -> None:
        nonlocal k
        for p in packets:
            if replace and k in replace:
                q = av.Packet(replace[k])
                q.pts, q.dts, q.stream, q.time_base = p.pts, p.dts, s, p.time_base
                p = q
            k += 1
            c.mux(p)

    for i, img in enumerate(frames):
        f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
        f.pts = int(round((times[i] if times is not None else i / fps) * 1000))
        f.time_base = Fraction(1, 1000)
        mux(s.encode(f))
    mux(s.encode())
    c.close()
    return path


def write_audio_only(path: Path) -> Path:
    c = av.open(str(path), "w")
    a = c.add_stream("aac", rate=44100)
    fr = av.AudioFrame.from_ndarray(np.zeros((1, 44100), np.float32), format="fltp", layout="mono")
    fr.sample_rate = 44100
    for p in a.encode(fr):
        c.mux(p)
    for p in a.encode():
        c.mux(p)
    c.close()
    return path


def blobs(n: int, boxes: Any, size: tuple[int, int] = (96, 128)) -> list[np.ndarray]:
    """n frames (H, W, 3) with white rectangles; ``boxes(i)`` -> list of (x0, y0, x1, y1) for frame i."""
    out = []
    for i in range(n):
        img = np.zeros((*size, 3), np.uint8)
        for x0, y0, x1, y1 in boxes(i):
            img[y0:y1, x0:x1] = 255
        out.append(img)
    return out


def moving(n: int = 10) -> list[np.ndarray]:
    return blobs(n, lambda i: [(8 + 6 * i, 30, 32 + 6 * i, 80)])


class BlobParser:
    """Stub Parser: bright pixels are CIHP 'UpperClothes' (5), each connected blob one person."""

    info = ModelInfo(kind="stub", model_id="blobs", supported_labels=(0, 5))

    def __init__(self) -> None:
        self.calls = 0
        self.deadlines: list[float | None] = []

    def parse(self, rgb: np.ndarray, *, deadline: float | None = None) -> ParseResult:
        self.calls += 1
        self.deadlines.append(deadline)
        fg = (rgb.mean(axis=2) > 128).astype(np.uint8)
        n, comp = cv2.connectedComponents(fg)
        label_map = (fg * 5).astype(np.uint8)
        masks = [comp == k for k in range(1, n)]
        person_map, persons = persons_from_masks(label_map, masks, [1.0 - 0.01 * k for k in range(len(masks))])
        return ParseResult(label_map=label_map, person_map=person_map, persons=persons, model=self.info)


def decode_all(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


# --- decoding ---------------------------------------------------------------------------------------------------

def test_select_frames_keeps_one_frame_per_slot() -> None:
    t30 = [i / 30 for i in range(30)]
    assert select_frames(t30, 10.0) == list(range(0, 30, 3))
    assert select_frames(t30, None) == list(range(30))
    vfr = [0.0, 0.02, 0.04, 0.3, 0.5, 0.51, 0.9]  # burst then gaps: each slow frame kept, bursts thinned
    assert select_frames(vfr, 10.0) == [0, 3, 4, 6]


@pytest.mark.parametrize("codec,name,fmt", [("libx264", "c.mp4", None), ("libx265", "c.mp4", None),
                                             ("libx264", "c.mov", "mov"), ("libvpx", "c.webm", None),
                                             ("libvpx-vp9", "c.webm", None)])
def test_reads_each_accepted_format(tmp_path: Path, codec: str, name: str, fmt: str | None) -> None:
    src = moving(12)
    path = write_clip(tmp_path / name, src, codec=codec, fmt=fmt, fps=12)
    info = probe(path, fps=None)
    assert (info.width, info.height, info.frames) == (128, 96, 12)
    frames = list(iter_frames(path, info))
    assert [f.index for f in frames] == list(range(12))
    assert np.abs(frames[5].rgb.astype(int) - src[5]).mean() < 8  # the right picture, up to compression
    assert probe(path, fps=6.0).frames == 6


def test_rotation_metadata_is_applied(tmp_path: Path) -> None:
    img = np.zeros((48, 64, 3), np.uint8)
    img[:16, :16] = 255  # marker top-left in the stored picture
    path = write_clip(tmp_path / "r.mp4", [img] * 3, rotation=90)
    info = probe(path)
    assert (info.width, info.height, info.rotation) == (48, 64, 90)
    rgb = next(iter_frames(path, info)).rgb
    assert rgb.shape == (64, 48, 3)
    want = np.rot90(img, 1)  # 90° counter-clockwise: the marker goes to the bottom-left
    assert np.abs(rgb.astype(int) - want).mean() < 8 and rgb[-8, 8].mean() > 200


def test_variable_frame_rate_sampled_by_timestamps(tmp_path: Path) -> None:
    times = [0.0, 0.03, 0.06, 0.09, 0.5, 1.0, 1.02, 1.5]
    path = write_clip(tmp_path / "v.mp4", moving(8), times=times)
    info = probe(path, fps=10.0)
    assert info.times == pytest.approx([0.0, 0.5, 1.0, 1.5], abs=2e-3)
    assert [round(f.time, 2) for f in iter_frames(path, info)] == [0.0, 0.5, 1.0, 1.5]


def test_audio_track_is_ignored(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "v.mp4", moving(5))
    with_audio = tmp_path / "va.mkv"
    with av.open(str(path)) as src, av.open(str(with_audio), "w") as dst:  # remux the picture beside a sound track
        au = dst.add_stream("aac", rate=44100)  # sound first: the picture is not stream 0
        vs = dst.add_stream_from_template(src.streams.video[0])
        for p in src.demux(src.streams.video[0]):
            if p.dts is not None:
                p.stream = vs
                dst.mux(p)
        fr = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.float32), format="fltp", layout="mono")
        fr.sample_rate = 44100
        for p in [*au.encode(fr), *au.encode()]:
            dst.mux(p)
    info = probe(with_audio, fps=None)
    assert info.frames == 5 and len(list(iter_frames(with_audio, info))) == 5


# --- hostile inputs ---------------------------------------------------------------------------------------------

def _cut(path: Path, share: float) -> Path:
    data = path.read_bytes()
    out = path.with_name("cut-" + path.name)
    out.write_bytes(data[: int(len(data) * share)])
    return out


def test_hostile_inputs_get_their_named_error(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(20)]  # big packets: cuts land inside
    (tmp_path / "junk.mp4").write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (tmp_path / "empty.mp4").write_bytes(b"")
    jpg = io.BytesIO()
    Image.fromarray(noise[0]).save(jpg, format="JPEG")
    (tmp_path / "photo.mp4").write_bytes(jpg.getvalue())
    cases: list[tuple[Path, type[Exception], VideoLimits]] = [
        (tmp_path / "junk.mp4", NotAVideo, VideoLimits()),
        (tmp_path / "photo.mp4", NotAVideo, VideoLimits()),
        (tmp_path / "empty.mp4", EmptyInput, VideoLimits()),
        (write_audio_only(tmp_path / "sound.m4a"), AudioOnly, VideoLimits()),
        (_cut(write_clip(tmp_path / "moov-end.mp4", noise), 0.5), TruncatedVideo, VideoLimits()),
        (_cut(write_clip(tmp_path / "fast.mp4", noise, options={"movflags": "faststart"}), 0.5), TruncatedVideo,
         VideoLimits()),
        (_cut(write_clip(tmp_path / "v.webm", noise, codec="libvpx-vp9"), 0.5), TruncatedVideo, VideoLimits()),
        (write_clip(tmp_path / "mj.mkv", noise[:3], codec="mjpeg"), UnsupportedCodec, VideoLimits()),
        (write_clip(tmp_path / "long.mp4", noise), VideoTooLong, VideoLimits(max_seconds=1.5)),
        (tmp_path / "long.mp4", VideoTooLong, VideoLimits(max_frames=5)),
        (tmp_path / "long.mp4", VideoTooLarge, VideoLimits(max_bytes=1000)),
    ]
    for path, err, limits in cases:
        with pytest.raises(err) as e:
            probe(path, limits=limits)
        assert e.value.code and e.value.http_status >= 400 and str(e.value), path.name


def test_zero_frames_is_no_frames(tmp_path: Path) -> None:
    path = tmp_path / "none.mp4"
    with av.open(str(path), "w") as c:  # a video stream that never got a frame (the muxer drops the track)
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        c.start_encoding()
    with pytest.raises(NoFrames):
        probe(path)


def test_frames_over_the_megapixel_limit_are_refused(tmp_path: Path) -> None:
    """The frame-size limit for video: 4096x2304 (9.4 MP) frames are refused at the probe, before any frame is decoded."""
    big = write_clip(tmp_path / "big.mp4", [np.zeros((2304, 4096, 3), np.uint8)] * 2)
    with pytest.raises(VideoTooLarge) as e:
        probe(big)
    assert e.value.code == "video_too_large" and e.value.http_status == 413
    assert "4096x2304" in str(e.value) and "9.4 MP" in str(e.value) and "8.5 MP" in str(e.value), str(e.value)
    assert probe(big, limits=VideoLimits(max_frame_megapixels=10.0)).frames == 2  # the size is the only reason
    small = write_clip(tmp_path / "small.webm", moving(2), codec="libvpx")  # 128x96 = 0.012 MP
    with pytest.raises(VideoTooLarge):
        probe(small, limits=VideoLimits(max_frame_megapixels=0.01))


def test_each_frame_parse_gets_the_time_budget(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "m.webm", moving(4), codec="libvpx")
    parser = BlobParser()
    t0 = time.monotonic()
    process_chunk(parser, path, 0, 4, tmp_path / "k", fps=None, parse_budget_s=7.5)
    t1 = time.monotonic()
    assert len(parser.deadlines) == 4
    assert all(d is not None and t0 + 7.5 <= d <= t1 + 7.5 for d in parser.deadlines), parser.deadlines
    assert parser.deadlines == sorted(parser.deadlines)  # one deadline per frame, not one for the chunk


def test_corrupt_frames_mid_stream_are_skipped_and_reported(tmp_path: Path) -> None:
    garbage = b"\x00\xff" * 50  # VP8 rejects these packets (VP9/H.264 decoders conceal instead)
    path = write_clip(tmp_path / "c.webm", moving(12), codec="libvpx", replace={5: garbage, 6: garbage})
    info = probe(path, fps=None)
    report = DecodeReport()
    got = [f.index for f in iter_frames(path, info, report=report)]
    assert report.skipped == [5, 6] and got == [0, 1, 2, 3, 4, 7, 8, 9, 10, 11]
    out = join_chunks(path, [_chunk(path, tmp_path / "k", fps=None)], tmp_path / "out", fps=None)
    assert out["skipped_frames"] == [5, 6] and out["frames"] == 10
    with pytest.raises(CorruptVideo):
        join_chunks(path, [tmp_path / "k"], tmp_path / "out2", fps=None,
                    limits=VideoLimits(max_corrupt_share=0.1))


def _chunk(path: Path, d: Path, start: int = 0, end: int = 10**9, **kw: Any) -> Path:
    process_chunk(BlobParser(), path, start, end, d, **kw)
    return d


# --- tracking ---------------------------------------------------------------------------------------------------

def _maps(rects: list[tuple[int, int, int, int]], size: tuple[int, int] = (80, 200)) -> tuple[np.ndarray, np.ndarray]:
    pm = np.zeros(size, np.uint8)
    for k, (x0, y0, x1, y1) in enumerate(rects, start=1):
        pm[y0:y1, x0:x1] = k
    return pm, (pm > 0).astype(np.uint8) * 5


def test_translated_person_keeps_one_id() -> None:
    tr = Tracker()
    ids = [tr.update(i, i / 10, *_maps([(10 + 8 * i, 10, 50 + 8 * i, 70)])) for i in range(15)]
    assert {m[1] for m in ids} == {1} and len(tr.summary()) == 1
    t = tr.summary()[0]
    assert t["frames"] == list(range(15)) and t["per_frame"][3]["bbox"] == [34, 10, 74, 70]
    assert t["per_frame"][0]["parts"] == {"UpperClothes": 40 * 60}


def test_two_people_crossing_keep_their_ids() -> None:
    tr = Tracker()
    seen: dict[str, set[int]] = {"a": set(), "b": set()}
    for i in range(16):  # a walks right, b walks left, they pass (different rows); local ids swap with order
        a, b = (10 + 10 * i, 5, 40 + 10 * i, 35), (160 - 10 * i, 40, 190 - 10 * i, 75)
        rects = [a, b] if i % 2 else [b, a]
        m = tr.update(i, i / 10, *_maps(rects))
        seen["a"].add(m[rects.index(a) + 1])
        seen["b"].add(m[rects.index(b) + 1])
    assert seen == {"a": {1}, "b": {2}} or seen == {"a": {2}, "b": {1}}


def test_short_occlusion_survives_long_one_does_not() -> None:
    tr = Tracker(max_lost=3)
    box = (50, 10, 90, 70)
    for i in range(3):
        tr.update(i, i, *_maps([box]))
    for i in range(3, 6):  # hidden 3 frames
        tr.update(i, i, *_maps([]))
    assert tr.update(6, 6, *_maps([box])) == {1: 1}
    for i in range(7, 12):  # hidden 5 frames > max_lost
        tr.update(i, i, *_maps([]))
    assert tr.update(12, 12, *_maps([box])) == {1: 2}


# --- planning and the chunk → join pipeline ---------------------------------------------------------------------

def test_plan_chunks() -> None:
    assert plan_chunks(0, 2.0) == []
    assert plan_chunks(100, 0.15) == [(0, 100)]  # lite, short clip: one invocation
    m2fp = plan_chunks(1200, 2.0)  # 120 s at 10 fps on M2FP: (900*0.6-60)/2 = 240 frames a chunk
    assert len(m2fp) == 5 and m2fp[0] == (0, 240) and m2fp[-1][1] == 1200
    assert all(a[1] == b[0] for a, b in zip(m2fp, m2fp[1:], strict=False))
    assert plan_chunks(10, 0.1, max_chunk_frames=4) == [(0, 3), (3, 7), (7, 10)]


def test_chunked_join_equals_single_run_across_borders(tmp_path: Path) -> None:
    def crossing(i: int) -> list[tuple[int, int, int, int]]:
        return [(4 + 8 * i, 10, 24 + 8 * i, 40), (104 - 8 * i, 50, 124 - 8 * i, 90)]
    path = write_clip(tmp_path / "x.webm", blobs(12, crossing), codec="libvpx-vp9")
    single = join_chunks(path, [_chunk(path, tmp_path / "one", fps=None)], tmp_path / "o1", fps=None)
    parts = [_chunk(path, tmp_path / f"p{i}", s, e, fps=None) for i, (s, e) in enumerate(plan_chunks(12, 1.0,
                                                                                                  max_chunk_frames=5))]
    split = join_chunks(path, parts[::-1], tmp_path / "o2", fps=None)  # order given must not matter
    with pytest.raises(ValueError, match="do not cover"):  # a lost chunk is our fault, never silent gaps
        join_chunks(path, parts[:2], tmp_path / "o3", fps=None)
    t1 = json.loads((tmp_path / "o1" / "tracks.json").read_text())
    t2 = json.loads((tmp_path / "o2" / "tracks.json").read_text())
    assert t1 == t2 and len(t1["tracks"]) == 2 and all(len(t["frames"]) == 12 for t in t1["tracks"])
    assert split["chunks"] == [[0, 4], [4, 8], [8, 12]] and single["person_count"] == 2
    ys = [t["per_frame"][0]["bbox"][1] for t in t1["tracks"]]
    for t, y in zip(t1["tracks"], ys, strict=True):  # each track stays on its own row the whole clip
        assert {f["bbox"][1] for f in t["per_frame"]} == {y}


def _clip_from_photo(photo: np.ndarray, n: int, size: tuple[int, int] = (160, 120)) -> list[np.ndarray]:
    """Pan and zoom a (H, W, 3) photo: n frames of size (w, h)."""
    h, w = photo.shape[:2]
    out = []
    for i in range(n):
        z = 1.0 - 0.2 * i / max(1, n - 1)  # zoom in
        cw, ch = int(w * z), int(h * z)
        x0 = int((w - cw) * i / max(1, n - 1))
        out.append(cv2.resize(photo[(h - ch) // 2:(h - ch) // 2 + ch, x0:x0 + cw], size, interpolation=cv2.INTER_AREA))
    return out


def test_lite_end_to_end_outputs(tmp_path: Path, lite_parser: Any, photo: np.ndarray) -> None:
    path = write_clip(tmp_path / "clip.mp4", _clip_from_photo(photo, 25, (192, 144)), fps=12)  # ~2 s
    progress: list[tuple[int, int]] = []
    out = tmp_path / "out"
    res = process_video(lite_parser, path, tmp_path / "work", out, fps=3.0, max_chunk_frames=3,
                        on_progress=lambda d, t: progress.append((d, t)))
    n = res["frames"]
    assert n == 7 and res["chunks"] == [[0, 2], [2, 5], [5, 7]] and progress[-1] == (7, 7)
    assert res["model"] == "lite" and res["person_count"] >= 1
    for name in ("color.webm", "overlay.webm", "persons.webm"):
        frames = decode_all(out / name)
        assert len(frames) == n and frames[0].shape == (144, 192, 3), name
        with av.open(str(out / name)) as c:
            assert c.streams.video[0].codec_context.name == "vp9"
    z = zipfile.ZipFile(out / "labels.zip")
    names = sorted(x for x in z.namelist() if x.startswith("labels/"))
    assert names == [f"labels/{i:06d}.png" for i in range(n)]
    info = probe(path, fps=3.0)
    frame3 = [f for f in iter_frames(path, info, start=3, end=4)][0]
    want = lite_parser.parse(frame3.rgb).label_map
    got = np.asarray(Image.open(io.BytesIO(z.read("labels/000003.png"))))
    assert got.dtype == np.uint8 and np.array_equal(got, want)
    tracks = json.loads((out / "tracks.json").read_text())["tracks"]
    persons = np.asarray(Image.open(io.BytesIO(z.read("persons/000003.png"))))
    assert set(np.unique(persons)) - {0} <= {t["id"] for t in tracks if 3 in t["frames"]}
    assert Image.open(out / "poster.jpg").size == (192, 144)
    assert json.loads((out / "result.json").read_text())["frames"] == n


@pytest.mark.browser
def test_output_video_plays_in_chromium(tmp_path: Path) -> None:
    """color.webm in headless Chromium (Debian's, as tests/test_browser.py): metadata, size, duration, a frame drawn."""
    from conftest import find_chromium

    chromium = find_chromium()
    if not Path(chromium).exists():
        pytest.skip("Debian chromium not installed")
    from playwright.sync_api import sync_playwright

    path = write_clip(tmp_path / "m.mp4", moving(20), fps=10)
    join_chunks(path, [_chunk(path, tmp_path / "k")], tmp_path / "out")
    page_html = tmp_path / "out" / "play.html"
    page_html.write_text('<video id="v" src="color.webm" muted preload="auto"></video><canvas id="c"></canvas>')
    with sync_playwright() as p:
        args = ["--no-sandbox", "--disable-gpu", "--allow-file-access-from-files"]  # file:// canvas readable
        b = p.chromium.launch(executable_path=chromium, headless=True, args=args)
        try:
            page = b.new_page()
            page.goto(page_html.as_uri())
            page.wait_for_function("document.getElementById('v').readyState >= 2", timeout=15000)
            got = page.evaluate("""async () => {
                const v = document.getElementById('v');
                v.currentTime = 1.0;
                await new Promise(r => v.addEventListener('seeked', r, {once: true}));
                const c = document.getElementById('c'); c.width = v.videoWidth; c.height = v.videoHeight;
                const g = c.getContext('2d'); g.drawImage(v, 0, 0);
                const px = g.getImageData(0, 0, c.width, c.height).data;
                let lit = 0; for (let i = 0; i < px.length; i += 4) if (px[i] + px[i + 1] + px[i + 2] > 150) lit++;
                return {w: v.videoWidth, h: v.videoHeight, d: v.duration, lit: lit, err: v.error && v.error.code};
            }""")
        finally:
            b.close()
    assert (got["w"], got["h"], got["err"]) == (128, 96, None)
    assert 1.8 <= got["d"] <= 2.2 and got["lit"] > 24 * 50 * 0.5  # the blob, in its part colour
