"""The label sets try-on pipelines read — CIHP (ours), LIP (20 ids) and ATR (18 ids) — and the maps between them.

CIHP and LIP share 19 of their 20 ids: only id 10 differs (CIHP Torso-skin, LIP Jumpsuits). ATR (the 18-class
set that OOTDiffusion's and CatVTON's parsers emit) has no Glove, Coat, Socks or Torso-skin, and adds Belt and
Bag. What a CIHP part with no twin becomes (``docs/tryon.md`` explains each choice):

- LIP: Torso-skin → Background (LIP has no class for bare torso skin; its id 10 is a garment).
- ATR: Coat → Upper-clothes (what ATR parsers call any top); Glove → the Left-/Right-arm it sits on (ATR's arms
  include the hands); Socks → the Left-/Right-leg it sits on (ATR's legs run down to the shoes); Torso-skin →
  Background. "Sits on" is decided per pixel: the side of the nearest pixel of that person's arm (leg); with
  no arm (leg) in the image, Left-.

The reverse maps (``LIP_TO_CIHP``, ``ATR_TO_CIHP``) read another parser's output in CIHP ids: LIP Jumpsuits →
Dress (the one-piece CIHP garment), ATR Belt → Pants, ATR Bag → Background (CIHP annotates bags as background).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from humanparse.exceptions import UnknownLabelSet
from humanparse.pipeline.labels import CIHP_LABELS

LabelSet = Literal["cihp", "lip", "atr"]

LIP_LABELS: tuple[str, ...] = CIHP_LABELS[:10] + ("Jumpsuits",) + CIHP_LABELS[11:]
ATR_LABELS: tuple[str, ...] = (
    "Background", "Hat", "Hair", "Sunglasses", "Upper-clothes", "Skirt", "Pants", "Dress", "Belt", "Left-shoe",
    "Right-shoe", "Face", "Left-leg", "Right-leg", "Left-arm", "Right-arm", "Bag", "Scarf",
)
LABEL_SETS: dict[str, tuple[str, ...]] = {"cihp": CIHP_LABELS, "lip": LIP_LABELS, "atr": ATR_LABELS}

# CIHP ids that need the image to decide (a side): id → (left id, right id, CIHP ids whose side decides)
_GLOVE, _SOCKS = 3, 8
ATR_SIDED: dict[int, tuple[int, int, tuple[int, int]]] = {_GLOVE: (14, 15, (14, 15)), _SOCKS: (12, 13, (16, 17))}

# CIHP id → LIP id (index = CIHP id)
CIHP_TO_LIP: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 11, 12, 13, 14, 15, 16, 17, 18, 19)
# CIHP id → ATR id; Glove and Socks carry their left-side id here and are resolved per pixel (ATR_SIDED)
CIHP_TO_ATR: tuple[int, ...] = (0, 1, 2, 14, 3, 4, 7, 4, 12, 6, 0, 17, 5, 11, 14, 15, 12, 13, 9, 10)
LIP_TO_CIHP: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 6, 11, 12, 13, 14, 15, 16, 17, 18, 19)
ATR_TO_CIHP: tuple[int, ...] = (0, 1, 2, 4, 5, 12, 9, 6, 9, 18, 19, 13, 16, 17, 14, 15, 0, 11)


def _lut(table: tuple[int, ...]) -> npt.NDArray[np.uint8]:
    lut = np.zeros(256, dtype=np.uint8)
    lut[: len(table)] = table
    return lut


def _apply(table: tuple[int, ...], label_map: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """``table`` looked up at every pixel of (H, W) uint8 ``label_map``, a new array: ``cv2.LUT`` (numpy's gather
    ``lut[label_map]`` took several times as long at 12 MP)."""
    import cv2

    return np.asarray(cv2.LUT(np.ascontiguousarray(label_map, dtype=np.uint8), _lut(table)), dtype=np.uint8)


def check_label_set(name: str) -> LabelSet:
    """``name`` (any case) if it is a label set we write; ``UnknownLabelSet`` naming the valid ones otherwise."""
    key = str(name).lower()
    if key not in LABEL_SETS:
        raise UnknownLabelSet(f"unknown label set {name!r}; choose one of {', '.join(LABEL_SETS)}")
    return key  # type: ignore[return-value]


def convert(label_map: npt.NDArray[np.uint8], to: str,
            person_map: npt.NDArray[np.uint8] | None = None) -> npt.NDArray[np.uint8]:
    """CIHP ids → ``to``'s ids. label_map: (H, W) uint8 CIHP ids 0..19; person_map: (H, W) uint8 person ids (0 =
    none), optional: with it a glove or sock takes the side of its own person's nearest arm or leg. Returns a new
    (H, W) uint8 map in ``to``'s ids (``LABEL_SETS[to]`` names them)."""
    target = check_label_set(to)
    if target == "cihp":
        return label_map.copy()
    if target == "lip":
        return _apply(CIHP_TO_LIP, label_map)
    out = _apply(CIHP_TO_ATR, label_map)
    for cihp_id, (left, right, side_ids) in ATR_SIDED.items():
        where = label_map == cihp_id
        if where.any():
            out[where] = _nearest_side(label_map, person_map, where, side_ids, (left, right))
    return out


