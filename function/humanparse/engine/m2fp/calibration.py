"""Calibration: the measurement behind ``precision=auto``. Parses photos of people in fp32 and in bf16 with the
same fast network and writes the verdict (``precision.VERDICT_FILE``) into the model folder, where
``precision.choose_precision`` reads it. Above ``predictor`` (it builds a parser); ``precision`` stays below it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from humanparse.engine import cpu
from humanparse.engine.m2fp.precision import BF16_MIN_AGREEMENT, VERDICT_FILE, weights_stamp
from humanparse.engine.m2fp.predictor import build_m2fp
from humanparse.exceptions import ModelError
from humanparse.models import packaged_photo

# CPU flags worth recording beside a verdict (what decides bf16's speed and arithmetic).
_RECORDED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8")


def calibrate(model_dir: str | Path, photos: Sequence[Path] | None = None) -> dict[str, Any]:
    """Parse ``photos`` (default: the package's public-domain photo) in fp32 and in bf16 with the same fast
    network, write the verdict to ``model_dir/humanparse-precision.json`` and return it.

    agreement: share of pixels (all photos together) whose CIHP id is the same in both label maps.
    """
    root = Path(model_dir)
    imgs = list(photos) if photos else [packaged_photo()]
    parser = build_m2fp(root, precision="fp32")
    same = total = 0
    inter: dict[int, int] = {}
    union: dict[int, int] = {}
    per_photo = []
    for path in imgs:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        parser.precision = "fp32"
        ref = parser.parse(rgb).label_map
        parser.precision = "bf16"
        got = parser.parse(rgb).label_map
        eq = int(np.count_nonzero(ref == got))
        same, total = same + eq, total + ref.size
        per_photo.append({"photo": path.name, "agreement": round(eq / ref.size, 6)})
        for c in range(parser.cfg.num_parsing):
            ma, mb = ref == c, got == c
            inter[c] = inter.get(c, 0) + int(np.count_nonzero(ma & mb))
            union[c] = union.get(c, 0) + int(np.count_nonzero(ma | mb))
    agreement = same / total
    verdict = {
        "agreement": round(agreement, 6),
        "bar": BF16_MIN_AGREEMENT,
        "bf16_allowed": agreement >= BF16_MIN_AGREEMENT,
        "per_class_iou": {str(c): round(inter[c] / union[c], 6) for c in sorted(union) if union[c]},
        "photos": per_photo,
        "cpu": {"model": cpu.cpu_model(), "flags": sorted(f for f in cpu.cpu_flags() if f in _RECORDED_FLAGS),
                "threads": torch.get_num_threads()},
        "torch": torch.__version__,
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "weights": weights_stamp(root),
    }
    tmp = root / (VERDICT_FILE + ".tmp")
    try:
        tmp.write_text(json.dumps(verdict, indent=2), encoding="utf-8")
        os.replace(tmp, root / VERDICT_FILE)
    except OSError as exc:
        raise ModelError(f"cannot write the calibration verdict into {root}: {exc.strerror or exc}") from exc
    return verdict
