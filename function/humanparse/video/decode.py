"""Video decoding with PyAV: probe (limits, codec, truncation, timestamp sampling) and frame iteration.

Why PyAV over OpenCV's FFmpeg (measured here, 100 frames 640x480, CPU shared): both read MP4 H.264/H.265, MOV and
WebM VP8/VP9; OpenCV gives no way to tell audio-only from not-a-video, no codec name, no per-packet decode errors
(corrupt frames vanish silently) and cannot write H.264 for test clips. PyAV's ``to_ndarray("rgb24")`` costs ~3 ms a
frame, so frames are taken as yuv420p and converted by OpenCV: 69 ms / 100 frames vs OpenCV's own 44-82 ms.
Either is < 3 % of a lite parse (~120 ms a frame).

Frames are chosen by presentation timestamp (variable frame rate safe): ``select_frames`` keeps at most one frame
per 1/fps slot. A probe demuxes every packet (no decoding, a few ms per 100 frames) so every chunk of a split job
derives the same sampled frame list from the file alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import numpy.typing as npt

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
from humanparse.video.limits import VideoLimits, looks_like_video

av.logging.set_level(None)  # FFmpeg's own stderr chatter; errors reach us as exceptions

ACCEPTED_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1"})
# Containers FFmpeg opens that are still pictures, not clips.
_IMAGE_FORMATS = ("image2", "_pipe", "gif", "apng", "webp")


def bound_decoder(s: av.video.stream.VideoStream, limits: VideoLimits) -> None:
    """Make FFmpeg refuse, before allocating its pixels, any frame over ``limits.max_frame_megapixels``: the
    decoder's ``max_pixels`` option is checked whenever a frame header sets the picture size, on every frame,
    not only the first (a 96 KB WebM whose second keyframe claimed 16000x16000 cost +1.09 GB without it; with it
    the decoder answers EINVAL and the peak stayed at 37 MB). Call before the first decode."""
    s.codec_context.options = {**s.codec_context.options, "max_pixels": str(int(limits.max_frame_megapixels * 1e6))}


def refused_size(limits: VideoLimits, frame: str) -> VideoTooLarge:
    return VideoTooLarge(f"{frame} of the video claims a picture size over the limit of "
                         f"{limits.max_frame_megapixels:g} MP a frame; the decoder refused it")


def check_frame_size(width: int, height: int, limits: VideoLimits) -> None:
    """VideoTooLarge when one ``width`` x ``height`` frame exceeds ``limits.max_frame_megapixels``."""
    if width * height > limits.max_frame_megapixels * 1e6:
        raise VideoTooLarge(f"video frames are {width}x{height} ({width * height / 1e6:.1f} MP); the limit is "
                            f"{limits.max_frame_megapixels:g} MP a frame")


@dataclass(frozen=True)
class VideoInfo:
    """What a probe learned. ``times``/``pts`` list the SAMPLED frames (seconds from the first frame / stream pts);
    ``width``/``height`` are after rotation (what the viewer sees)."""

    width: int
    height: int
    rotation: int  # degrees counter-clockwise applied to decoded pictures: 0, 90, 180, 270
    codec: str
    container: str
    duration_s: float
    source_frames: int  # packets in the stream
    source_fps: float  # average, from packet count and duration
    fps: float | None  # sampling rate asked for (None: every frame)
    times: tuple[float, ...]
    pts: tuple[int, ...]

    @property
    def frames(self) -> int:
        return len(self.times)

    def as_dict(self) -> dict[str, object]:
        return {"width": self.width, "height": self.height, "rotation": self.rotation, "codec": self.codec,
                "container": self.container, "duration_s": round(self.duration_s, 3),
                "source_frames": self.source_frames, "source_fps": round(self.source_fps, 3),
                "sample_fps": self.fps, "frames": self.frames}


@dataclass
class Frame:
    index: int  # position in VideoInfo.times (0-based sampled index)
    time: float  # seconds from the first frame
    rgb: npt.NDArray[np.uint8]  # (H, W, 3) uint8 RGB, rotation applied


@dataclass
class DecodeReport:
    """Filled while iterating: sampled indices whose frame could not be decoded (skipped, not parsed)."""

    skipped: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def select_frames(times: Sequence[float], fps: float | None) -> list[int]:
    """Indices (into ascending ``times``, seconds) of the frames to keep: all when ``fps`` is None or 0, else the
    first frame in each 1/fps slot, so a 30 fps clip at fps=10 keeps every third frame and a 5 fps stretch of a
    variable-rate clip keeps all of its frames."""
    if not fps:
        return list(range(len(times)))
    keep: list[int] = []
    next_slot = -math.inf
    eps = 1e-6
    for i, t in enumerate(times):
        if t + eps >= next_slot:
            keep.append(i)
            next_slot = (math.floor(t * fps + eps) + 1) / fps
    return keep


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), "r")
    except av.error.FFmpegError as e:
        with path.open("rb") as f:
            head = f.read(16)
        if looks_like_video(head):
            raise TruncatedVideo(f"the video container cannot be read (cut short?): {e.strerror}") from e
        raise NotAVideo("not a video file FFmpeg can read") from e


def _video_stream(c: av.container.InputContainer) -> av.video.stream.VideoStream:
    if any(tag in c.format.name for tag in _IMAGE_FORMATS):
        raise NotAVideo(f"a still image ({c.format.name}), not a video")
    if not c.streams.video:
        if c.streams.audio:
            raise AudioOnly("the file has sound but no picture")
        if not c.streams:  # a clip container whose muxer dropped the picture track: it never got a frame
            raise NoFrames("the video holds no frames")
        raise NotAVideo("the file has no video stream")
    s = c.streams.video[0]
    name = s.codec_context.name if s.codec_context is not None else "unknown"
    if name not in ACCEPTED_CODECS:
        raise UnsupportedCodec(f"video codec {name!r} is not accepted (use H.264, H.265, VP8, VP9 or AV1)")
    return s


def _declared_seconds(c: av.container.InputContainer, s: av.video.stream.VideoStream) -> float | None:
    """The picture's length as the container states it: the stream's own duration, else the container's when
    nothing else (a longer sound track) could make up its length."""
    if s.duration is not None and s.time_base is not None:
        return float(s.duration * s.time_base)
    if c.duration is not None and len(c.streams) == 1:
        return float(c.duration / av.time_base)
    return None


def _packet_pts(c: av.container.InputContainer, s: av.video.stream.VideoStream) -> tuple[list[int], bool]:
    """Every video packet's pts, ascending; and whether demuxing stopped on an error (file cut short)."""
    pts: list[int] = []
    broken = False
    try:
        for p in c.demux(s):
            if p.size == 0:
                continue
            v = p.pts if p.pts is not None else p.dts
            if v is not None:
                pts.append(int(v))
    except av.error.FFmpegError:
        broken = True
    return sorted(pts), broken


