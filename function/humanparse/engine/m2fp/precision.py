"""Which arithmetic M2FP runs in, chosen only on evidence.

bf16 is 1.6-1.9x faster than fp32 on AMX CPUs (16-core AMX Xeon: 0.66 vs 1.07 s at 16 threads, 2.27 vs 4.23 s at 2),
but its label agreement with fp32 depends on the weights (0.76-0.89 on the random-weight model). So ``auto`` picks
bf16 only where a calibration of *this* model folder (``calibrate``: both precisions on photos of people that ship
with the package) wrote a verdict of at least ``BF16_MIN_AGREEMENT`` pixel agreement, and the CPU has AMX.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...exceptions import ModelError
from .fast import cpu_flags

VERDICT_FILE = "humanparse-precision.json"
BF16_MIN_AGREEMENT = 0.995
WEIGHTS_FILE = "pytorch_model.pt"
# CPU flags worth recording beside a verdict (what decides bf16's speed and arithmetic).
_RECORDED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8")


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str  # "fp32" | "bf16"
    reason: str  # one plain sentence: why this precision runs


def cpu_model(path: str = "/proc/cpuinfo") -> str:
    """This CPU's name, from what its platform offers (``engine.cpu``: arm64 core designs, macOS's sysctl)."""
    from ..cpu import cpu_model as model

    return model(path)


def bf16_can_win(machine: str | None = None) -> bool:
    """Whether calibrating is worth it here. x86-64: always — the verdict travels with the folder (and the
    image), and AMX CPUs, where ``auto`` then runs bf16, are among those that run it (Lambda's fleet), even when
    this one is not. arm64: only with BF16 in hardware (Graviton3/4, Apple M2+), where the verdict tells whether
    ``precision=bf16`` is safe; not on Lambda's arm64 (Neoverse-N1), Apple M1 or a Raspberry Pi."""
    from ..cpu import bf16_native

    arch = (machine or platform.machine()).lower()
    return arch in ("x86_64", "amd64") or bf16_native(cpu_flags(), arch)


def host_has_amx() -> bool:
    """The one hardware boundary of the choice (tests stub it)."""
    return "amx_bf16" in cpu_flags()


def _weights_stamp(model_dir: Path) -> dict[str, Any]:
    """Size and mtime of the checkpoint: a verdict is for the weights it was measured on (hashing 250 MB at
    every start would cost ~0.5 s)."""
    st = (model_dir / WEIGHTS_FILE).stat()
    return {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def read_verdict(model_dir: str | Path) -> dict[str, Any] | None:
    """The folder's verdict if it exists, parses, and was measured on the checkpoint now in the folder."""
    root = Path(model_dir)
    try:
        doc = json.loads((root / VERDICT_FILE).read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or doc.get("weights") != _weights_stamp(root):
            return None
        float(doc["agreement"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return doc


def choose_precision(requested: str, model_dir: str | Path) -> PrecisionChoice:
    """``fp32``/``bf16``: as asked. ``auto``: bf16 only with a passing verdict for this folder AND an AMX CPU."""
    if requested in ("fp32", "bf16"):
        return PrecisionChoice(requested, f"{requested} was requested")
    if requested != "auto":
        raise ModelError(f"unknown precision {requested!r} (auto, fp32 or bf16)")
    verdict = read_verdict(model_dir)
    if verdict is None:
        return PrecisionChoice("fp32", f"no calibration verdict for these weights in {model_dir}; "
                                       "bf16 is used only after calibration")
    agreement = float(verdict["agreement"])
    if agreement < BF16_MIN_AGREEMENT:
        return PrecisionChoice("fp32", f"calibration: bf16 agreed with fp32 on {agreement:.2%} of pixels, "
                                       f"below the {BF16_MIN_AGREEMENT:.1%} bar")
    if not host_has_amx():
        return PrecisionChoice("fp32", f"calibration passed ({agreement:.2%} agreement) but this CPU has no AMX")
    return PrecisionChoice("bf16", f"calibration passed ({agreement:.2%} agreement with fp32) and the CPU has AMX")


def calibrate(model_dir: str | Path, photos: Sequence[Path] | None = None) -> dict[str, Any]:
    """Parse ``photos`` (default: the package's public-domain photo) in fp32 and in bf16 with the same fast
    network, write the verdict to ``model_dir/humanparse-precision.json`` and return it.

    agreement: share of pixels (all photos together) whose CIHP id is the same in both label maps.
    """
    import torch
    from PIL import Image

    from ...models import packaged_photo
    from .predictor import build_m2fp

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
        "cpu": {"model": cpu_model(), "flags": sorted(f for f in cpu_flags() if f in _RECORDED_FLAGS),
                "threads": torch.get_num_threads()},
        "torch": torch.__version__,
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "weights": _weights_stamp(root),
    }
    tmp = root / (VERDICT_FILE + ".tmp")
    try:
        tmp.write_text(json.dumps(verdict, indent=2), encoding="utf-8")
        os.replace(tmp, root / VERDICT_FILE)
    except OSError as exc:
        raise ModelError(f"cannot write the calibration verdict into {root}: {exc.strerror or exc}") from exc
    return verdict
