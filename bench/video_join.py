"""The video join's cost per sampled frame by source size, and the fit behind ``video/chunks.estimate_join_s``.

For each source size (640x360, 1280x720, 1920x1080, 3840x2160) a clip is made here (a photo panned and zoomed,
H.264 at 30 fps via bench/video.py's ``make_clip``) with one chunk of synthetic label/person maps (two people
walking: the join's cost does not depend on the parser, so none runs). Rounds are interleaved (every size, and
the old full-size previews when ``--full``, once per round); medians and spread. Also times decoding alone
(every source frame scaled to the preview size in the decoder, as the join does).

    python bench/video_join.py [--seconds 2] [--rounds 3] [--full]

Prints per size: join seconds per sampled frame (median, min-max), decode seconds per source frame, the model's
estimate, and the model's estimate for the longest accepted clip (1,200 sampled frames at 10 fps from 30 fps).
Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "function"))
sys.path.insert(0, str(ROOT / "bench"))

SIZES = [(640, 360), (1280, 720), (1920, 1080), (3840, 2160)]


def write_chunk(clip: Path, dest: Path, fps: float) -> int:
    """One chunk covering the whole clip: labels/persons PNGs of two walking people + chunk.json."""
    from humanparse.video import probe
    from humanparse.video.encode import frame_name, label_png, person_png

    info = probe(clip, fps=fps)
    (dest / "labels").mkdir(parents=True)
    (dest / "persons").mkdir(parents=True)
    w, h = info.width, info.height
    frames = []
    for i in range(info.frames):
        labels = np.zeros((h, w), np.uint8)
        persons = np.zeros((h, w), np.uint8)
        for k, x in enumerate((w * (0.2 + 0.02 * i), w * (0.8 - 0.02 * i))):
            centre, axes = (int(x), h // 2), (max(2, w // 12), max(2, h // 3))
            cv2.ellipse(persons, centre, axes, 0, 0, 360, k + 1, -1)
            cv2.ellipse(labels, centre, axes, 0, 0, 360, 5, -1)  # upper clothes
            cv2.ellipse(labels, (centre[0], centre[1] - axes[1] // 2), (axes[0] // 2, axes[1] // 4), 0, 0, 360,
                        13, -1)  # face
        (dest / "labels" / frame_name(i)).write_bytes(label_png(labels))
        (dest / "persons" / frame_name(i)).write_bytes(person_png(persons))
        frames.append({"index": i, "t": info.times[i], "persons": []})
    doc = {"start": 0, "end": info.frames, "frames": frames, "skipped": [], "decode_errors": [], "model": "bench",
           "timings": {"parse_s": 0.0, "total_s": 0.0}}
    (dest / "chunk.json").write_text(json.dumps(doc), encoding="utf-8")
    return info.frames


def decode_s(clip: Path, size: tuple[int, int]) -> float:
    """Seconds to decode every source frame scaled to ``size`` (as the join's decoder does)."""
    from humanparse.video import iter_frames, probe

    info = probe(clip, fps=None)
    t = time.perf_counter()
    for _ in iter_frames(clip, info, size=size):
        pass
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--full", action="store_true", help="also time the old full-size previews")
    args = ap.parse_args()
    from humanparse.video import join_chunks, probe
    from humanparse.video.chunks import estimate_join_s, preview_size
    from video import make_clip  # bench/video.py

    runs: dict[str, list[float]] = {}
    dec: dict[str, list[float]] = {}
    meta: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for w, h in SIZES:
            name = f"{w}x{h}"
            clip = make_clip(work / f"{name}.mp4", args.seconds, (w, h))
            frames = write_chunk(clip, work / f"{name}-chunk", args.fps)
            info = probe(clip, fps=args.fps)
            meta[name] = {"frames": frames, "source_frames": info.source_frames, "clip": clip,
                          "estimate_s_per_frame": estimate_join_s(info) / frames}
        variants = [(f"{w}x{h}", 1280) for w, h in SIZES] + ([(f"{w}x{h}", 10**5) for w, h in SIZES[2:]]
                                                              if args.full else [])
        first = meta[variants[0][0]]
        join_chunks(first["clip"], [work / f"{variants[0][0]}-chunk"], work / "warm-up", fps=args.fps)  # untimed
        for r in range(args.rounds):
            for name, side in variants:
                m = meta[name]
                key = name if side == 1280 else f"{name} full-size previews"
                t = time.perf_counter()
                join_chunks(m["clip"], [work / f"{name}-chunk"], work / f"out-{r}-{key}", fps=args.fps,
                            max_side=side)
                runs.setdefault(key, []).append((time.perf_counter() - t) / m["frames"])
                if side == 1280:
                    w, h = (int(v) for v in name.split("x"))
                    dec.setdefault(name, []).append(decode_s(m["clip"], preview_size(w, h)) / m["source_frames"])
    load = os.getloadavg()
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{load[0]:.1f} (shared with other work: figures are pessimistic); {args.rounds} interleaved rounds, "
          f"{args.seconds:g} s clips at 30 fps sampled at {args.fps:g} fps")
    out: dict[str, Any] = {"load_avg": load[0], "cores": os.cpu_count(), "sizes": report(runs, dec, meta)}
    out["fit"] = fit(out["sizes"], meta)
    print("least-squares fit (seconds): " + ", ".join(f"{k} {v:.4f}" for k, v in out["fit"].items()))
    print(json.dumps(out))


