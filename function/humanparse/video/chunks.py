"""Split → chunk → join: the use-case functions the job flow calls (one invocation, a Step Functions Map, or the
local runner's queue). Pure functions over local files; S3 plumbing belongs to the callers.

- ``plan_chunks(frames, seconds_per_frame)`` → frame ranges, one per invocation.
- ``process_chunk(parser, video, start, end, dir)`` parses frames [start, end) and saves, per frame,
  ``labels/NNNNNN.png`` (CIHP ids) and ``persons/NNNNNN.png`` (the frame's own person ids) plus ``chunk.json``.
- ``join_chunks(video, chunk_dirs, out_dir)`` tracks persons over all saved frames in order (so ids cannot break
  at chunk borders: the join sees the same sequence a single run would) and writes the outputs. The three preview
  videos are drawn at ``preview_size`` (long side at most ``PREVIEW_MAX_SIDE``); labels.zip keeps every map at
  the clip's own size.
- ``estimate_join_s(info)`` / ``check_join_budget(info, budget_s)``: what the join will cost, checked before any
  chunk runs, so no accepted clip can run its join out of time.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from humanparse.engine.types import Parser
from humanparse.exceptions import VideoTooLong
from humanparse.pipeline.colormap import colorize, overlay, person_view
from humanparse.pipeline.outputs import VIDEO_OUTPUTS
from humanparse.video.decode import DecodeReport, VideoInfo, check_corruption, iter_frames, probe
from humanparse.video.encode import LabelZip, WebmWriter, frame_name, label_png, person_png, poster_jpeg, read_png
from humanparse.video.limits import VideoLimits
from humanparse.video.track import Tracker, relabel

LAMBDA_TIMEOUT_S = 900.0
OUTPUTS = VIDEO_OUTPUTS  # name -> MIME type, in the order join_chunks writes them (result.json last): the table's
Progress = Callable[[int, int], None]
PREVIEW_MAX_SIDE = 1280  # colour/overlay/persons videos: long side at most this (labels.zip keeps full size)
# The join's cost model, seconds, fitted by bench/video_join.py (2 cores shared with other work, load average 7.8,
# so pessimistic; 3 interleaved rounds): per decoded source frame and megapixel (every frame up to the last sampled
# one is decoded), per sampled frame and source megapixel (label/person PNG read, tracking, the persons PNG of
# labels.zip), per sampled frame and preview megapixel (colour maps, overlay, three VP9 encodes). Medians measured
# vs this model, s a frame: 640x360 0.076 vs 0.088, 1280x720 0.34 vs 0.35, 1920x1080 0.43 vs 0.46, 3840x2160
# 1.00 vs 1.03 (full-size previews, as before: 1080p 0.61, 4K 3.9).
JOIN_S_PER_DECODED_MP = 0.0065
JOIN_S_PER_SOURCE_MP = 0.072
JOIN_S_PER_PREVIEW_MP = 0.29

def preview_size(width: int, height: int, max_side: int = PREVIEW_MAX_SIDE) -> tuple[int, int]:
    """(width, height) of the preview videos: the clip's own size when its long side is within ``max_side``
    (odd sizes are padded by the writer), else scaled to a long side of ``max_side``, aspect kept, both even."""
    scale = max_side / max(width, height)
    if scale >= 1:
        return width, height
    return max(2, 2 * round(width * scale / 2)), max(2, 2 * round(height * scale / 2))


def estimate_join_s(info: VideoInfo, max_side: int = PREVIEW_MAX_SIDE) -> float:
    """Seconds ``join_chunks`` is expected to take for ``info``'s clip (the model above)."""
    src_mp = info.width * info.height / 1e6
    pw, ph = preview_size(info.width, info.height, max_side)
    per_frame = JOIN_S_PER_SOURCE_MP * src_mp + JOIN_S_PER_PREVIEW_MP * pw * ph / 1e6
    return info.source_frames * JOIN_S_PER_DECODED_MP * src_mp + info.frames * per_frame


