"""What the try-on outputs add to a parse, as a ratio to the parse alone (Python API, decoded pixels in).

- lite: the parse alone, against the parse plus, for person 1, the ``upper_body`` mask and agnostic image, the
  keypoints JSON (the lite parse decodes poses anyway), the outfit and the ATR map ("one"); and plus all four
  categories for every person ("all").
- M2FP (random weights in ModelScope's layout unless --model-dir: the same network, so the same time): the parse
  alone, against the parse plus the keypoints, i.e. the lite tier's pose network (BodyPix, one run) beside it.

Kinds are interleaved round by round (the order flips every round) so that a slower spell of a shared machine
hits all of them alike. Prints median and p25–p75 per kind and the ratios of medians; last line: JSON.

    python bench/tryon.py [--rounds 9] [--m2fp-rounds 5] [--image PATH] [--model-dir DIR] [--skip-m2fp]
"""

from __future__ import annotations

import argparse
import json
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


def interleaved(kinds: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in kinds}
    names = list(kinds)
    for i in range(rounds):
        for name in names if i % 2 == 0 else names[::-1]:
            t = time.perf_counter()
            kinds[name]()
            times[name].append(time.perf_counter() - t)
    return times


def report(title: str, times: dict[str, list[float]], base: str) -> dict[str, Any]:
    out = {k: summary(v) for k, v in times.items()}
    print(title)
    for k, s in out.items():
        ratio = s["median_ms"] / out[base]["median_ms"]
        print(f"  {k:22s} {s['median_ms']:8.1f} ms [{s['p25_ms']}–{s['p75_ms']}]  x{ratio:.3f}  (n={s['n']})")
    return out


def lite_kinds(rgb: np.ndarray) -> dict[str, Callable[[], Any]]:
    import humanparse

    parser = humanparse.load("lite")
    parser(rgb)  # warm-up: sessions, first-call allocations

    def one() -> None:
        res = parser(rgb)
        res.tryon("upper_body", 1)
        json.dumps(res.keypoints)
        _ = res.outfit, res.labels_as("atr")

    def every() -> None:
        res = parser(rgb)
        for k in range(1, len(res.people) + 1):
            for c in CATEGORIES:
                res.tryon(c, k)
        json.dumps(res.keypoints)
        _ = res.outfit, res.labels_as("atr"), res.labels_as("lip")

    return {"parse": lambda: parser(rgb), "parse+tryon(one)": one, "parse+tryon(all)": every}


def m2fp_kinds(rgb: np.ndarray, model_dir: Path | None) -> dict[str, Callable[[], Any]]:
    import humanparse

    parser = humanparse.load("m2fp", model_dir=model_folder(model_dir), precision="fp32")
    parser(rgb)
    parser.estimate_poses(rgb)  # warm-up: loads BodyPix once, as a deployment would at its first request

    def with_pose() -> None:
        json.dumps(parser(rgb).keypoints)

    return {"parse": lambda: parser(rgb), "parse+keypoints": with_pose,
            "pose network alone": lambda: parser.estimate_poses(rgb)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--m2fp-rounds", type=int, default=5)
    ap.add_argument("--image", default=str(ROOT.parent / "shared" / "data" / "cihp" / "images" / "0012008.jpg"))
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--skip-m2fp", action="store_true")
    args = ap.parse_args()
    from PIL import Image

    rgb = np.asarray(Image.open(args.image).convert("RGB"))
    print(f"image {Path(args.image).name} {rgb.shape[1]}x{rgb.shape[0]}")
    result = {"lite": report("lite", interleaved(lite_kinds(rgb), args.rounds), "parse")}
    if not args.skip_m2fp:
        m2fp = report("m2fp", interleaved(m2fp_kinds(rgb, args.model_dir), args.m2fp_rounds), "parse")
        # an M2FP parse on a shared CPU wanders by more than the pose network costs: the two medians' quotient
        # says the added share better than the difference of two wide spreads
        added = m2fp["pose network alone"]["median_ms"] / m2fp["parse"]["median_ms"]
        print(f"  pose network beside M2FP: x{1 + added:.3f} (pose network median / parse median)")
        result["m2fp"] = {**m2fp, "pose_ratio": round(1 + added, 4)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
