"""Which arithmetic M2FP runs in, chosen only on evidence.

bf16 is 1.6-1.9x faster than fp32 on AMX CPUs (16-core AMX Xeon: 0.66 vs 1.07 s at 16 threads, 2.27 vs 4.23 s at 2),
but its label agreement with fp32 depends on the weights (0.76-0.89 on the random-weight model). So ``auto`` picks
bf16 only where a calibration of *this* model folder (``calibrate``: both precisions on photos of people that ship
with the package) wrote a verdict of at least ``BF16_MIN_AGREEMENT`` pixel agreement, and the CPU has AMX.

This module is the verdict's file format and the choice: no torch, below ``predictor`` (which asks it); the
measurement that writes the verdict is ``calibration.calibrate``, above ``predictor`` (which it runs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from humanparse.engine import cpu
from humanparse.exceptions import ModelError

VERDICT_FILE = "humanparse-precision.json"
BF16_MIN_AGREEMENT = 0.995
WEIGHTS_FILE = "pytorch_model.pt"


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str  # "fp32" | "bf16"
    reason: str  # one plain sentence: why this precision runs


def weights_stamp(model_dir: Path) -> dict[str, Any]:
    """Size and mtime of the checkpoint: a verdict is for the weights it was measured on (hashing 250 MB at
    every start would cost ~0.5 s)."""
    st = (model_dir / WEIGHTS_FILE).stat()
    return {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def read_verdict(model_dir: str | Path) -> dict[str, Any] | None:
    """The folder's verdict if it exists, parses, and was measured on the checkpoint now in the folder."""
    root = Path(model_dir)
    try:
        doc = json.loads((root / VERDICT_FILE).read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or doc.get("weights") != weights_stamp(root):
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
    if not cpu.host_has_amx():
        return PrecisionChoice("fp32", f"calibration passed ({agreement:.2%} agreement) but this CPU has no AMX")
    return PrecisionChoice("bf16", f"calibration passed ({agreement:.2%} agreement with fp32) and the CPU has AMX")