def _secs(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.2g}"


def check_join_budget(info: VideoInfo, budget_s: float, max_side: int = PREVIEW_MAX_SIDE) -> None:
    """VideoTooLong when the join of ``info``'s clip is expected to take more than ``budget_s``; the message
    says how many seconds of this clip, at its size and sampling rate, would fit."""
    est = estimate_join_s(info, max_side)
    if est <= budget_s:
        return
    fit_s = info.duration_s * budget_s / est
    raise VideoTooLong(f"a {info.width}x{info.height} clip of {info.frames} sampled frames would need about "
                       f"{_secs(est)} s to assemble its outputs; the limit is {_secs(budget_s)} s, about {_secs(fit_s)} s "
                       f"of video at this size: shorten the clip or lower its resolution")


def plan_chunks(frames: int, seconds_per_frame: float, *, timeout_s: float = LAMBDA_TIMEOUT_S,
                safety: float = 0.6, overhead_s: float = 60.0, max_chunk_frames: int | None = None,
                ) -> list[tuple[int, int]]:
    """Frame ranges [start, end) covering 0..frames, each expected to finish in ``safety * timeout_s`` after
    ``overhead_s`` (cold start, model load, decode, upload). One range means "run in one invocation".
    E.g. M2FP at 2 s a frame: (900 * 0.6 - 60) / 2 = 240 frames per chunk; lite at 0.15 s: 3200.
    ``max_chunk_frames`` forces smaller chunks (tests, the local runner)."""
    if frames <= 0:
        return []
    per = max(1, int((timeout_s * safety - overhead_s) / max(seconds_per_frame, 1e-6)))
    if max_chunk_frames:
        per = min(per, max_chunk_frames)
    n = math.ceil(frames / per)
    bounds = [round(i * frames / n) for i in range(n + 1)]  # even sizes, no tiny tail chunk
    return [(bounds[i], bounds[i + 1]) for i in range(n)]


def process_chunk(parser: Parser, video: Path, start: int, end: int, out_dir: Path, *, fps: float | None = 10.0,
                  limits: VideoLimits = VideoLimits(), on_progress: Progress | None = None,
                  parse_budget_s: float | None = 60.0) -> dict[str, Any]:
    """Parse sampled frames [start, end) of ``video`` with ``parser`` (same entry as stills). Writes the PNGs
    and ``chunk.json`` under ``out_dir`` and returns the chunk.json document. ``parse_budget_s``: each frame's
    parse gets this long (``Settings.parse_time_budget_s``) before it fails with ParseTimeout; None: no limit."""
    t0 = time.perf_counter()
    info = probe(video, fps=fps, limits=limits)
    end = min(end, info.frames)
    (out_dir / "labels").mkdir(parents=True, exist_ok=True)
    (out_dir / "persons").mkdir(parents=True, exist_ok=True)
    report = DecodeReport()
    frames: list[dict[str, Any]] = []
    parse_s = 0.0
    for fr in iter_frames(video, info, start=start, end=end, report=report, limits=limits):
        tp = time.perf_counter()
        res = parser.parse(fr.rgb, deadline=None if parse_budget_s is None else time.monotonic() + parse_budget_s)
        parse_s += time.perf_counter() - tp
        name = frame_name(fr.index)
        (out_dir / "labels" / name).write_bytes(label_png(res.label_map))
        (out_dir / "persons" / name).write_bytes(person_png(res.person_map))
        frames.append({"index": fr.index, "t": round(fr.time, 4),
                       "persons": [{"id": p.id, "score": round(p.score, 4), "bbox": list(p.bbox), "area": p.area}
                                   for p in res.persons]})
        if on_progress:
            on_progress(len(frames) + len(report.skipped), end - start)
    doc = {"start": start, "end": end, "frames": frames, "skipped": report.skipped,
           "decode_errors": report.errors[:20], "model": parser.info.kind,
           "timings": {"parse_s": round(parse_s, 3), "total_s": round(time.perf_counter() - t0, 3)}}
    (out_dir / "chunk.json").write_text(json.dumps(doc), encoding="utf-8")
    return doc


