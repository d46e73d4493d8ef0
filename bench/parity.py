"""Parity of our M2FP path with ModelScope's own model class and pipeline post-processing.

    python bench/parity.py [--model-dir DIR] [--images IMG ...]

Same weights (a random-weight M2FP folder in ModelScope's layout unless --model-dir is given; trained weights
cannot be fetched here), same images. Two comparisons:
- same-torch: ModelScope and our code in one process of the reference venv (torch 2.14.1) → the difference
  is our implementation's alone (``max_abs_diff``, ``mask_agreement``);
- cross-runtime: ModelScope's label map against our parser in the project's own runtime (torch 2.13 CPU),
  which is what users run (``runtime_mask_agreement``).
Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "function"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--images", nargs="*", type=Path, default=None)
    ap.add_argument("--venv", type=Path, default=ROOT / ".cache" / "parity-venv")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    from _common import prepare
    from humanparse.engine.m2fp import build_m2fp
    from humanparse.pipeline.imageio import decode_image

    model_dir = prepare(args.venv, args.model_dir)
    images = args.images or sorted((ROOT.parent / "shared" / "data" / "cihp" / "images").glob("*.jpg"))
    if not images:
        print("no images: pass --images", file=sys.stderr)
        return 2
    parser = build_m2fp(model_dir, fast=False)
    fast_parser = build_m2fp(model_dir, fast=True, precision="fp32")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for img in images:
            out = Path(tmp) / (img.stem + ".npz")
            subprocess.run([str(args.venv / "bin" / "python"), str(ROOT / "bench" / "_modelscope_ref.py"),
                            str(model_dir), str(img), str(out), str(args.threads), "1"], check=True,
                           stderr=subprocess.DEVNULL)
            r = np.load(out)
            ours_rt = parser.parse(decode_image(open(str(img), "rb").read()).rgb)
            row = {
                "image": img.name,
                "class_logit_max_abs_diff": float(np.abs(r["logits"] - r["our_logits"]).max()),
                "mask_logit_max_abs_diff": float(np.abs(r["masks"] - r["our_masks"]).max()),
                "mask_agreement": float((r["label_map"] == r["our_label_map"]).mean()),
                "runtime_mask_agreement": float((r["label_map"] == ours_rt.label_map).mean()),
                "fast_path_mask_agreement": float((r["label_map"] == fast_parser.parse(decode_image(open(str(img), "rb").read()).rgb).label_map).mean()),
                "labels_present": sorted(int(v) for v in np.unique(r["label_map"])),
            }
            rows.append(row)
            print(json.dumps(row))
    result = {
        "max_abs_diff": max(max(r["class_logit_max_abs_diff"], r["mask_logit_max_abs_diff"]) for r in rows),
        "mask_agreement": min(r["mask_agreement"] for r in rows),
        "runtime_mask_agreement": min(r["runtime_mask_agreement"] for r in rows),
        "fast_path_mask_agreement": min(r["fast_path_mask_agreement"] for r in rows),
        "images": len(rows),
        "model_dir": str(model_dir),
    }
    print(json.dumps(result))
    return 0 if result["max_abs_diff"] <= 1e-4 and result["mask_agreement"] >= 0.999 else 1


if __name__ == "__main__":
    raise SystemExit(main())
