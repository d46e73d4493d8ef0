"""Video parsing: decode → parse every sampled frame with the stills' Parser → track persons →
colour-map videos, label zip, tracks. See chunks.py for the split/chunk/join entry points.

The names below load on first use (PEP 562): importing ``humanparse.video.job`` (the S3 trigger does, at every
cold start) then costs no PyAV/OpenCV import until a video comes."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from humanparse.video.chunks import OUTPUTS, join_chunks, plan_chunks, process_chunk, process_video
    from humanparse.video.decode import DecodeReport, Frame, VideoInfo, iter_frames, probe, select_frames
    from humanparse.video.limits import VideoLimits
    from humanparse.video.track import Track, Tracker, iou_matrix

_HOME = {
    **dict.fromkeys(("OUTPUTS", "join_chunks", "plan_chunks", "process_chunk", "process_video"), "chunks"),
    **dict.fromkeys(("DecodeReport", "Frame", "VideoInfo", "iter_frames", "probe", "select_frames"), "decode"),
    "VideoLimits": "limits",
    **dict.fromkeys(("Track", "Tracker", "iou_matrix"), "track"),
}

__all__ = [
    "OUTPUTS", "DecodeReport", "Frame", "Track", "Tracker", "VideoInfo", "VideoLimits", "iou_matrix",
    "iter_frames", "join_chunks", "plan_chunks", "probe", "process_chunk", "process_video", "select_frames",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"humanparse.video.{_HOME[name]}"), name)