def _shrink(index_map: np.ndarray[Any, Any], size: tuple[int, int]) -> np.ndarray[Any, Any]:
    """(H, W) uint8 ids → (size[1], size[0]) uint8 ids, nearest neighbour (ids must not blend)."""
    if (index_map.shape[1], index_map.shape[0]) == size:
        return index_map
    return cv2.resize(index_map, size, interpolation=cv2.INTER_NEAREST)


def _draw_previews(writers: dict[str, WebmWriter], rgb: np.ndarray[Any, Any], t: float,
                   label_map: np.ndarray[Any, Any], track_map: np.ndarray[Any, Any],
                   alpha: float) -> np.ndarray[Any, Any]:
    """Append one frame to the three preview videos: ``rgb`` (h, w, 3) at the preview size, the full-size (H, W)
    maps drawn small. Returns the overlay frame (the poster's candidate)."""
    size = (rgb.shape[1], rgb.shape[0])
    small_labels, small_tracks = _shrink(label_map, size), _shrink(track_map, size)
    over = overlay(rgb, small_labels, alpha)
    writers["color.webm"].write(colorize(small_labels), t)
    writers["overlay.webm"].write(over, t)
    writers["persons.webm"].write(person_view(small_tracks, small_labels), t)
    return over


def _load_chunks(chunk_dirs: Sequence[Path], frames: int) -> list[tuple[Path, dict[str, Any]]]:
    """Each chunk's folder and chunk.json, in frame order; ValueError unless they cover 0..frames exactly once."""
    chunks = [(d, json.loads((d / "chunk.json").read_text(encoding="utf-8"))) for d in chunk_dirs]
    chunks.sort(key=lambda c: int(c[1]["start"]))
    covered = [(int(doc["start"]), int(doc["end"])) for _, doc in chunks]
    if [a for a, _ in covered] != [0, *[b for _, b in covered[:-1]]] or not covered or covered[-1][1] != frames:
        raise ValueError(f"chunks {covered} do not cover frames 0..{frames} exactly once")
    return chunks


