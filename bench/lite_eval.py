"""Accuracy and speed of the lite tier on labelled CIHP images.

    python bench/lite_eval.py --data ../shared/data/cihp [--models ../shared/models]

Ground truth is folded onto what the lite tier can produce (documented in FOLD below): Hat→Hair,
Sunglasses→Face, Dress/Coat/Scarf→UpperClothes, Skirt→Pants; Glove and Socks are ignored (their side is
unknowable). ``miou``: mean IoU over the 12 supported classes present in GT or prediction, accumulated over the
data set. ``coarse_miou``: 6 classes (background, head, torso, arms, legs, feet). Baseline in the same run:
raw BodyPix parts alone (one run, person logit > 0) folded to the coarse classes. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "function"))

from humanparse.engine.lite import SUPPORTED, LiteParser, _grid_to_image, find_lite_models  # noqa: E402
from humanparse.pipeline.labels import CIHP_LABELS  # noqa: E402

IGNORE = 255
FOLD = np.arange(256, dtype=np.uint8)
FOLD[[1, 4, 6, 7, 11, 12, 3, 8]] = [2, 13, 5, 5, 5, 9, IGNORE, IGNORE]
COARSE = np.full(256, IGNORE, dtype=np.uint8)
for ids, c in (((0,), 0), ((1, 2, 4, 13), 1), ((5, 6, 7, 10, 11), 2), ((3, 14, 15), 3),
               ((8, 9, 12, 16, 17), 4), ((18, 19), 5)):
    COARSE[list(ids)] = c
COARSE_NAMES = ["background", "head", "torso", "arms", "legs", "feet"]


def confusion(gt: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    keep = gt != IGNORE
    return np.bincount(gt[keep].astype(np.int64) * n + pred[keep], minlength=n * n).reshape(n, n)


def ious(conf: np.ndarray, classes: list[int]) -> dict[int, float]:
    out = {}
    for c in classes:
        tp = conf[c, c]
        union = conf[c, :].sum() + conf[:, c].sum() - tp
        if union > 0:
            out[c] = float(tp / union)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "cihp")
    ap.add_argument("--models", type=Path, default=ROOT.parent / "shared" / "models")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per image (median reported)")
    args = ap.parse_args()
    parser = LiteParser(*find_lite_models([args.models]), threads=args.threads)
    conf = np.zeros((20, 20), dtype=np.int64)
    conf_c = np.zeros((6, 6), dtype=np.int64)
    conf_bp = np.zeros((6, 6), dtype=np.int64)
    times = []
    images = sorted((args.data / "images").glob("*.jpg"))
    for img_path in images:
        rgb = np.asarray(Image.open(img_path).convert("RGB"))
        gt = np.asarray(Image.open(args.data / "labels" / (img_path.stem + ".png")))
        parser.parse(rgb)  # warm-up
        per = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            res = parser.parse(rgb)
            per.append(time.perf_counter() - t)
        times.append(statistics.median(per))
        conf += confusion(FOLD[gt], res.label_map, 20)
        conf_c += confusion(COARSE[gt], COARSE[res.label_map], 6)
        # baseline: one BodyPix run's parts alone → coarse classes (carried to the image at the right offsets)
        bp, scale = parser._run_bodypix(rgb)
        hw = (rgb.shape[0], rgb.shape[1])
        seg = _grid_to_image(bp["segments"], hw, scale)[..., 0]
        parts = _grid_to_image(bp["part_heatmaps"], hw, scale).argmax(-1)
        bp_coarse = np.array([1, 1, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5], np.uint8)[parts]
        bp_coarse[seg <= 0] = 0
        conf_bp += confusion(COARSE[gt], bp_coarse, 6)
    fine = ious(conf, list(SUPPORTED))
    coarse = ious(conf_c, list(range(6)))
    base = ious(conf_bp, list(range(6)))
    print("class            IoU")
    for c, v in fine.items():
        print(f"{CIHP_LABELS[c]:<16} {v:.3f}")
    print("coarse           IoU   (BodyPix alone)")
    for c, v in coarse.items():
        print(f"{COARSE_NAMES[c]:<16} {v:.3f} ({base.get(c, 0.0):.3f})")
    result = {"miou": round(float(np.mean(list(fine.values()))), 4),
              "coarse_miou": round(float(np.mean(list(coarse.values()))), 4),
              "bodypix_coarse_miou": round(float(np.mean(list(base.values()))), 4),
              "ms_per_image": round(1000 * statistics.mean(times), 1), "images": len(images)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
