"""Where render + encode time goes at 12 MP, and what each encoder choice costs (time AND bytes).

    python bench/encode.py [--runs 5] [--mp 12]

One CIHP photo cropped to 4:3 and resized to --mp (bench/scale.py's photo), parsed once by the lite tier for
real label / person maps, then each candidate is timed in interleaved rounds (every candidate once per round,
order rotated) so machine load hits all of them alike. Two photos: the smooth enlargement ("smooth": a
~500 px CIHP photo brought to 12 MP compresses unusually well) and the same with sensor-like noise (Gaussian
σ 4, JPEG q92: "phone"), which is what a phone photo costs. Prints median and p25–p75 in ms, the output's bytes
and the ratio to the first candidate of its group; the last rows compare ``render_all`` with the version before
the render path as it was before palette PNGs and JPEG overlays (numpy blend, RGB PNG overlay, label PNG encoded twice). Last line: JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "function"))
sys.path.insert(0, str(ROOT / "bench"))

from _common import summary  # noqa: E402
from humanparse.engine.types import ParseResult  # noqa: E402
from humanparse.pipeline.colormap import id_counts, legend_image, overlay  # noqa: E402
from humanparse.pipeline.labels import palette_array  # noqa: E402
from humanparse.pipeline.rendering import _person_palette, jpeg_bytes, png_bytes, render_all, result_document  # noqa: E402
from scale import SIDES, make_photo  # noqa: E402

U8 = npt.NDArray[np.uint8]


def _pil_png(arr: U8, palette: U8 | None = None, **opts: Any) -> bytes:
    if palette is None:
        img = Image.fromarray(arr)
    else:
        img = Image.frombytes("P", (arr.shape[1], arr.shape[0]), np.ascontiguousarray(arr).tobytes())
        img.putpalette(palette.reshape(-1).tolist())
    buf = io.BytesIO()
    img.save(buf, format="PNG", **opts)
    return buf.getvalue()


def _pil(arr: U8, fmt: str, **opts: Any) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **opts)
    return buf.getvalue()


def _cv(arr: U8, ext: str, params: list[int]) -> bytes:
    import cv2

    a = arr if arr.ndim == 2 else cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(ext, a, params)
    assert ok
    return bytes(buf.tobytes())


def _blend_v1(rgb: U8, lab: U8, a: float) -> U8:
    """The overlay before: numpy palette gather + cv2.addWeighted + np.where."""
    import cv2

    lut = palette_array()
    return np.where((lab > 0)[..., None], cv2.addWeighted(rgb, 1.0 - a, lut[lab], a, 0.0), rgb).astype(np.uint8)


def render_v1(res: ParseResult, rgb: U8) -> dict[str, bytes]:
    """``render_all`` before: label PNG encoded twice, RGB PNG overlay, level 1, default zlib strategy."""
    doc = result_document(res)
    return {"label.png": _pil_png(res.label_map, palette_array(), compress_level=1),
            "color.png": _pil_png(res.label_map, palette_array(), compress_level=1),
            "overlay.png": _pil_png(_blend_v1(rgb, res.label_map, 0.6), compress_level=1),
            "persons.png": _pil_png(res.person_map, _person_palette(), compress_level=1),
            "legend.png": _pil_png(legend_image(doc["legend"]), compress_level=1),
            "result.json": json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8")}


def candidates(res: ParseResult, rgb: U8) -> dict[str, dict[str, Callable[[], Any]]]:
    import cv2

    lab, per = res.label_map, res.person_map
    ov = overlay(rgb, lab, 0.6)
    pal, ppal = palette_array(), _person_palette()
    png = cv2.IMWRITE_PNG_COMPRESSION
    strat, filt = cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_FILTER
    jq, samp = cv2.IMWRITE_JPEG_QUALITY, cv2.IMWRITE_JPEG_SAMPLING_FACTOR
    return {
        "blend": {
            "numpy gather + np.where (before)": lambda: _blend_v1(rgb, lab, 0.6),
            "cv2.LUT + addWeighted + copyTo (now)": lambda: overlay(rgb, lab, 0.6),
        },
        "label.png (palette)": {
            "pil P level 1 (before)": lambda: _pil_png(lab, pal, compress_level=1),
            "pil P level 0": lambda: _pil_png(lab, pal, compress_level=0),
            "pil P level 1 Z_RLE": lambda: _pil_png(lab, pal, compress_level=1, compress_type=zlib.Z_RLE),
            "png_bytes (now: Z_RLE, frombuffer)": lambda: png_bytes(lab, palette=pal),
            "pil P level 6 Z_RLE": lambda: _pil_png(lab, pal, compress_level=6, compress_type=zlib.Z_RLE),
            "pil P level 1 HUFFMAN_ONLY": lambda: _pil_png(lab, pal, compress_level=1,
                                                           compress_type=zlib.Z_HUFFMAN_ONLY),
            "cv2 grey level 1 (no palette)": lambda: _cv(lab, ".png", [png, 1]),
            "cv2 grey level 1 RLE (no palette)": lambda: _cv(lab, ".png", [png, 1, strat,
                                                                          cv2.IMWRITE_PNG_STRATEGY_RLE]),
        },
        "persons.png (palette)": {
            "pil P level 1 (before)": lambda: _pil_png(per, ppal, compress_level=1),
            "png_bytes (now: Z_RLE, frombuffer)": lambda: png_bytes(per, palette=ppal),
        },
        "overlay (RGB)": {
            "pil PNG level 1 (before)": lambda: _pil_png(ov, compress_level=1),
            "pil PNG level 1 Z_RLE": lambda: _pil_png(ov, compress_level=1, compress_type=zlib.Z_RLE),
            "cv2 PNG level 1": lambda: _cv(ov, ".png", [png, 1]),
            "cv2 PNG level 0": lambda: _cv(ov, ".png", [png, 0]),
            "cv2 PNG level 1 HUFFMAN_ONLY": lambda: _cv(ov, ".png", [png, 1, strat,
                                                                    cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]),
            "cv2 PNG level 1 FILTERED": lambda: _cv(ov, ".png", [png, 1, strat, cv2.IMWRITE_PNG_STRATEGY_FILTERED]),
            "cv2 PNG level 1 UP + RLE": lambda: _cv(ov, ".png", [png, 1, filt, cv2.IMWRITE_PNG_FILTER_UP, strat,
                                                                cv2.IMWRITE_PNG_STRATEGY_RLE]),
            "cv2 PNG level 1 SUB + RLE": lambda: _cv(ov, ".png", [png, 1, filt, cv2.IMWRITE_PNG_FILTER_SUB, strat,
                                                                 cv2.IMWRITE_PNG_STRATEGY_RLE]),
            "pil JPEG q90 4:2:0": lambda: _pil(ov, "JPEG", quality=90),
            "pil JPEG q90 4:4:4": lambda: _pil(ov, "JPEG", quality=90, subsampling=0),
            "jpeg_bytes (now: cv2 q90 4:4:4)": lambda: jpeg_bytes(ov),
            "cv2 JPEG q90 4:2:0": lambda: _cv(ov, ".jpg", [jq, 90]),
            "cv2 JPEG q90 4:4:4": lambda: _cv(ov, ".jpg", [jq, 90, samp, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]),
            "cv2 WebP q80": lambda: _cv(ov, ".webp", [cv2.IMWRITE_WEBP_QUALITY, 80]),
        },
        "label counts (legend)": {
            "np.bincount (before)": lambda: np.bincount(lab.ravel(), minlength=20),
            "id_counts (now: Pillow histogram)": lambda: id_counts(lab),
        },
        "render_all (every output)": {
            "before the render rework": lambda: render_v1(res, rgb),
            "render_all (now)": lambda: render_all(res, rgb),
        },
    }


def _size(out: Any) -> int:
    if isinstance(out, dict):
        return sum(len(v) for v in out.values())
    if isinstance(out, list):  # counts
        return 0
    return len(out) if isinstance(out, bytes) else int(out.nbytes)


def bench(groups: dict[str, dict[str, Callable[[], Any]]], runs: int) -> dict[str, dict[str, dict[str, Any]]]:
    flat = [(g, n, f) for g, c in groups.items() for n, f in c.items()]
    times: dict[tuple[str, str], list[float]] = {(g, n): [] for g, n, _ in flat}
    sizes: dict[tuple[str, str], int] = {}
    for r in range(runs + 1):  # round 0 warms up (imports, allocator) and is not counted
        k = r % len(flat)
        for g, n, f in flat[k:] + flat[:k]:
            t0 = time.perf_counter()
            out = f()
            if r:
                times[(g, n)].append(time.perf_counter() - t0)
            sizes[(g, n)] = _size(out)
    report: dict[str, dict[str, dict[str, Any]]] = {}
    for g, c in groups.items():
        base = statistics.median(times[(g, next(iter(c)))])
        report[g] = {}
        for n in c:
            s = summary(times[(g, n)])
            s.update(mb=round(sizes[(g, n)] / 1e6, 3), ratio=round(statistics.median(times[(g, n)]) / base, 2))
            report[g][n] = s
    return report


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mp", type=float, default=12)
    a = ap.parse_args()
    from humanparse.engine.lite import LiteParser, find_lite_models
    from humanparse.pipeline.imageio import decode_image
    from humanparse.runtime import configure_threads

    configure_threads(2)
    parser = LiteParser(*find_lite_models([ROOT.parent / "shared" / "models"]), threads=2)
    key = int(a.mp) if a.mp == int(a.mp) else a.mp
    with tempfile.TemporaryDirectory() as tmp:
        smooth = decode_image(make_photo(Path(tmp) / "p.jpg", SIDES[key]).read_bytes()).rgb
    rng = np.random.default_rng(0)
    noisy = np.clip(smooth + rng.normal(0, 4, smooth.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noisy).save(buf, format="JPEG", quality=92)
    phone = decode_image(buf.getvalue()).rgb
    res = parser.parse(smooth)
    print(f"{smooth.shape[1]}x{smooth.shape[0]}, labels {np.unique(res.label_map).tolist()}, "
          f"{a.runs} interleaved runs; ms median [p25-p75], MB out, x first of group", flush=True)
    out: dict[str, Any] = {"runs": a.runs, "shape": list(smooth.shape[:2])}
    for name, rgb in (("smooth", smooth), ("phone", phone)):
        rep = bench(candidates(res, rgb), a.runs)
        out[name] = rep
        for g, rows in rep.items():
            print(f"-- {name}: {g}")
            for n, s in rows.items():
                print(f"   {n:38s} {s['median_ms']:7.0f} ms [{s['p25_ms']:.0f}-{s['p75_ms']:.0f}]"
                      f"  {s['mb']:7.2f} MB  x{s['ratio']:.2f}", flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
