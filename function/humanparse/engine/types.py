"""Engine-level result types. Every array contract is stated where the field is declared."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from humanparse.exceptions import ParseTimeout
from humanparse.pipeline.labels import CIHP_LABELS, id_counts


@dataclass(frozen=True)
class ModelInfo:
    kind: str  # a model kind's name (engine/registry.py): "m2fp", "lite", ...
    model_id: str  # hub id or folder name
    supported_labels: tuple[int, ...]  # CIHP ids this model can produce
    notes: str = ""
    precision: str = "fp32"  # arithmetic the network runs in: "fp32" | "bf16"
    precision_reason: str = "the only precision this model runs in"  # M2FP: calibration verdict and CPU
    # M2FP: formulation that runs per group of layers (engine/m2fp/autotune.py), and why (measured, cached, forced)
    kernels: dict[str, str] = field(default_factory=dict)
    kernels_reason: str = ""


@dataclass
class Person:
    id: int  # 1-based, matches values in ParseResult.person_map
    score: float  # 0..1
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), input-image pixels
    area: int  # pixels assigned to this person in person_map
    parts: dict[int, dict[str, float]] = field(default_factory=dict)  # label id -> {"pixels", "score"}


@dataclass
class ParseResult:
    label_map: npt.NDArray[np.uint8]  # (H, W) uint8, CIHP ids 0..19, input resolution
    person_map: npt.NDArray[np.uint8]  # (H, W) uint8, 0 = no person, k = persons[k-1]
    persons: list[Person]
    model: ModelInfo
    timings: dict[str, float] = field(default_factory=dict)  # seconds
    # body poses seen in the photo, any order, not yet matched to persons (keypoints.match_poses does): each
    # (17, 3) float32 x, y, score, COCO-17 in PoseNet order, photo pixels (engine/pose.py); the lite tier fills
    # it, M2FP has no pose head (engine.pose.PoseNetwork runs beside it on request)
    poses: list[npt.NDArray[np.float32]] = field(default_factory=list)

    @property
    def height(self) -> int:
        return int(self.label_map.shape[0])

    @property
    def width(self) -> int:
        return int(self.label_map.shape[1])

    def label_stats(self, counts: list[int] | None = None) -> list[dict[str, Any]]:
        """Labels present with pixels and share. ``counts``: ``id_counts(label_map)`` where the caller has it
        (Pillow's histogram: ``np.bincount`` took 2.2x as long on a 12 MP map, 76 against 34 ms)."""
        counts = id_counts(self.label_map) if counts is None else counts
        total = float(self.label_map.size)
        return [
            {"id": i, "name": CIHP_LABELS[i], "pixels": int(c), "share": round(float(c) / total, 6)}
            for i, c in enumerate(counts[: len(CIHP_LABELS)]) if c > 0
        ]

    def summary(self, counts: list[int] | None = None) -> dict[str, Any]:
        """JSON-ready summary: labels present with pixel share, persons with boxes and parts, timings. ``counts``:
        as ``label_stats``."""
        return {
            "width": self.width,
            "height": self.height,
            "model": {"kind": self.model.kind, "id": self.model.model_id,
                      "supported_labels": [CIHP_LABELS[i] for i in self.model.supported_labels],
                      "notes": self.model.notes, "precision": self.model.precision,
                      "precision_reason": self.model.precision_reason, "kernels": dict(self.model.kernels),
                      "kernels_reason": self.model.kernels_reason},
            "labels": self.label_stats(counts),
            "person_count": len(self.persons),
            "persons": [
                {"id": p.id, "score": round(p.score, 4), "bbox": list(p.bbox), "area": p.area,
                 "parts": [{"id": k, "name": CIHP_LABELS[k], "pixels": int(v["pixels"]),
                            "score": round(float(v["score"]), 4)} for k, v in sorted(p.parts.items())]}
                for p in self.persons
            ],
            "timings_ms": {k: round(v * 1000.0, 1) for k, v in self.timings.items()},
        }


class Parser(Protocol):
    """What every engine (M2FP, lite) offers. ``rgb``: (H, W, 3) uint8 RGB. ``deadline``: a ``time.monotonic()``
    instant; a parse still running then raises ``ParseTimeout`` at its next stage boundary."""

    @property
    def info(self) -> ModelInfo: ...  # read-only: a lazily loading wrapper (service.LazyParser) computes it

    def parse(self, rgb: npt.NDArray[np.uint8], *, deadline: float | None = None) -> ParseResult: ...


def check_deadline(deadline: float | None, stage: str) -> None:
    """Cooperative time budget: called between a parse's stages (a stage itself is never interrupted)."""
    if deadline is not None and time.monotonic() > deadline:
        raise ParseTimeout(f"the parse ran past its time budget (stopped after {stage})")
