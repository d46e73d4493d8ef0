"""Persons from masks: which person owns each pixel, and each person's parts. Shared by the M2FP and lite
engines; ``types.py`` holds only the result types these fill."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from humanparse.engine.types import Person
from humanparse.pipeline.labels import CIHP_LABELS


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
    joint = _joint_counts(label_map, person_map, max([len(persons)] + [p.id for p in persons]), n)
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


def _joint_counts(label_map: npt.NDArray[np.uint8], person_map: npt.NDArray[np.uint8], n_persons: int,
                  n: int) -> npt.NDArray[np.int64]:
    """(n_persons + 1, n) int64 (or more rows): pixels of each (person id, label id) pair. While person * n + label fits a byte,
    one uint8 map and Pillow's histogram (12 MP: ~0.04 s where numpy's int32 map and bincount took ~0.2 s)."""
    if (n_persons + 1) * n > 256 or int(person_map.max(initial=0)) > n_persons or int(label_map.max(initial=0)) >= n:
        joint = np.bincount((person_map.astype(np.int32) * n + label_map).ravel(), minlength=(n_persons + 1) * n)
        return joint.reshape(-1, n)
    from PIL import Image

    ids = np.ascontiguousarray(np.multiply(person_map, n, dtype=np.uint8) + label_map, dtype=np.uint8)
    counts = Image.frombuffer("L", (ids.shape[1], ids.shape[0]), ids, "raw", "L", 0, 1).histogram()
    return np.array(counts[: (n_persons + 1) * n], dtype=np.int64).reshape(-1, n)


def upscale_persons(label_map: npt.NDArray[np.uint8], work_person_map: npt.NDArray[np.uint8], persons: list[Person],
                    part_scores: dict[int, float] | None = None) -> tuple[npt.NDArray[np.uint8], list[Person]]:
    """The person map decided at the working size, brought to ``label_map``'s (photo) size once: nearest-neighbour,
    cleared where the label is background; person statistics recomputed at the photo size."""
    import cv2

    h, w = label_map.shape
    if work_person_map.shape == (h, w):
        return work_person_map, persons
    pm = np.asarray(cv2.resize(work_person_map, (w, h), interpolation=cv2.INTER_NEAREST), dtype=np.uint8)
    np.multiply(pm, label_map != 0, out=pm)  # cleared on the background (a product: boolean assignment was 2x)
    return pm, person_stats(label_map, pm, persons, part_scores)
