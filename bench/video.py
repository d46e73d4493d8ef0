"""End-to-end video speed: a 10 s clip made here (a CIHP photo panned and zoomed, H.264 via PyAV) through probe →
parse every sampled frame → track → VP9 videos + label zip, against the baseline of parsing the same frames as stills
(``parser.parse`` alone), interleaved run by run; medians and spread.

    python bench/video.py [--seconds 10] [--fps 10] [--size 640x360] [--runs 3] [--m2fp] [--m2fp-seconds 2]

Prints per engine: frames/s end to end, seconds of video per second of compute, the pipeline's overhead over the
bare parse, and the stage split (parse / join). Last line: JSON. M2FP uses a random-weight folder
(tests/m2fp_random.py): same arithmetic and time as trained weights, persons are meaningless.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "function"))
SHARED = ROOT.parent / "shared"


def make_clip(dest: Path, seconds: float, size: tuple[int, int], fps: int = 30) -> Path:
    photo = np.asarray(Image.open(SHARED / "data" / "cihp" / "images" / "0002190.jpg").convert("RGB"))
    h, w = photo.shape[:2]
    n = int(seconds * fps)
    with av.open(str(dest), "w") as c:
        s = c.add_stream("libx264", rate=fps, options={"preset": "veryfast"})
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        s.codec_context.time_base = Fraction(1, fps)
        for i in range(n):
            z = 1.0 - 0.25 * i / max(1, n - 1)
            ch = int(h * z)
            cw = min(w, ch * size[0] // size[1])
            x0 = int((w - cw) * i / max(1, n - 1))
            y0 = (h - ch) // 2
            img = cv2.resize(photo[y0:y0 + ch, x0:x0 + cw], size, interpolation=cv2.INTER_AREA)
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = i, Fraction(1, fps)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return dest


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def bench_engine(name: str, parser: Any, clip: Path, fps: float, runs: int, work: Path) -> dict[str, Any]:
    from humanparse.video import iter_frames, probe, process_video

    info = probe(clip, fps=fps)
    frames = [f.rgb for f in iter_frames(clip, info)]
    parser.parse(frames[0])  # warm-up
    base: list[float] = []
    full: list[float] = []
    joins: list[float] = []
    for r in range(runs):  # interleaved: bare parse, then the pipeline, each run
        base.append(timed(lambda: [parser.parse(f) for f in frames])[0])
        dt, res = timed(lambda r=r: process_video(parser, clip, work / f"{name}-{r}" / "w", work / f"{name}-{r}" / "o",
                                                  fps=fps))
        full.append(dt)
        joins.append(float(res["timings"]["join_s"]))
    med = statistics.median(full)
    row = {
        "engine": name, "frames": info.frames, "video_s": round(info.duration_s, 2),
        "size": f"{info.width}x{info.height}", "sample_fps": fps,
        "end_to_end_s": round(med, 2), "spread_s": round(max(full) - min(full), 2),
        "frames_per_s": round(info.frames / med, 3),
        "video_s_per_compute_s": round(info.duration_s / med, 4),
        "bare_parse_s": round(statistics.median(base), 2),
        "overhead_vs_bare_parse": round(med / statistics.median(base), 3),
        "join_s": round(statistics.median(joins), 2),
    }
    print(f"{name}: {row['frames']} frames in {med:.1f} s (spread {row['spread_s']} s) = {row['frames_per_s']} "
          f"frames/s, {row['video_s_per_compute_s']} s of video per s; x{row['overhead_vs_bare_parse']} of the bare "
          f"parse; join {row['join_s']} s", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--m2fp", action="store_true", help="also M2FP (random weights) on a shorter clip")
    ap.add_argument("--m2fp-seconds", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    size = tuple(int(v) for v in a.size.split("x"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        from humanparse.engine.lite import LiteParser, find_lite_models

        clip = make_clip(work / "clip.mp4", a.seconds, (size[0], size[1]))
        rows.append(bench_engine("lite", LiteParser(*find_lite_models([SHARED / "models"]), threads=a.threads),
                                 clip, a.fps, a.runs, work))
        if a.m2fp:
            import _common  # noqa: F401  (puts tests/ on the path, for its random-weight folder maker)
            from humanparse.engine.m2fp import build_m2fp
            from m2fp_random import make_random_m2fp_folder

            folder = make_random_m2fp_folder(work / "m2fp")
            short = make_clip(work / "short.mp4", a.m2fp_seconds, (size[0], size[1]))
            rows.append(bench_engine("m2fp-random", build_m2fp(folder, precision="fp32"), short, a.fps,
                                     max(1, a.runs - 1), work))
    print(json.dumps({"cpu_shared": True, "results": rows}))


if __name__ == "__main__":
    main()