def _nearest_side(label_map: npt.NDArray[np.uint8], person_map: npt.NDArray[np.uint8] | None,
                  where: npt.NDArray[np.bool_], side_ids: tuple[int, int],
                  out_ids: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """For the pixels ``where``: ``out_ids[0]`` when the nearest pixel labelled ``side_ids[0]`` or ``side_ids[1]``
    (of the same person when ``person_map`` is given) is ``side_ids[0]``, else ``out_ids[1]``; left without one.
    Per person that has such pixels, on the box holding that person's side pixels and their ``where`` pixels
    (every candidate lies in it): ``_box_sides``. At 12 MP with four owners the whole-image transforms took 12 s
    and +590 MB."""
    result = np.full(int(where.sum()), out_ids[0], dtype=np.uint8)
    ys, xs = np.nonzero(where)
    owners = person_map[ys, xs] if person_map is not None else np.zeros(ys.size, dtype=np.uint8)
    sided_any = np.isin(label_map, side_ids)
    for owner in np.unique(owners):
        sided = sided_any & (person_map == owner) if person_map is not None and owner else sided_any
        if not sided.any():
            continue
        sel = owners == owner
        (sy0, sy1), (sx0, sx1) = _span(sided, 1), _span(sided, 0)
        y0, y1 = min(sy0, int(ys[sel].min())), max(sy1, int(ys[sel].max()) + 1)
        x0, x1 = min(sx0, int(xs[sel].min())), max(sx1, int(xs[sel].max()) + 1)
        result[sel] = _box_sides(label_map[y0:y1, x0:x1], sided[y0:y1, x0:x1], ys[sel] - y0, xs[sel] - x0,
                                 side_ids, out_ids)
    return result


# Two distances closer than this (pixels) count as a tie: OpenCV's precise transform (float32) was within 3e-5 px
# of scipy's exact one at 12 MP (its squares within 0.06 of the integers), so a wider gap is a true one.
_TIE_GAP = 0.05


def _box_sides(label: npt.NDArray[np.uint8], sided: npt.NDArray[np.bool_], qy: npt.NDArray[np.intp],
               qx: npt.NDArray[np.intp], side_ids: tuple[int, int],
               out_ids: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """``_nearest_side`` in one box: ``sided`` (the box's candidates, (h, w) bool) and query pixels (qy, qx).
    A pixel whose distance to the nearest ``side_ids[0]`` candidate and to the nearest other one differ has the
    nearer side whatever pixel a feature transform would pick: OpenCV's exact distance transforms (Felzenszwalb,
    0.2 s a 12 MP box) decide those. Only the (near-)ties go to scipy's feature transform, the formulation this
    one reproduces, on the box holding every candidate and the ties (its passes run line by line, so such a
    crop gives the same nearest pixel, ties included): at 12 MP it took 1–2 s a box."""
    import cv2
    from scipy import ndimage

    left = sided & (label == side_ids[0])
    right = sided ^ left
    if not (left.any() and right.any()):  # one side only: every candidate is on it
        return np.full(qy.size, out_ids[0] if left.any() else out_ids[1], dtype=np.uint8)
    # distances to the nearest zero: the side's complement, as bytes 0/1 (a view of the negated bool mask)
    dist = [cv2.distanceTransform(np.logical_not(s).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[qy, qx]
            for s in (left, right)]
    result = np.where(dist[0] < dist[1], out_ids[0], out_ids[1]).astype(np.uint8)
    tie = np.flatnonzero(np.abs(dist[0] - dist[1]) <= _TIE_GAP)
    if tie.size:
        ty, tx = qy[tie], qx[tie]
        (sy0, sy1), (sx0, sx1) = _span(sided, 1), _span(sided, 0)
        y0, y1 = min(sy0, int(ty.min())), max(sy1, int(ty.max()) + 1)
        x0, x1 = min(sx0, int(tx.min())), max(sx1, int(tx.max()) + 1)
        iy, ix = ndimage.distance_transform_edt(~sided[y0:y1, x0:x1], return_distances=False, return_indices=True)
        near = label[iy[ty - y0, tx - x0] + y0, ix[ty - y0, tx - x0] + x0]
        result[tie] = np.where(near == side_ids[0], out_ids[0], out_ids[1])
    return result


def _span(mask: npt.NDArray[np.bool_], axis: int) -> tuple[int, int]:
    """First and one-past-last index, along the other axis, of the lines of ``mask`` (2-D, not all False)
    holding a True (``axis`` = the axis reduced)."""
    hit = np.flatnonzero(mask.any(axis=axis))
    return int(hit[0]), int(hit[-1]) + 1


def to_cihp(label_map: npt.NDArray[np.uint8], source: str) -> npt.NDArray[np.uint8]:
    """Another parser's LIP or ATR map (H, W) uint8 → CIHP ids (the reverse tables above); CIHP is copied."""
    src = check_label_set(source)
    if src == "cihp":
        return label_map.copy()
    return _apply(LIP_TO_CIHP if src == "lip" else ATR_TO_CIHP, label_map)
