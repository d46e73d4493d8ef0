"""Colour maps on hand-made label maps: known colours at known pixels, blending arithmetic, legend."""

from __future__ import annotations

import io

import numpy as np
from humanparse.colormap import colorize, legend_entries, legend_image, overlay, person_view
from humanparse.engine.types import ModelInfo, ParseResult, Person
from humanparse.labels import CIHP_LABELS, CIHP_PALETTE
from humanparse.rendering import ARTIFACTS, render_all
from PIL import Image


def _labels() -> np.ndarray:
    lab = np.zeros((10, 20), dtype=np.uint8)
    lab[2:5, 3:8] = 13  # Face
    lab[5:9, 3:8] = 5  # UpperClothes
    lab[0, 19] = 19  # Right-shoe, one pixel
    return lab


def test_colorize_known_pixels() -> None:
    c = colorize(_labels())
    assert c.shape == (10, 20, 3) and c.dtype == np.uint8
    assert tuple(c[3, 4]) == CIHP_PALETTE[13] == (0, 0, 255)
    assert tuple(c[6, 4]) == CIHP_PALETTE[5]
    assert tuple(c[0, 19]) == CIHP_PALETTE[19]
    assert tuple(c[0, 0]) == (0, 0, 0)


def test_palette_is_distinct() -> None:
    assert len(set(CIHP_PALETTE)) == len(CIHP_PALETTE) == len(CIHP_LABELS) == 20


def test_overlay_blend_math() -> None:
    lab = _labels()
    rgb = np.full((10, 20, 3), 100, dtype=np.uint8)
    out = overlay(rgb, lab, alpha=0.25)
    assert tuple(out[0, 0]) == (100, 100, 100)  # background untouched
    exp = np.round(100 * 0.75 + np.array(CIHP_PALETTE[13]) * 0.25).astype(int)
    assert tuple(int(v) for v in out[3, 4]) == tuple(exp)
    assert np.array_equal(overlay(rgb, lab, alpha=0.0), rgb)
    assert tuple(overlay(rgb, lab, alpha=1.0)[6, 4]) == CIHP_PALETTE[5]


def test_legend_entries_sorted_with_shares() -> None:
    rows = legend_entries(_labels())
    assert [r["name"] for r in rows] == ["UpperClothes", "Face", "Right-shoe"]
    assert rows[0]["pixels"] == 20 and abs(rows[0]["share"] - 20 / 200) < 1e-9
    assert rows[1]["color"] == "#0000ff"
    img = legend_image(rows)
    assert img.shape[0] >= 3 * 20 and img.shape[2] == 3
    # the swatch of the first row carries its colour
    assert tuple(img[4 + 11, 10]) == CIHP_PALETTE[5]


def test_person_view_distinguishes_people() -> None:
    lab = _labels()
    pm = np.zeros_like(lab)
    pm[2:9, 3:5] = 1
    pm[2:9, 5:8] = 2
    v = person_view(pm, lab)
    assert tuple(v[0, 0]) == (0, 0, 0)
    assert tuple(v[6, 3]) != tuple(v[6, 6])


def test_render_all_files_roundtrip() -> None:
    lab = _labels()
    pm = (lab > 0).astype(np.uint8)
    res = ParseResult(lab, pm, [Person(1, 0.9, (3, 0, 20, 9), int(pm.sum()))],
                      ModelInfo("lite", "test", tuple(range(20))))
    rgb = np.full((10, 20, 3), 50, dtype=np.uint8)
    files = render_all(res, rgb)
    assert list(files) == list(ARTIFACTS)
    back = np.asarray(Image.open(io.BytesIO(files["label.png"])))
    assert np.array_equal(back, lab)  # palette PNG: pixel values are the ids
    color = np.asarray(Image.open(io.BytesIO(files["color.png"])).convert("RGB"))
    assert tuple(color[3, 4]) == CIHP_PALETTE[13]
    import json

    doc = json.loads(files["result.json"])
    assert doc["width"] == 20 and doc["height"] == 10 and doc["person_count"] == 1
    assert {r["name"] for r in doc["legend"]} == {"Face", "UpperClothes", "Right-shoe"}
