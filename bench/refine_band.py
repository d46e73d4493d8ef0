"""M2FP post-processing at 12 MP: the row-slice ``refine_band`` against the previous one (tests/refine_band_v1.py),
interleaved in one process on the same forward-pass output, and whether their label maps are identical.

    python bench/refine_band.py --model-dir DIR [--size 4032x3024] [--runs 5]

The photo is bench/scale.py's (a CIHP photo cropped to 4:3, resized, JPEG q92); the forward pass runs once.
Prints median and min–max of ``m2fp_postprocess`` (all of it) and of its ``refine_band`` call for each. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "function"), str(ROOT / "tests"), str(ROOT / "bench")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--size", default="4032x3024")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    from humanparse.engine.m2fp import build_m2fp
    from humanparse.engine.m2fp import postprocess as pp
    from humanparse.engine.m2fp.predictor import preprocess
    from humanparse.pipeline.imageio import decode_image
    from humanparse.runtime import configure_threads
    from refine_band_v1 import refine_band_v1
    from scale import make_photo

    configure_threads(2)
    wh = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        rgb = decode_image(make_photo(Path(tmp) / "p.jpg", (wh[0], wh[1])).read_bytes()).rgb
    parser = build_m2fp(args.model_dir, precision="fp32")
    x, (nh, nw) = preprocess(rgb)
    cls, masks = parser.forward(x)
    kw = dict(padded_hw=(int(x.shape[2]), int(x.shape[3])), image_hw=(nh, nw), out_hw=rgb.shape[:2],
              num_parsing=parser.cfg.num_parsing, ins_score_thr=parser.cfg.parsing_ins_score_thr)
    impls = {"before": refine_band_v1, "after": pp.refine_band}
    new_fn = pp.refine_band
    times: dict[str, list[float]] = {k: [] for k in impls}
    band_times: dict[str, list[float]] = {k: [] for k in impls}
    last: list[float] = [0.0]

    def timed(fn: Any) -> Any:
        def call(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            r = fn(*a, **k)
            last[0] = time.perf_counter() - t
            return r
        return call

    maps: dict[str, np.ndarray] = {}
    for i in range(args.runs + 1):  # the first round warms up
        for name, fn in impls.items():
            pp.refine_band = timed(fn)
            t0 = time.perf_counter()
            out = pp.m2fp_postprocess(cls, masks, **kw)  # type: ignore[arg-type]
            dt = time.perf_counter() - t0
            if i:
                times[name].append(dt)
                band_times[name].append(last[0])
            maps[name] = out.label_map
    pp.refine_band = new_fn
    same = bool(np.array_equal(maps["before"], maps["after"]))
    res = {"size": args.size, "work": [nh, nw], "identical": same, "classes": int(len(np.unique(maps["after"])))}
    for name, ts in times.items():
        bs = band_times[name]
        res[name] = {"post_median_s": round(statistics.median(ts), 3), "post_min_s": round(min(ts), 3),
                     "post_max_s": round(max(ts), 3), "refine_median_s": round(statistics.median(bs), 3),
                     "refine_min_s": round(min(bs), 3), "refine_max_s": round(max(bs), 3)}
        print(f"{name}: post-processing median {statistics.median(ts):.2f} s (min {min(ts):.2f}, max {max(ts):.2f}),"
              f" of which refine_band {statistics.median(bs):.2f} s ({min(bs):.2f}-{max(bs):.2f}), {len(ts)} runs")
    ratios = [b / a for b, a in zip(times["before"], times["after"], strict=True)]
    res["speedup_median"] = round(statistics.median(ratios), 2)
    print(f"identical label maps: {same}; speed-up (paired): median {statistics.median(ratios):.2f}x "
          f"(min {min(ratios):.2f}, max {max(ratios):.2f})")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
