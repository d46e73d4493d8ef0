"""Colour maps on hand-made label maps: known colours at known pixels, blending arithmetic, legend."""

from __future__ import annotations

import io

import numpy as np
from humanparse.engine.types import ModelInfo, ParseResult, Person
from humanparse.pipeline.colormap import colorize, id_counts, legend_entries, legend_image, overlay, person_view
from humanparse.pipeline.labels import CIHP_LABELS, CIHP_PALETTE
from humanparse.pipeline.outputs import ARTIFACTS, render_all
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


def _blobs(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Label map of rectangles (ids 0..19), a person map (ids 0..25) and a smooth photo, all (h, w)."""
    rng = np.random.default_rng(seed)
    lab = np.zeros((h, w), np.uint8)
    per = np.zeros((h, w), np.uint8)
    for _ in range(40):
        y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
        dy, dx = rng.integers(4, h // 3), rng.integers(4, w // 3)
        lab[y:y + dy, x:x + dx] = rng.integers(0, 20)
        per[y:y + dy, x:x + dx] = rng.integers(0, 26)
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 127 // (h + w)], -1).astype(np.uint8)
    return lab, per, rgb


def test_overlay_and_colorize_equal_the_numpy_versions() -> None:
    """cv2.LUT + addWeighted + copyTo give the bytes numpy's gather + np.where gave, on views too."""
    import cv2
    from humanparse.pipeline.labels import palette_array

    lut = palette_array()
    lab, _, rgb = _blobs(123, 257, 0)
    lab[0, :20] = np.arange(20)  # every id
    for a in (0.0, 0.25, 0.6, 1.0, 1.7):
        ca = float(np.clip(a, 0, 1))
        old = np.where((lab > 0)[..., None], cv2.addWeighted(rgb, 1.0 - ca, lut[lab], ca, 0.0), rgb)
        assert np.array_equal(overlay(rgb, lab, a), old), a
    view_lab, view_rgb = lab[::2, 1::3], rgb[::2, 1::3]  # non-contiguous inputs
    assert np.array_equal(overlay(view_rgb, view_lab, 0.6),
                          np.where((view_lab > 0)[..., None],
                                   cv2.addWeighted(np.ascontiguousarray(view_rgb), 0.4, lut[view_lab], 0.6, 0.0),
                                   view_rgb))
    assert np.array_equal(colorize(view_lab), lut[view_lab]) and colorize(lab).shape == (123, 257, 3)
    before = rgb.copy()
    overlay(rgb, lab)
    assert np.array_equal(rgb, before)  # inputs never modified


def test_render_all_outputs_decode_to_what_the_page_and_readers_expect() -> None:
    """label.png / persons.png: lossless palette PNGs whose pixels are the ids; color.png the label PNG's bytes;
    overlay.jpg a full-size 4:4:4 JPEG close to the blend (lossy by design)."""
    from humanparse.pipeline.labels import palette_array
    from humanparse.pipeline.rendering import _person_palette
    from PIL import JpegImagePlugin

    lab, per, rgb = _blobs(301, 457, 1)
    res = ParseResult(lab, per, [], ModelInfo("lite", "test", tuple(range(20))))
    files = render_all(res, rgb, alpha=0.6)
    assert list(files) == list(ARTIFACTS) and ARTIFACTS["overlay.jpg"] == "image/jpeg"
    for name, ids, pal in (("label.png", lab, palette_array()), ("persons.png", per, _person_palette())):
        im = Image.open(io.BytesIO(files[name]))
        assert (im.format, im.mode, im.size) == ("PNG", "P", (457, 301)), name
        assert np.array_equal(np.asarray(im), ids), name
        assert np.array_equal(np.asarray(im.getpalette(), np.uint8).reshape(-1, 3)[:256], pal[:len(im.getpalette()) // 3])
    assert files["color.png"] == files["label.png"]
    jpg = Image.open(io.BytesIO(files["overlay.jpg"]))
    assert (jpg.format, jpg.mode, jpg.size) == ("JPEG", "RGB", (457, 301))
    assert JpegImagePlugin.get_sampling(jpg) == 0  # 4:4:4: no chroma shared across a label edge
    err = np.abs(np.asarray(jpg, np.int16) - overlay(rgb, lab, 0.6).astype(np.int16))
    assert err.mean() < 1.5 and np.percentile(err, 99) < 12, (err.mean(), np.percentile(err, 99))
    assert Image.open(io.BytesIO(files["legend.png"])).format == "PNG"


def test_render_all_gives_the_bytes_of_each_output_rendered_in_turn() -> None:
    """``render_all`` makes result.json's document on a second thread while it renders the images, and persons.png
    on whichever thread is free first: every file is byte for byte what rendering the outputs one after another on
    one thread gives, with people (outfit colours, boxes) and the caller's extra fields in result.json; a document
    that fails fails the rendering."""
    import json

    import pytest
    from humanparse.pipeline import outputs
    from humanparse.pipeline.outputs import Rendering, rendered

    lab, per, rgb = _blobs(211, 307, 2)
    per = np.where(per % 3 == 0, 0, per % 3).astype(np.uint8)  # persons 1 and 2
    persons = [Person(k, 0.9 - k / 10, (0, 0, 307, 211), int((per == k).sum())) for k in (1, 2)]
    res = ParseResult(lab, per, persons, ModelInfo("lite", "test", tuple(range(20))))
    extra = {"job": "abc", "input": {"format": "JPEG"}}
    got = render_all(res, rgb, alpha=0.5, extra=extra)
    r = Rendering(res, rgb, 0.5, extra)
    assert got == {o.name: o.render(r) for o in rendered() if o.render is not None}
    doc = json.loads(got["result.json"])
    assert doc["job"] == "abc" and [p["person"] for p in doc["outfit"]] == [1, 2]

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("document failed")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(outputs, "result_document", broken)
        with pytest.raises(RuntimeError, match="document failed"):
            render_all(res, rgb)

    # persons.png is made by whichever lane is free first: the same bytes either way
    import threading
    import time

    made_on: list[str] = []
    real_persons, real_doc, real_overlay = outputs.persons_png, outputs.result_document, outputs.overlay

    def spy(*args: object) -> bytes:
        made_on.append(threading.current_thread().name)
        return real_persons(*args)  # type: ignore[arg-type]

    def late(fn: object) -> object:
        def run(*args: object, **kwargs: object) -> object:
            time.sleep(0.3)
            return fn(*args, **kwargs)  # type: ignore[operator]
        return run

    for slow, lane in (("overlay", "render"), ("result_document", "MainThread")):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(outputs, "persons_png", spy)
            mp.setattr(outputs, slow, late(real_overlay if slow == "overlay" else real_doc))
            made_on.clear()
            assert render_all(res, rgb, alpha=0.5, extra=extra) == got
            assert len(made_on) == 1 and made_on[0].startswith(lane)


def test_label_statistics_are_the_bincount_of_the_map() -> None:
    """result.json's ``labels`` and legend come from one Pillow histogram: the pixels ``np.bincount`` counts."""
    from humanparse.pipeline.labels import id_counts
    from humanparse.pipeline.rendering import result_document

    lab = np.random.default_rng(3).integers(0, 20, (301, 257)).astype(np.uint8)
    lab[lab == 7] = 0  # a label absent
    res = ParseResult(lab, np.zeros_like(lab), [], ModelInfo("lite", "test", tuple(range(20))))
    counts = np.bincount(lab.ravel(), minlength=20)
    assert res.label_stats() == [{"id": i, "name": CIHP_LABELS[i], "pixels": int(c),
                                  "share": round(float(c) / lab.size, 6)} for i, c in enumerate(counts) if c > 0]
    assert res.summary(id_counts(lab)) == res.summary()
    doc = result_document(res)
    assert [(e["id"], e["pixels"]) for e in doc["legend"]] == sorted(
        ((i, int(c)) for i, c in enumerate(counts) if c > 0 and i > 0), key=lambda e: -e[1])


def test_jpeg_of_a_scratch_array_is_the_same_jpeg() -> None:
    """``jpeg_bytes(..., scratch=True)`` turns the caller's temporary into BGR in place (no 36 MB copy at 12 MP):
    the same bytes as from a copy; without it, or for a view it had to copy, the caller's pixels stay as they were."""
    from humanparse.pipeline.rendering import jpeg_bytes

    _, _, rgb = _blobs(97, 131, 3)
    keep = rgb.copy()
    want = jpeg_bytes(rgb)
    assert np.array_equal(rgb, keep)
    scratch = rgb.copy()
    assert jpeg_bytes(scratch, scratch=True) == want and not np.array_equal(scratch, keep)  # used up
    view = rgb[:, ::2]
    assert jpeg_bytes(view, scratch=True) == jpeg_bytes(np.ascontiguousarray(view)) and np.array_equal(rgb, keep)


def test_id_counts_are_exact() -> None:
    ids = np.random.default_rng(3).integers(0, 256, (97, 131), dtype=np.uint8)
    ids[0, 0] = 255
    assert id_counts(ids) == np.bincount(ids.ravel(), minlength=256).tolist()
    assert id_counts(ids[::2, 1::3]) == np.bincount(ids[::2, 1::3].ravel(), minlength=256).tolist()


def test_overlay_jpeg_of_a_strip_longer_than_libjpeg_allows() -> None:
    """70000×16 is within every pixel limit; libjpeg's 65500-pixel side is not: the JPEG is shrunk, not failed."""
    from humanparse.pipeline.rendering import JPEG_MAX_SIDE, jpeg_bytes

    im = Image.open(io.BytesIO(jpeg_bytes(np.full((16, 70000, 3), 200, np.uint8))))
    assert im.format == "JPEG" and im.size == (JPEG_MAX_SIDE, 15)
    assert Image.open(io.BytesIO(jpeg_bytes(np.zeros((40, 60, 3), np.uint8)))).size == (60, 40)
