"""What the try-on outputs add to a parse, as a ratio to the parse alone (Python API, decoded pixels in).

- lite: the parse, then on its result (a) for person 1 the ``upper_body`` mask and agnostic image, the keypoints
  JSON (the lite parse decodes poses anyway), the outfit and the ATR map ("one"); (b) all four categories for
  every person, keypoints, outfit, ATR and LIP maps ("all").
- M2FP (random weights in ModelScope's layout unless --model-dir: the same network, so the same time): the parse,
  then the keypoints, i.e. the lite tier's pose network (BodyPix, one run) beside it and the matching.

Each round times the parse and then the extra work on that very result, back to back, and the ratio
(parse + extra) / parse is taken per round: on a shared machine an M2FP parse wanders by more than the pose
network costs, and a ratio of two neighbouring measurements cancels most of that. Prints medians with p25–p75 of
the times and of the per-round ratios; last line: JSON.

    python bench/tryon.py [--rounds 11] [--m2fp-rounds 5] [--image PATH] [--model-dir DIR] [--skip-m2fp]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import model_folder, summary  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "function"))
CATEGORIES = ("upper_body", "lower_body", "dresses", "full_body")


def rounds(parse: Callable[[], Any], extras: dict[str, Callable[[Any], Any]], n: int) -> dict[str, Any]:
    """n rounds of: parse, then each extra on a fresh copy of the result's caches. Returns times and ratios."""
    times: dict[str, list[float]] = {"parse": [], **{k: [] for k in extras}}
    ratios: dict[str, list[float]] = {k: [] for k in extras}
    for _ in range(n):
        t = time.perf_counter()
        res = parse()
        p = time.perf_counter() - t
        times["parse"].append(p)
        for name, extra in extras.items():
            res._keypoints = None  # each extra pays for the keypoints itself
            t = time.perf_counter()
            extra(res)
            e = time.perf_counter() - t
            times[name].append(e)
            ratios[name].append((p + e) / p)
    return {"times": {k: summary(v) for k, v in times.items()},
            "ratios": {k: {"median": round(statistics.median(v), 4),
                           "p25": round(statistics.quantiles(v, n=4)[0], 4),
                           "p75": round(statistics.quantiles(v, n=4)[2], 4)} for k, v in ratios.items()}}


def report(title: str, out: dict[str, Any]) -> None:
    print(title)
    for k, s in out["times"].items():
        r = out["ratios"].get(k)
        ratio = f"  ratio to the parse x{r['median']:.3f} [{r['p25']:.3f}–{r['p75']:.3f}]" if r else ""
        print(f"  {k:28s} {s['median_ms']:8.1f} ms [{s['p25_ms']}–{s['p75_ms']}]{ratio}  (n={s['n']})")


def one(res: Any) -> None:
    res.tryon("upper_body", 1)
    json.dumps(res.keypoints)
    _ = res.outfit, res.labels_as("atr")


def every(res: Any) -> None:
    for k in range(1, len(res.people) + 1):
        for c in CATEGORIES:
            res.tryon(c, k)
    json.dumps(res.keypoints)
    _ = res.outfit, res.labels_as("atr"), res.labels_as("lip")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--m2fp-rounds", type=int, default=5)
    ap.add_argument("--image", default=str(ROOT.parent / "shared" / "data" / "cihp" / "images" / "0012008.jpg"))
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--skip-m2fp", action="store_true")
    args = ap.parse_args()
    import humanparse
    from PIL import Image

    rgb = np.asarray(Image.open(args.image).convert("RGB"))
    print(f"image {Path(args.image).name} {rgb.shape[1]}x{rgb.shape[0]}")
    lite = humanparse.load("lite")
    every(lite(rgb))  # warm-up: sessions, first-call allocations
    result = {"lite": rounds(lambda: lite(rgb), {"+tryon(one person)": one, "+tryon(all)": every}, args.rounds)}
    report("lite", result["lite"])
    if not args.skip_m2fp:
        m2fp = humanparse.load("m2fp", model_dir=model_folder(args.model_dir), precision="fp32")
        json.dumps(m2fp(rgb).keypoints)  # warm-up; loads BodyPix once, as a deployment's first request would
        result["m2fp"] = rounds(lambda: m2fp(rgb), {"+keypoints (pose network)": lambda r: json.dumps(r.keypoints)},
                                args.m2fp_rounds)
        report("m2fp", result["m2fp"])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
