"""Colour maps ("拼图"): label map → palette colours, overlay on the photo, legend, per-person view.

All functions are vectorised numpy; inputs are never modified.
- ``label_map``: (H, W) uint8 CIHP ids 0..19.  ``person_map``: (H, W) uint8, 0 = none, k = person k.
- ``rgb``: (H, W, 3) uint8 RGB, same H, W.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from humanparse.pipeline.labels import CIHP_LABELS, CIHP_PALETTE, PERSON_PALETTE, hex_color, id_counts, palette_array

_LUT = palette_array()
_LUT_CHANNELS = [np.ascontiguousarray(_LUT[:, c]) for c in range(3)]  # cv2.LUT tables: id → R, G, B


def colorize(label_map: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """(H, W) ids → (H, W, 3) uint8 RGB palette colours (background black). One ``cv2.LUT`` per channel, then
    merged: at 12 MP ~0.04 s (a 3-channel LUT on the merged ids ~0.06 s; numpy's ``_LUT[label_map]`` gather
    ~0.4 s: ``bench/encode.py``)."""
    import cv2

    lab = np.ascontiguousarray(label_map, dtype=np.uint8)
    return np.asarray(cv2.merge([cv2.LUT(lab, ch) for ch in _LUT_CHANNELS]), dtype=np.uint8)


def overlay(rgb: npt.NDArray[np.uint8], label_map: npt.NDArray[np.uint8], alpha: float = 0.6) -> npt.NDArray[np.uint8]:
    """Blend part colours over the photo with opacity ``alpha`` (0..1); background pixels keep the photo.
    (H, W, 3) uint8 RGB out, a new array. uint8 arithmetic in cv2 (rounded), colours gathered by ``cv2.LUT``
    and the photo copied back under a mask: at 12 MP 0.16–0.26 s where numpy's ``_LUT[label]`` + ``np.where``
    took 0.63–0.68 s (``bench/encode.py``, loaded machine; same bytes)."""
    import cv2

    if rgb.shape[:2] != label_map.shape:
        raise ValueError(f"image {rgb.shape[:2]} and label map {label_map.shape} differ in size")
    a = float(np.clip(alpha, 0.0, 1.0))
    lab = np.ascontiguousarray(label_map, dtype=np.uint8)
    colours = colorize(lab)
    photo = np.ascontiguousarray(rgb, dtype=np.uint8)
    # blended into the colours' own array (each pixel read before it is written): one 12 MP RGB array fewer
    # (36 MB; over malloc's 32 MB threshold, so each is fresh memory)
    blended = cv2.addWeighted(photo, 1.0 - a, colours, a, 0.0, dst=colours)
    return np.asarray(cv2.copyTo(photo, (lab == 0).view(np.uint8), blended), dtype=np.uint8)


def person_view(person_map: npt.NDArray[np.uint8], label_map: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """One colour per person, parts told apart by shading (70% person colour, 30% part colour)."""
    plut = np.zeros((256, 3), dtype=np.float32)
    for k in range(1, 256):
        plut[k] = PERSON_PALETTE[(k - 1) % len(PERSON_PALETTE)]
    base = plut[person_map]
    mixed = base * 0.7 + _LUT[label_map].astype(np.float32) * 0.3
    mixed[person_map == 0] = 0
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def legend_entries(label_map: npt.NDArray[np.uint8], counts: list[int] | None = None) -> list[dict[str, Any]]:
    """Labels present (background excluded), largest first: id, name, colour hex, pixels, share of image.
    ``counts``: ``id_counts(label_map)`` where the caller has it."""
    counts = id_counts(label_map) if counts is None else counts
    total = float(label_map.size)
    rows = [{"id": i, "name": CIHP_LABELS[i], "color": hex_color(CIHP_PALETTE[i]), "pixels": int(counts[i]),
             "share": round(float(counts[i]) / total, 6)} for i in range(1, len(CIHP_LABELS)) if counts[i] > 0]
    return sorted(rows, key=lambda r: -r["pixels"])


def full_legend() -> list[dict[str, Any]]:
    return [{"id": i, "name": n, "color": hex_color(CIHP_PALETTE[i])} for i, n in enumerate(CIHP_LABELS)]


def legend_image(entries: list[dict[str, Any]], *, width: int = 260, row: int = 22) -> npt.NDArray[np.uint8]:
    """Render legend rows (swatch, name, share %) as an (H, width, 3) uint8 RGB image on white."""
    h = max(1, len(entries)) * row + 8
    img = Image.new("RGB", (width, h), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    for i, e in enumerate(entries):
        y = 4 + i * row
        color = tuple(int(e["color"][j:j + 2], 16) for j in (1, 3, 5))
        draw.rectangle([6, y + 2, 6 + row - 6, y + row - 4], fill=color, outline=(80, 80, 80))
        share = f"{100.0 * e['share']:.1f}%" if "share" in e else ""
        draw.text((row + 8, y + 4), f"{e['name']}  {share}", fill=(20, 20, 20), font=font)
    return np.asarray(img)
