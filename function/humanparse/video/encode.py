"""Output encoding: WebM (VP9) videos Chromium plays without plug-ins, the per-frame label zip, the poster.

VP9 at libvpx's realtime deadline, cpu-used 8: ~46 ms a 640x480 frame of noise here (VP8 realtime 134 ms; VP9
"good" 394 ms); colour maps are flat and encode faster. Frame timestamps are the source's, so a variable-rate
clip stays in sync with the original."""

from __future__ import annotations

import io
import zipfile
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np
import numpy.typing as npt
from PIL import Image

from humanparse.pipeline.labels import palette_array
from humanparse.pipeline.rendering import _person_palette, png_bytes

_TB = Fraction(1, 1000)
VP9_OPTIONS = {"deadline": "realtime", "cpu-used": "8", "row-mt": "1"}


class WebmWriter:
    """Append (H, W, 3) uint8 RGB frames with their times (seconds, ascending); ``close`` finishes the file.
    Odd sizes are padded by one black row/column (yuv420p needs even sizes)."""

    def __init__(self, path: Path, width: int, height: int, *, fps: float = 10.0, bit_rate: int = 2_000_000) -> None:
        self.path = path
        self.width, self.height = width + width % 2, height + height % 2
        self._c = av.open(str(path), "w", format="webm")
        self._s = self._c.add_stream("libvpx-vp9", rate=max(1, round(fps)), options=dict(VP9_OPTIONS))
        self._s.width, self._s.height = self.width, self.height
        self._s.pix_fmt = "yuv420p"
        self._s.bit_rate = bit_rate
        self._s.codec_context.time_base = _TB
        self._last_pts = -1
        self.frames = 0

    def write(self, rgb: npt.NDArray[np.uint8], time: float) -> None:
        h, w = rgb.shape[:2]
        if (h, w) != (self.height, self.width):
            rgb = np.pad(rgb, ((0, self.height - h), (0, self.width - w), (0, 0)))
        f = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        pts = max(int(round(time * 1000)), self._last_pts + 1)  # strictly increasing, ms
        f.pts, f.time_base = pts, _TB
        self._last_pts = pts
        for p in self._s.encode(f):
            self._c.mux(p)
        self.frames += 1

    def close(self) -> None:
        for p in self._s.encode():
            self._c.mux(p)
        self._c.close()

    def __enter__(self) -> WebmWriter:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def label_png(label_map: npt.NDArray[np.uint8]) -> bytes:
    """Palette PNG whose pixel values are CIHP ids (same as the still's label.png)."""
    return png_bytes(label_map, palette=palette_array())


def person_png(track_map: npt.NDArray[np.uint8]) -> bytes:
    """Palette PNG whose pixel values are track ids (0 = nobody), coloured per track."""
    return png_bytes(track_map, palette=_person_palette())


def frame_name(index: int) -> str:
    return f"{index:06d}.png"


class LabelZip:
    """labels.zip: ``labels/NNNNNN.png`` (CIHP ids) and ``persons/NNNNNN.png`` (track ids) per processed frame.
    PNGs are already deflated, so entries are stored."""

    def __init__(self, path: Path) -> None:
        self._z = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED)

    def add(self, index: int, label: npt.NDArray[np.uint8] | bytes, track_map: npt.NDArray[np.uint8]) -> None:
        """``label``: the (H, W) CIHP id map, or its ``label_png`` bytes already made (the chunk's own file)."""
        self._z.writestr(f"labels/{frame_name(index)}", label if isinstance(label, bytes) else label_png(label))
        self._z.writestr(f"persons/{frame_name(index)}", person_png(track_map))

    def close(self) -> None:
        self._z.close()


def poster_jpeg(rgb: npt.NDArray[np.uint8], *, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def read_png(data: bytes) -> npt.NDArray[np.uint8]:
    """Palette PNG bytes → (H, W) uint8 index array."""
    return np.asarray(Image.open(io.BytesIO(data)), dtype=np.uint8)
