"""Engine-level result types. Every array contract is stated where the field is declared."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from humanparse.exceptions import ParseTimeout
from humanparse.pipeline.labels import CIHP_LABELS


@dataclass(frozen=True)
class ModelInfo:
    kind: str  # "m2fp" or "lite"
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
                      "precision_reason": self.model.precision_reason, "kernels": dict(self.model.kernels),
                      "kernels_reason": self.model.kernels_reason},
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
    """What every engine (M2FP, lite) offers. ``rgb``: (H, W, 3) uint8 RGB. ``deadline``: a ``time.monotonic()``
    instant; a parse still running then raises ``ParseTimeout`` at its next stage boundary."""

    @property
    def info(self) -> ModelInfo: ...  # read-only: a lazily loading wrapper (service.LazyParser) computes it

    def parse(self, rgb: npt.NDArray[np.uint8], *, deadline: float | None = None) -> ParseResult: ...


def check_deadline(deadline: float | None, stage: str) -> None:
    """Cooperative time budget: called between a parse's stages (a stage itself is never interrupted)."""
    if deadline is not None and time.monotonic() > deadline:
        raise ParseTimeout(f"the parse ran past its time budget (stopped after {stage})")


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
    return person_map, person_stats(label_map, person_map, persons, part_scores)


def persons_from_box_masks(label_map: npt.NDArray[np.uint8], boxes: list[tuple[int, int, int, int]],
                           masks: list[npt.NDArray[np.bool_]], scores: list[float],
                           part_scores: dict[int, float] | None = None) -> tuple[npt.NDArray[np.uint8], list[Person]]:
    """``persons_from_masks`` for masks given inside boxes: ``masks[i]`` is (y1-y0, x1-x0) bool at ``boxes[i]`` =
    (y0, y1, x0, x1) of ``label_map``; the same assignment, at the cost of the boxes."""
    person_map = np.zeros(label_map.shape, dtype=np.uint8)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    persons: list[Person] = []
    for idx in order[:255]:
        y0, y1, x0, x1 = boxes[idx]
        pm = person_map[y0:y1, x0:x1]
        free = masks[idx] & (label_map[y0:y1, x0:x1] > 0) & (pm == 0)
        if not free.any():
            continue
        persons.append(Person(id=len(persons) + 1, score=float(scores[idx]), bbox=(0, 0, 0, 0), area=0))
        pm[free] = persons[-1].id
    return person_map, person_stats(label_map, person_map, persons, part_scores)


def person_stats(label_map: npt.NDArray[np.uint8], person_map: npt.NDArray[np.uint8], persons: list[Person],
                 part_scores: dict[int, float] | None = None) -> list[Person]:
    """Fill each person's area, bbox and parts from the maps (one bincount over the image); persons left
    without pixels are dropped and the rest renumbered 1..N in order (``person_map`` is rewritten to match)."""
    n = len(CIHP_LABELS)
    joint = np.bincount((person_map.astype(np.int32) * n + label_map).ravel(), minlength=(len(persons) + 1) * n)
    joint = joint.reshape(-1, n)
    kept: list[Person] = []
    remap = np.zeros(256, dtype=np.uint8)
    for p in persons:
        counts = joint[p.id]
        if counts.sum() == 0:
            continue
        remap[p.id] = len(kept) + 1
        p.area = int(counts.sum())
        p.parts = {int(lab): {"pixels": float(counts[lab]), "score": float((part_scores or {}).get(int(lab), p.score))}
                   for lab in np.nonzero(counts)[0] if lab != 0}
        kept.append(p)
    if len(kept) != len(persons):
        person_map[...] = remap[person_map]
    for i, p in enumerate(kept, start=1):
        p.id = i
        rows = np.flatnonzero((person_map == i).any(axis=1))
        y0, y1 = int(rows[0]), int(rows[-1]) + 1
        cols = np.flatnonzero((person_map[y0:y1] == i).any(axis=0))
        p.bbox = (int(cols[0]), y0, int(cols[-1]) + 1, y1)
    return kept


def upscale_persons(label_map: npt.NDArray[np.uint8], work_person_map: npt.NDArray[np.uint8], persons: list[Person],
                    part_scores: dict[int, float] | None = None) -> tuple[npt.NDArray[np.uint8], list[Person]]:
    """The person map decided at the working size, brought to ``label_map``'s (photo) size once: nearest-neighbour,
    cleared where the label is background; person statistics recomputed at the photo size."""
    import cv2

    h, w = label_map.shape
    if work_person_map.shape == (h, w):
        return work_person_map, persons
    pm = np.asarray(cv2.resize(work_person_map, (w, h), interpolation=cv2.INTER_NEAREST), dtype=np.uint8)
    pm[label_map == 0] = 0
    return pm, person_stats(label_map, pm, persons, part_scores)