def join_chunks(video: Path, chunk_dirs: Sequence[Path], out_dir: Path, *, fps: float | None = 10.0,
                limits: VideoLimits = VideoLimits(), alpha: float = 0.6, iou_threshold: float = 0.2,
                max_lost: int = 10, max_side: int = PREVIEW_MAX_SIDE) -> dict[str, Any]:
    """Track persons over every frame the chunks saved, in order, and write ``OUTPUTS`` into ``out_dir``: the
    preview videos and the poster at ``preview_size(width, height, max_side)``, labels.zip at full size.
    Returns the result.json document. Raises CorruptVideo/NoFrames when too many frames were skipped."""
    t0 = time.perf_counter()
    info = probe(video, fps=fps, limits=limits)
    chunks = _load_chunks(chunk_dirs, info.frames)
    where = {int(f["index"]): d for d, doc in chunks for f in doc["frames"]}
    skipped = sorted(i for _, doc in chunks for i in doc["skipped"])
    check_corruption(DecodeReport(skipped=skipped), info.frames, limits)
    out_dir.mkdir(parents=True, exist_ok=True)
    tracker = Tracker(iou_threshold=iou_threshold, max_lost=max_lost)
    w, h = info.width, info.height
    pw, ph = preview_size(w, h, max_side)
    rate = fps or info.source_fps or 10.0
    writers = {name: WebmWriter(out_dir / name, pw, ph, fps=rate) for name in ("color.webm", "overlay.webm",
                                                                              "persons.webm")}
    labels = LabelZip(out_dir / "labels.zip")
    poster: tuple[int, np.ndarray[Any, Any]] | None = None
    done = 0
    try:
        for fr in iter_frames(video, info, limits=limits, size=(pw, ph)):
            d = where.get(fr.index)
            if d is None:
                continue  # skipped by its chunk (undecodable there): reported in result.json
            label_bytes = (d / "labels" / frame_name(fr.index)).read_bytes()
            label_map = read_png(label_bytes)
            person_map = read_png((d / "persons" / frame_name(fr.index)).read_bytes())
            mapping = tracker.update(fr.index, fr.time, person_map, label_map)
            track_map = relabel(person_map, mapping)
            labels.add(fr.index, label_bytes, track_map)  # full size; the chunk's label PNG is already the one
            over = _draw_previews(writers, fr.rgb, fr.time, label_map, track_map, alpha)
            if poster is None or len(mapping) > poster[0]:
                poster = (len(mapping), over)
            done += 1
    finally:
        for wr in writers.values():
            wr.close()
        labels.close()
    tracks = tracker.summary()
    (out_dir / "tracks.json").write_text(json.dumps({"tracks": tracks}), encoding="utf-8")
    if poster is not None:
        (out_dir / "poster.jpg").write_bytes(poster_jpeg(poster[1]))
    result = _result_document(info, chunks, tracks, skipped, done=done, rate=rate,
                              preview=(writers["color.webm"].width, writers["color.webm"].height),
                              join_s=time.perf_counter() - t0, max_side=max_side)
    (out_dir / "result.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result


def _result_document(info: VideoInfo, chunks: list[tuple[Path, dict[str, Any]]], tracks: list[dict[str, Any]],
                     skipped: list[int], *, done: int, rate: float, preview: tuple[int, int], join_s: float,
                     max_side: int) -> dict[str, Any]:
    """result.json of a joined clip: source and preview sizes, frames, persons (tracks), chunks, timings."""
    w, h = info.width, info.height
    parse_s = sum(float(doc["timings"]["parse_s"]) for _, doc in chunks)
    return {
        "kind": "video", "video": info.as_dict(), "frames": done, "fps": rate, "width": w, "height": h,
        "preview": {"width": preview[0], "height": preview[1]},
        "frame_times": [round(t, 4) for t in info.times], "skipped_frames": skipped,
        "person_count": len(tracks),
        "persons": [{"id": t["id"], "color": t["color"], "frames": len(t["frames"]), "first": t["first"],
                     "last": t["last"]} for t in tracks],
        "chunks": [[int(doc["start"]), int(doc["end"])] for _, doc in chunks],
        "model": chunks[0][1]["model"] if chunks else None,
        "timings": {"parse_s": round(parse_s, 3), "join_s": round(join_s, 3),
                    "join_estimate_s": round(estimate_join_s(info, max_side), 3),
                    "parse_s_per_frame": round(parse_s / max(1, done), 4)},
        "outputs": list(OUTPUTS),
    }


def process_video(parser: Parser, video: Path, work_dir: Path, out_dir: Path, *, fps: float | None = 10.0,
                  limits: VideoLimits = VideoLimits(), max_chunk_frames: int | None = None,
                  seconds_per_frame: float = 0.2, on_progress: Progress | None = None,
                  parse_budget_s: float | None = 60.0, **join: Any) -> dict[str, Any]:
    """Whole pipeline in one process: probe, plan, every chunk in turn, join. Same steps as the fan-out."""
    info = probe(video, fps=fps, limits=limits)
    plan = plan_chunks(info.frames, seconds_per_frame, max_chunk_frames=max_chunk_frames)
    dirs: list[Path] = []
    base = 0
    for i, (s, e) in enumerate(plan):
        def step(done: int, _total: int, base: int = base) -> None:
            if on_progress:
                on_progress(base + done, info.frames)
        process_chunk(parser, video, s, e, work_dir / f"chunk-{i:04d}", fps=fps, limits=limits, on_progress=step,
                      parse_budget_s=parse_budget_s)
        dirs.append(work_dir / f"chunk-{i:04d}")
        base += e - s
    return join_chunks(video, dirs, out_dir, fps=fps, limits=limits, **join)
