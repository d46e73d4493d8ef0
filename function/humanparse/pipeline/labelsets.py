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
    ys, xs = np.divmod(np.flatnonzero(where), where.shape[1])  # np.nonzero's pairs: 2.4 ms at 12 MP, its 2-D form 16
    owners = person_map[ys, xs] if person_map is not None else np.zeros(ys.size, dtype=np.uint8)
    # a look-up table, not np.isin (0.15 s at 12 MP)
    sided_any = _apply(tuple(int(i in side_ids) for i in range(max(side_ids) + 1)), label_map).view(bool)
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
    0.2 s a 12 MP box) decide those. Only the (near-)ties need the feature transform's own pick of a nearest pixel
    (``_edt_pick``, which finds it near each tie instead of transforming the box: scipy's transform of a 12 MP box
    took 0.4 s, for 1,264 ties on the bench's 12 MP photo)."""
    import cv2

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
        # a candidate lies within the nearer distance (OpenCV's floats are within 3e-5 px of the exact ones)
        reach = np.floor(np.minimum(dist[0][tie], dist[1][tie])).astype(np.intp) + 2
        ny, nx = _edt_pick(sided, qy[tie], qx[tie], reach)
        result[tie] = np.where(label[ny, nx] == side_ids[0], out_ids[0], out_ids[1])
    return result


# (query, column) pairs per chunk of ``_edt_pick``'s queries: 1 M, about 90 MB of temporaries (12 of 8 bytes)
_PICK_CHUNK = 1 << 20


def _edt_pick(sided: npt.NDArray[np.bool_], qy: npt.NDArray[np.intp], qx: npt.NDArray[np.intp],
              reach: npt.NDArray[np.intp]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """The (row, column) of the candidate (True pixel of the (h, w) ``sided``) that
    ``scipy.ndimage.distance_transform_edt(~sided, return_indices=True)`` names at each query pixel (qy, qx),
    each query having a candidate within ``reach`` pixels. Scipy's two passes make that pick the nearest
    candidate, of equally near ones the leftmost column's, then the top row's (its column pass keeps each
    column's nearest row, ties upward; its row pass the nearest of those, ties leftward; tests/test_labelsets.py
    checks it against scipy on maps full of ties). So a query looks only at the columns within its reach, each
    offering its nearest candidate row (binary searches in the candidates listed column by column): 1,264 ties
    at 12 MP took 0.03 s where scipy's transform of the box took 0.4 s. More pairs than a quarter of the box's
    pixels go to scipy."""
    h, w = sided.shape
    span = 2 * reach + 1
    if int(span.sum()) > h * w // 4:
        from scipy import ndimage

        iy, ix = ndimage.distance_transform_edt(~sided, return_distances=False, return_indices=True)
        return iy[qy, qx], ix[qy, qx]
    r = int(reach.max())
    x0, x1 = max(0, int(qx.min()) - r), min(w, int(qx.max()) + r + 1)
    keys = np.flatnonzero(np.ascontiguousarray(sided[:, x0:x1].T))  # column * h + row, in that order
    ny, nx = np.empty_like(qy), np.empty_like(qx)
    order = np.argsort(reach, kind="stable")  # chunks of similar reach: little wasted width
    start = 0
    while start < order.size:  # as many queries as fit _PICK_CHUNK at the widest span among them
        n = max(1, _PICK_CHUNK // int(span[order[start]]))
        n = max(1, min(n, _PICK_CHUNK // int(span[order[min(start + n, order.size) - 1]])))
        idx = order[start:start + n]
        ny[idx], nx[idx] = _pick_near(keys, h, x1 - x0, qy[idx], qx[idx] - x0, int(reach[idx].max()))
        start += n
    return ny, nx + x0


def _pick_near(keys: npt.NDArray[np.intp], h: int, w: int, qy: npt.NDArray[np.intp], qx: npt.NDArray[np.intp],
               r: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """``_edt_pick`` for some queries (row ``qy``, column ``qx`` of a (h, w) box whose candidates are ``keys`` =
    column * h + row, sorted), over the columns within ``r``."""
    off = np.arange(-r, r + 1)
    cols = qx[:, None] + off
    inside = (cols >= 0) & (cols < w)
    cols = np.clip(cols, 0, w - 1)
    at = cols * h + qy[:, None]
    hi = np.searchsorted(keys, at)  # the first candidate at or below, if in this column
    lo = np.searchsorted(keys, at, side="right") - 1  # the last at or above, if in this column
    a = np.where(lo >= 0, keys[np.maximum(lo, 0)], -1)
    b = np.where(hi < keys.size, keys[np.minimum(hi, keys.size - 1)], -1)
    has_a, has_b = a >= cols * h, (b >= 0) & (b < (cols + 1) * h)
    da, db = at - a, b - at
    up = has_a & (~has_b | (da <= db))  # a column's nearest row; equally near: the upper one
    dy = np.where(up, da, db)
    d2 = np.where(inside & (has_a | has_b), dy * dy + off * off, np.iinfo(np.int64).max)
    k = d2.argmin(axis=1)  # the first minimum: the leftmost column
    i = np.arange(k.size)
    return np.where(up[i, k], a[i, k], b[i, k]) - cols[i, k] * h, cols[i, k]


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
