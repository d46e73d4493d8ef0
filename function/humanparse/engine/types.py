"""Engine-level result types. Every array contract is stated where the field is declared."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ..labels import CIHP_LABELS


@dataclass(frozen=True)
class ModelInfo:
    kind: str  # "m2fp" or "lite"
    model_id: str  # hub id or folder name
    supported_labels: tuple[int, ...]  # CIHP ids this model can produce
    notes: str = ""
    precision: str = "fp32"  # arithmetic the network runs in: "fp32" | "bf16"
    precision_reason: str = "the only precision this model runs in"  # M2FP: calibration verdict and CPU


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

    @property
    def height(self) -> int:
        return int(self.label_map.shape[0])

    @property
    def width(self) -> int:
        return int(self.label_map.shape[1])

    def label_stats(self) -> list[dict[str, Any]]:
        counts = np.bincount(self.label_map.ravel(), minlength=len(CIHP_LABELS))
        total = float(self.label_map.size)
        return [
            {"id": i, "name": CIHP_LABELS[i], "pixels": int(c), "share": round(float(c) / total, 6)}
            for i, c in enumerate(counts[: len(CIHP_LABELS)]) if c > 0
        ]

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary: labels present with pixel share, persons with boxes and parts, timings."""
        return {
            "width": self.width,
            "height": self.height,
            "model": {"kind": self.model.kind, "id": self.model.model_id,
                      "supported_labels": [CIHP_LABELS[i] for i in self.model.supported_labels],
                      "notes": self.model.notes, "precision": self.model.precision,
                      "precision_reason": self.model.precision_reason},
            "labels": self.label_stats(),
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
    """What every engine (M2FP, lite) offers. ``rgb``: (H, W, 3) uint8 RGB."""

    info: ModelInfo

    def parse(self, rgb: npt.NDArray[np.uint8]) -> ParseResult: ...


def persons_from_masks(label_map: npt.NDArray[np.uint8], masks: list[npt.NDArray[np.bool_]],
                       scores: list[float], part_scores: dict[int, float] | None = None,
                       ) -> tuple[npt.NDArray[np.uint8], list[Person]]:
    """Assign every non-background pixel covered by a person mask to the best-scoring such person.

    masks: list of (H, W) bool, one per person candidate, any order; scores: same length.
    Returns person_map (H, W) uint8 and the persons that kept at least one pixel, ids 1..N by score.
    """
    h, w = label_map.shape
    person_map = np.zeros((h, w), dtype=np.uint8)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    fg = label_map > 0
    persons: list[Person] = []
    for idx in order[:255]:
        free = masks[idx] & fg & (person_map == 0)
        if not free.any():
            continue
        pid = len(persons) + 1
        person_map[free] = pid
        persons.append(Person(id=pid, score=float(scores[idx]), bbox=(0, 0, 0, 0), area=0))
    for p in persons:
        sel = person_map == p.id
        ys, xs = np.nonzero(sel)
        p.area = int(ys.size)
        p.bbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        counts = np.bincount(label_map[sel], minlength=len(CIHP_LABELS))
        for lab in np.nonzero(counts)[0]:
            if lab == 0:
                continue
            s = (part_scores or {}).get(int(lab), p.score)
            p.parts[int(lab)] = {"pixels": float(counts[lab]), "score": float(s)}
    return person_map, persons
