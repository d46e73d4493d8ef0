"""What a video job checks before FFmpeg runs: the caps (``VideoLimits``) and a container's leading bytes.
Apart from ``decode`` so that the S3 trigger can tell a video upload and set its caps without importing PyAV and
OpenCV (0.29 s of every cold start, also for photos)."""

from __future__ import annotations

from dataclasses import dataclass

# Leading bytes of the containers we accept: such a file that FFmpeg cannot open is cut short, not "not a video".
SIGNATURES = (b"\x1a\x45\xdf\xa3",)  # EBML (WebM / Matroska); MP4/MOV checked by box type below


@dataclass(frozen=True)
class VideoLimits:
    """Caller-supplied caps (the job flow passes Settings values)."""

    max_bytes: int = 200 * 1024 * 1024
    max_seconds: float = 120.0
    max_frames: int = 1200  # sampled frames (120 s at 10 fps)
    max_corrupt_share: float = 0.25  # frames that fail to decode: above this share the job fails
    # width x height of one frame (decoder bombs): 4K UHD is 8.3 MP; each decoded frame costs ~W*H*3 bytes
    # as RGB plus the parser's own copies, so this bounds one frame's memory before any frame is decoded
    max_frame_megapixels: float = 8.5


def looks_like_video(head: bytes) -> bool:
    """``head``: a file's first bytes (≥ 8). True for the WebM/Matroska and MP4/MOV containers we accept."""
    return head.startswith(SIGNATURES) or head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free")