def report(runs: dict[str, list[float]], dec: dict[str, list[float]],
           meta: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Print one line per variant (median, min-max, decode, the model's estimate); returns the rows."""
    sizes: dict[str, dict[str, Any]] = {}
    for key, vals in runs.items():
        name = key.split(" ")[0]
        med = statistics.median(vals)
        row = {"join_s_per_frame": round(med, 4), "min": round(min(vals), 4), "max": round(max(vals), 4)}
        line = f"{key:>34}: join {med:.3f} s/frame (min {min(vals):.3f}, max {max(vals):.3f})"
        if key == name:
            d = statistics.median(dec[name])
            est = meta[name]["estimate_s_per_frame"]
            longest = est * 1200  # the clip's own decode share scales the same way at 30 fps sampled at 10
            row |= {"decode_s_per_source_frame": round(d, 4), "estimate_s_per_frame": round(est, 4),
                    "longest_clip_estimate_s": round(longest)}
            line += (f", decode {1000 * d:.1f} ms/source frame; model {est:.3f} s/frame, "
                     f"longest accepted clip (1,200 frames) ≈ {longest:.0f} s")
        print(line)
        sizes[key] = row
    return sizes


def fit(sizes: dict[str, dict[str, Any]], meta: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The model's coefficients from the medians: decode per source frame and MP from the decode-only runs, then
    the rest of each sampled frame's join as a + b * source MP + c * preview MP."""
    from humanparse.video.chunks import preview_size

    rows, rest, per_mp = [], [], []
    for name in (f"{w}x{h}" for w, h in SIZES):
        w, h = (int(v) for v in name.split("x"))
        mp, (pw, ph) = w * h / 1e6, preview_size(w, h)
        per_mp.append(sizes[name]["decode_s_per_source_frame"] / mp)
    d = statistics.median(per_mp)
    for name in (f"{w}x{h}" for w, h in SIZES):
        w, h = (int(v) for v in name.split("x"))
        mp, (pw, ph) = w * h / 1e6, preview_size(w, h)
        ratio = meta[name]["source_frames"] / meta[name]["frames"]
        rows.append([1.0, mp, pw * ph / 1e6])
        rest.append(sizes[name]["join_s_per_frame"] - ratio * d * mp)
    (a, b, c), *_ = np.linalg.lstsq(np.array(rows), np.array(rest), rcond=None)
    return {"per_decoded_mp": d, "per_frame": float(a), "per_source_mp": float(b), "per_preview_mp": float(c)}


if __name__ == "__main__":
    main()