def _first_rotation(path: Path, limits: VideoLimits) -> int:
    """Rotation of the first decodable frame; UnsupportedCodec when no packet decodes at all."""
    with av.open(str(path), "r") as c:
        s = c.streams.video[0]
        bound_decoder(s, limits)
        try:
            for p in c.demux(s):
                try:
                    for f in p.decode():
                        return int(round(f.rotation / 90.0)) * 90 % 360
                except av.error.ArgumentError as e:
                    raise refused_size(limits, "a frame") from e
                except av.error.FFmpegError:
                    continue
        except av.error.FFmpegError:
            pass
    raise UnsupportedCodec("no frame of the video could be decoded")


def probe(path: Path, *, fps: float | None = 10.0, limits: VideoLimits = VideoLimits()) -> VideoInfo:
    """Check ``path`` against every bad-input rule and list the frames to parse. Raises the video errors of
    humanparse.exceptions (EmptyInput, VideoTooLarge, NotAVideo, TruncatedVideo, AudioOnly, UnsupportedCodec,
    NoFrames, VideoTooLong)."""
    size = path.stat().st_size
    if size == 0:
        raise EmptyInput("the video file is empty")
    if size > limits.max_bytes:
        raise VideoTooLarge(f"video is {size / 2**20:.1f} MiB; the limit is {limits.max_bytes / 2**20:.0f} MiB")
    with _open(path) as c:
        s = _video_stream(c)
        check_frame_size(int(s.codec_context.width), int(s.codec_context.height), limits)  # before reading packets
        declared = int(s.frames or 0)
        declared_s = _declared_seconds(c, s)
        if declared_s is not None and declared_s > limits.max_seconds:  # before reading every packet
            raise VideoTooLong(f"video lasts {declared_s:.1f} s; the limit is {limits.max_seconds:g} s")
        tb = float(s.time_base) if s.time_base is not None else 1.0 / 90000
        pts, broken = _packet_pts(c, s)
        codec, container = s.codec_context.name, c.format.name
        w, h = s.codec_context.width, s.codec_context.height
    if not pts:
        raise NoFrames("the video stream holds no frames")
    t0 = pts[0]
    times = [(p - t0) * tb for p in pts]
    span = times[-1] + (times[-1] / max(1, len(times) - 1) if len(times) > 1 else 0.0)
    if broken or (declared and len(pts) < declared) or (declared_s and span < 0.8 * declared_s - 0.5):
        raise TruncatedVideo(f"the video is cut short: {len(pts)} frames readable"
                             + (f" of {declared}" if declared else "")
                             + (f", {span:.1f} s of {declared_s:.1f} s" if declared_s else ""))
    if times[-1] > limits.max_seconds:
        raise VideoTooLong(f"video lasts {times[-1]:.1f} s; the limit is {limits.max_seconds:g} s")
    keep = select_frames(times, fps)
    if len(keep) > limits.max_frames:
        raise VideoTooLong(f"{len(keep)} frames to parse; the limit is {limits.max_frames}: lower the frame rate")
    rotation = _first_rotation(path, limits)
    if rotation in (90, 270):
        w, h = h, w
    return VideoInfo(width=int(w), height=int(h), rotation=rotation, codec=codec, container=container,
                     duration_s=float(span), source_frames=len(pts),
                     source_fps=(len(pts) - 1) / times[-1] if times[-1] > 0 else 0.0, fps=fps,
                     times=tuple(times[i] for i in keep), pts=tuple(pts[i] for i in keep))


