"""The encoders the outputs are made with (bytes, no I/O): palette and RGB PNGs, the overlay JPEG, result.json's
document. Which files a parse writes, and from what, is the output table (``outputs.py``)."""

from __future__ import annotations

import io
import zlib
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from humanparse.engine.types import ParseResult
from humanparse.pipeline.colormap import legend_entries
from humanparse.pipeline.labels import PERSON_PALETTE, id_counts

OVERLAY_JPEG_QUALITY = 90
JPEG_MAX_SIDE = 65500  # libjpeg's limit per side; a longer image is shrunk to it (aspect kept)


def png_bytes(arr: npt.NDArray[np.uint8], *, palette: npt.NDArray[np.uint8] | None = None) -> bytes:
    """PNG of (H, W, 3) RGB or, with ``palette`` ((256, 3) uint8), of (H, W) uint8 indices kept as the pixel
    values (ids: the PNG reads back as the id array) and shown in the palette's colours."""
    if palette is None:
        img = Image.fromarray(arr)
        # level 1: several times faster than the default for a few % more bytes (only the small legend and
        # Jupyter's preview are RGB PNGs now)
        options: dict[str, Any] = {"compress_level": 1}
    else:
        # frombuffer shares the array's memory (frombytes copied it into a zero-filled image: ~20 ms at 12 MP)
        img = Image.frombuffer("P", (arr.shape[1], arr.shape[0]), np.ascontiguousarray(arr, dtype=np.uint8),
                               "raw", "P", 0, 1)
        img.putpalette(palette.reshape(-1).tolist())
        # zlib's run-length strategy: id maps are long runs; at 12 MP 0.05 s and 0.05 MB where level 1's default
        # strategy took 0.06-0.07 s for 0.13 MB (cv2 cannot write palette PNGs and was 3x slower for grey)
        options = {"compress_level": 1, "compress_type": zlib.Z_RLE}
    buf = io.BytesIO()
    img.save(buf, format="PNG", **options)
    return buf.getvalue()


def jpeg_bytes(rgb: npt.NDArray[np.uint8], *, quality: int = OVERLAY_JPEG_QUALITY, scratch: bool = False) -> bytes:
    """Baseline JPEG of (H, W, 3) uint8 RGB, 4:4:4 (no chroma subsampling: a part's colour stays on its own
    pixels at label edges; +0.04 s and +17 % bytes at 12 MP against 4:2:0). cv2's libjpeg-turbo: 0.12–0.13 s
    on a 12 MP phone-like photo where Pillow (which first copies RGB into its 4-byte pixels) took 0.16 s.
    A side over ``JPEG_MAX_SIDE`` (a 70000×20 strip is within the pixel limits) is shrunk to it: the overlay is
    a picture, the ids keep the full size in the PNGs. ``scratch``: ``rgb`` is the caller's temporary and may be
    overwritten (turned into BGR in place: no 36 MB copy at 12 MP)."""
    import cv2

    src = np.ascontiguousarray(rgb, dtype=np.uint8)
    bgr = cv2.cvtColor(src, cv2.COLOR_RGB2BGR, dst=src if scratch or src is not rgb else None)  # src: ours
    h, w = bgr.shape[:2]
    if max(h, w) > JPEG_MAX_SIDE:
        f = JPEG_MAX_SIDE / max(h, w)
        bgr = cv2.resize(bgr, (max(1, min(JPEG_MAX_SIDE, round(w * f))), max(1, min(JPEG_MAX_SIDE, round(h * f)))),
                         interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality,
                                         cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
    if not ok:  # cv2 reports failure by a flag, not an exception
        raise RuntimeError("JPEG encoding failed")
    return bytes(buf.tobytes())


def _person_palette() -> npt.NDArray[np.uint8]:
    lut = np.zeros((256, 3), dtype=np.uint8)
    for k in range(1, 256):
        lut[k] = PERSON_PALETTE[(k - 1) % len(PERSON_PALETTE)]
    return lut


def result_document(result: ParseResult, *, extra: dict[str, Any] | None = None,
                    rgb: npt.NDArray[np.uint8] | None = None) -> dict[str, Any]:
    """``result.json``: the parse's summary, the legend and, given the photo ``rgb`` ((H, W, 3) uint8), the outfit
    per person (garments, pixels, share, dominant colour: ``outfit.py``; ~15-40 ms on a 500x458 photo)."""
    counts = id_counts(result.label_map)  # one histogram for the labels' statistics and the legend
    doc = result.summary(counts)
    doc["legend"] = legend_entries(result.label_map, counts)
    if rgb is not None:
        from humanparse.pipeline.outfit import outfit

        doc["outfit"] = outfit(rgb, result.label_map, result.person_map, len(result.persons))
    if extra:
        doc.update(extra)
    return doc
