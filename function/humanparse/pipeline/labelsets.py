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
        out: npt.NDArray[np.uint8] = _lut(CIHP_TO_LIP)[label_map]
        return out
    out = _lut(CIHP_TO_ATR)[label_map]
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
    One Euclidean distance transform per person that has such pixels."""
    from scipy import ndimage

    result = np.full(int(where.sum()), out_ids[0], dtype=np.uint8)
    ys, xs = np.nonzero(where)
    owners = person_map[ys, xs] if person_map is not None else np.zeros(ys.size, dtype=np.uint8)
    for owner in np.unique(owners):
        sided = np.isin(label_map, side_ids)
        if person_map is not None and owner:
            sided &= person_map == owner
        if not sided.any():
            continue
        _, (iy, ix) = ndimage.distance_transform_edt(~sided, return_indices=True)
        sel = owners == owner
        near = label_map[iy[ys[sel], xs[sel]], ix[ys[sel], xs[sel]]]
        result[sel] = np.where(near == side_ids[0], out_ids[0], out_ids[1])
    return result


def to_cihp(label_map: npt.NDArray[np.uint8], source: str) -> npt.NDArray[np.uint8]:
    """Another parser's LIP or ATR map (H, W) uint8 → CIHP ids (the reverse tables above); CIHP is copied."""
    src = check_label_set(source)
    if src == "cihp":
        return label_map.copy()
    out: npt.NDArray[np.uint8] = _lut(LIP_TO_CIHP if src == "lip" else ATR_TO_CIHP)[label_map]
    return out