def _to_rgb(f: av.VideoFrame, rotation: int) -> npt.NDArray[np.uint8]:
    if f.format.name == "yuv420p" and f.width % 2 == 0 and f.height % 2 == 0:
        # 4x faster than PyAV's own rgb24 conversion (see module docstring)
        rgb = cv2.cvtColor(f.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2RGB_I420)
    else:
        rgb = f.to_ndarray(format="rgb24")
    if rotation:
        rgb = np.rot90(rgb, k=rotation // 90)  # both counter-clockwise (PyAV VideoFrame.rotation)
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def iter_frames(path: Path, info: VideoInfo, *, start: int = 0, end: int | None = None,
                report: DecodeReport | None = None, limits: VideoLimits = VideoLimits(),
                size: tuple[int, int] | None = None) -> Iterator[Frame]:
    """Yield the sampled frames ``start <= index < end`` in order. A frame whose packet fails to decode is
    skipped and its index added to ``report.skipped``. Decoding starts at the file's beginning (decode costs
    ~1 ms a frame against >100 ms to parse one, so seeking is not worth its keyframe bookkeeping).

    Frame size rules (every frame, not only the first): a frame claiming more than
    ``limits.max_frame_megapixels`` is refused by the decoder before its pixels exist (``bound_decoder``) and
    raises VideoTooLarge; a legal frame whose size differs from the first frame's (a stream that changes size
    mid-way) is scaled to the first frame's size, so every output frame of a clip has one size.

    ``size`` (width, height as viewed, even): scale every frame to it inside the decoder (swscale, area
    averaging, straight to yuv420p) instead of converting the full picture to RGB and resizing it: the join's
    1280x720 previews from a 1080p clip decode in 19 ms a sampled frame instead of 30 (4K: 46 vs 51 ms; 2 busy
    cores, 30 fps sampled at 10)."""
    end = info.frames if end is None else min(end, info.frames)
    want = {p: i for i, p in enumerate(info.pts) if start <= i < end}
    if not want:
        return
    report = report if report is not None else DecodeReport()
    view = size or (info.width, info.height)
    size = (view[1], view[0]) if info.rotation in (90, 270) else view  # as decoded, before rotation
    seen: set[int] = set()
    with av.open(str(path), "r") as c:
        s = c.streams.video[0]
        bound_decoder(s, limits)
        s.thread_type = "AUTO"
        for packet in c.demux(s):
            for f in _decode(packet, report, limits):
                i = want.get(int(f.pts)) if f.pts is not None else None
                if i is None or i in seen:
                    continue
                check_frame_size(f.width, f.height, limits)
                if (f.width, f.height) != size:
                    f = f.reformat(width=size[0], height=size[1], format="yuv420p", interpolation="AREA")
                seen.add(i)
                yield Frame(index=i, time=info.times[i], rgb=_to_rgb(f, info.rotation))
            if len(seen) == len(want):
                break
    report.skipped.extend(sorted(set(want.values()) - seen))


def _decode(packet: Any, report: DecodeReport, limits: VideoLimits) -> list[av.VideoFrame]:
    """The frames of one packet; [] (noted in ``report``) when it does not decode; VideoTooLarge when the
    decoder refused the picture size it announces (EINVAL under ``bound_decoder``)."""
    try:
        return [f for f in packet.decode() if isinstance(f, av.VideoFrame)]
    except av.error.ArgumentError as e:
        raise refused_size(limits, f"the frame at pts {packet.pts}") from e
    except av.error.FFmpegError as e:
        report.errors.append(str(e.strerror))
        return []


def check_corruption(report: DecodeReport, frames: int, limits: VideoLimits) -> None:
    """Fail when more than ``limits.max_corrupt_share`` of ``frames`` could not be decoded."""
    if frames and len(report.skipped) > limits.max_corrupt_share * frames:
        raise CorruptVideo(f"{len(report.skipped)} of {frames} frames could not be decoded")
    if frames and len(report.skipped) == frames:
        raise NoFrames("no frame of the video could be decoded")
