"""Video parsing: decode → parse every sampled frame with the stills' Parser → track persons →
colour-map videos, label zip, tracks. See chunks.py for the split/chunk/join entry points."""

from humanparse.video.chunks import OUTPUTS, join_chunks, plan_chunks, process_chunk, process_video
from humanparse.video.decode import DecodeReport, Frame, VideoInfo, VideoLimits, iter_frames, probe, select_frames
from humanparse.video.track import Track, Tracker, iou_matrix

__all__ = [
    "OUTPUTS", "DecodeReport", "Frame", "Track", "Tracker", "VideoInfo", "VideoLimits", "iou_matrix",
    "iter_frames", "join_chunks", "plan_chunks", "probe", "process_chunk", "process_video", "select_frames",
]
