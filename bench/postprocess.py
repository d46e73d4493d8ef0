"""M2FP post-processing alone: the current ``m2fp_postprocess`` against the full-plane one it replaced
(tests/postprocess_v1.py), interleaved in one process on the same forward-pass output, at each photo size.

    python bench/postprocess.py [--model-dir DIR] [--sizes 864x640,1024x768,4032x3024] [--runs 5] [--threads 2]
                                [--baseline-rev REV]

The photos are bench/scale.py's (a CIHP photo cropped to 4:3, resized, JPEG q92); the forward pass runs once per
size. Per size: median and quartiles of each, the paired ratio, and whether the label maps are identical. Where
the current code decides at the working size and refines a band (photos ≥ 2x the working size's pixels) the
full-plane baseline is too slow to repeat (65 s at 12 MP): it runs once, for the agreement (share of equal
pixels, smallest per-class IoU over classes of ≥ 1000 pixels). ``--baseline-rev``: the post-processing as it was
at that git revision runs interleaved too (paired speed-up and identity against it). Last line: JSON.
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


def agreement(ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
    ious = [((ref == c) & (got == c)).sum() / ((ref == c) | (got == c)).sum()
            for c in np.unique(ref) if (ref == c).sum() >= 1000]
    return {"agreement": round(float((ref == got).mean()), 6), "min_class_iou": round(float(min(ious)), 4)}


def load_revision(rev: str) -> Any:
    """``m2fp_postprocess`` as the post-processing module was at git revision ``rev`` (imported from a temp file)."""
    import importlib.util
    import subprocess

    src = subprocess.run(["git", "show", f"{rev}:function/humanparse/engine/m2fp/postprocess.py"], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / f"postprocess_{rev}.py"
    path.write_text(src, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.m2fp_postprocess


def bench_size(parser: Any, rgb: np.ndarray, runs: int, baseline: Any = None) -> dict[str, Any]:
    from _common import summary
    from humanparse.engine.m2fp.postprocess import m2fp_postprocess
    from humanparse.engine.m2fp.predictor import preprocess
    from postprocess_v1 import m2fp_postprocess as full_planes

    x, (nh, nw) = preprocess(rgb)
    cls, masks = parser.forward(x)
    kw = dict(padded_hw=(int(x.shape[2]), int(x.shape[3])), image_hw=(nh, nw), out_hw=rgb.shape[:2],
              num_parsing=parser.cfg.num_parsing, ins_score_thr=parser.cfg.parsing_ins_score_thr)
    upscale = rgb.shape[0] * rgb.shape[1] >= 2 * nh * nw
    impls = {"current": m2fp_postprocess} if upscale else {"full_planes": full_planes, "current": m2fp_postprocess}
    if baseline is not None:
        impls = {"revision": baseline, **impls}
    times: dict[str, list[float]] = {k: [] for k in impls}
    maps: dict[str, np.ndarray] = {}
    for i in range(runs + 1):  # the first round is the warm-up
        for name, fn in impls.items():
            t = time.perf_counter()
            maps[name] = fn(cls, masks, **kw).label_map
            if i:
                times[name].append(time.perf_counter() - t)
    row: dict[str, Any] = {"photo": f"{rgb.shape[1]}x{rgb.shape[0]}", "working": f"{nw}x{nh}",
                           **{name: summary(ts) for name, ts in times.items()}}
    if upscale:
        t = time.perf_counter()
        ref = full_planes(cls, masks, **kw).label_map
        row["full_planes_once_s"] = round(time.perf_counter() - t, 2)
        row.update(agreement(ref, maps["current"]))
    else:
        ratios = [a / b for a, b in zip(times["full_planes"], times["current"], strict=True)]
        row["paired_speedup"] = round(statistics.median(ratios), 2)
        row["speedup_range"] = [round(min(ratios), 2), round(max(ratios), 2)]
        row["identical"] = bool(np.array_equal(maps["full_planes"], maps["current"]))
    if baseline is not None:
        ratios = [a / b for a, b in zip(times["revision"], times["current"], strict=True)]
        row["speedup_over_revision"] = round(statistics.median(ratios), 2)
        row["revision_range"] = [round(min(ratios), 2), round(max(ratios), 2)]
        row["identical_to_revision"] = bool(np.array_equal(maps["revision"], maps["current"]))
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--sizes", default="864x640,1024x768,4032x3024")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--baseline-rev", default=None,
                    help="also time the post-processing as it was at this git revision (interleaved)")
    args = ap.parse_args()
    from _common import model_folder
    from humanparse.engine.m2fp import build_m2fp
    from humanparse.pipeline.imageio import decode_image
    from humanparse.runtime import configure_threads
    from scale import make_photo

    configure_threads(args.threads)
    parser = build_m2fp(model_folder(args.model_dir), precision="fp32")
    baseline = load_revision(args.baseline_rev) if args.baseline_rev else None
    rows = []
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        with tempfile.TemporaryDirectory() as tmp:
            rgb = decode_image(make_photo(Path(tmp) / "p.jpg", (w, h)).read_bytes()).rgb
        rows.append(bench_size(parser, rgb, args.runs, baseline))
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"threads": args.threads, "rows": rows}))


if __name__ == "__main__":
    main()
