"""Try-on inputs for one person: the inpainting mask of a garment category and the agnostic image.

A try-on model (VITON-HD, HR-VITON, OOTDiffusion, IDM-VTON, CatVTON) repaints one region of the photo with a new
garment. The region is not just the old garment: a new garment may be longer (sleeves, hem), looser or shaped
otherwise, so the region is grown to where such a garment could reach, while what identifies the person and
what the category keeps (face, hair, hands, feet, the other garments, other people) is cut out of it again.
``docs/tryon.md`` says what each step is for.

Array contracts (all arrays share the photo's size (H, W)):
- ``label_map``: (H, W) uint8 CIHP ids 0..19; ``person_map``: (H, W) uint8, 0 = nobody, k = person k;
- ``rgb``: (H, W, 3) uint8 RGB photo;
- ``keypoints``: optional (18, 3) float32 x, y, confidence in OpenPose-18 order (``keypoints.py``), photo pixels,
  0, 0, 0 for a keypoint not seen;
- ``TryOn.mask``: (H, W) bool, True = repaint; ``TryOn.agnostic``: (H, W, 3) uint8 RGB, the photo with the mask
  grey (128, 128, 128); ``TryOn.parse_agnostic``: (H, W) uint8 CIHP ids with the person's replaced garments and
  the body parts the new garment may cover set to 0 (VITON-HD's "parse agnostic").
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from humanparse.exceptions import NoPerson, NothingToMask, UnknownCategory, UnknownPerson
from humanparse.pipeline.labels import CIHP_LABELS

# CIHP ids
HAT, HAIR, GLOVE, SUNGLASSES, UPPER, DRESS, COAT, SOCKS, PANTS, TORSO_SKIN = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
SCARF, SKIRT, FACE, L_ARM, R_ARM, L_LEG, R_LEG, L_SHOE, R_SHOE = 11, 12, 13, 14, 15, 16, 17, 18, 19
ARMS, LEGS = (L_ARM, R_ARM), (L_LEG, R_LEG)
# OpenPose-18 indices
_R_SHOULDER, _R_ELBOW, _R_WRIST, _L_SHOULDER, _L_ELBOW, _L_WRIST = 2, 3, 4, 5, 6, 7
_R_HIP, _R_KNEE, _R_ANKLE, _L_HIP, _L_KNEE, _L_ANKLE = 8, 9, 10, 11, 12, 13

AGNOSTIC_GREY = (128, 128, 128)  # VITON-HD's and OOTDiffusion's fill for the region to repaint
GROW_FRACTION = 0.025  # looser-garment margin around the region: 2.5 % of the person's height (~4 cm at 1.7 m)
LIMB_WIDTH_FRACTION = 0.45  # a sleeve or trouser leg drawn from keypoints: this share of the shoulder (hip) width
WINDOW_MARGIN = 0.25  # the mask is worked out within the person's box widened by this share of its height
FLARE_FRACTION = 0.5  # a dress's hem may stand out this share of the hip width beyond each ankle (knee)


@dataclass(frozen=True)
class Category:
    """What one try-on category repaints. ``replace``: the garments swapped (always wholly in the mask);
    ``reveal``: body parts the new garment may cover or bare (in the mask, hands and feet excepted);
    ``sleeves`` / ``legs``: grow along the arms / legs from keypoints; ``flare``: the hem may be wider than the
    legs (a skirt's or dress's cone below the hips)."""

    replace: tuple[int, ...]
    reveal: tuple[int, ...]
    sleeves: bool
    legs: bool
    flare: bool


_ALL_GARMENTS = (UPPER, DRESS, COAT, PANTS, SKIRT)
CATEGORIES: dict[str, Category] = {
    "upper_body": Category(replace=(UPPER, COAT), reveal=(TORSO_SKIN, *ARMS), sleeves=True, legs=False, flare=False),
    "lower_body": Category(replace=(PANTS, SKIRT), reveal=LEGS, sleeves=False, legs=True, flare=False),
    "dresses": Category(replace=_ALL_GARMENTS, reveal=(TORSO_SKIN, *ARMS, *LEGS), sleeves=True, legs=True,
                        flare=True),
    "full_body": Category(replace=_ALL_GARMENTS, reveal=(TORSO_SKIN, *ARMS, *LEGS), sleeves=True, legs=True,
                          flare=False),
}


IMAGES = ("mask", "agnostic", "parse_agnostic")  # the files a TryOn writes, ``<image>.png``


@dataclass(frozen=True)
class TryOn:
    """One person's try-on inputs for one category (array contracts: module docstring)."""

    category: str
    person: int
    mask: npt.NDArray[np.bool_]
    agnostic: npt.NDArray[np.uint8]
    parse_agnostic: npt.NDArray[np.uint8]

    def mask_image(self) -> npt.NDArray[np.uint8]:
        """(H, W) uint8, 255 = repaint, 0 = keep: the mask as the grey image OOTDiffusion and CatVTON read."""
        return np.where(self.mask, np.uint8(255), np.uint8(0))

    def files(self) -> dict[str, bytes]:
        """The three as files: ``mask.png`` (grey, 0/255), ``agnostic.png`` (RGB; lossless, so it equals the
        photo outside the mask), ``parse_agnostic.png`` (palette PNG whose pixel values are the CIHP ids)."""
        return {f"{image}.png": self.file(image) for image in IMAGES}

    def file(self, image: str) -> bytes:
        """One of ``files()``, encoded alone (``image`` in ``IMAGES``): at 12 MP the agnostic PNG takes seconds,
        so an entry asking for the mask does not pay for it."""
        from PIL import Image

        from humanparse.pipeline.labels import palette_array
        from humanparse.pipeline.rendering import png_bytes

        if image == "mask":
            buf = io.BytesIO()
            Image.fromarray(self.mask_image(), mode="L").save(buf, format="PNG", compress_level=1)
            return buf.getvalue()
        if image == "agnostic":
            return png_bytes(self.agnostic)
        if image == "parse_agnostic":
            return png_bytes(self.parse_agnostic, palette=palette_array())
        raise ValueError(f"unknown try-on image {image!r}; one of {', '.join(IMAGES)}")


def check_request(category: str, person: int | None, n_persons: int) -> tuple[Category, int]:
    """The category's rule and the person id (``None`` → 1, the strongest); ``UnknownCategory``,
    ``NoPerson`` or ``UnknownPerson`` with a message naming what exists."""
    if category not in CATEGORIES:
        raise UnknownCategory(f"unknown try-on category {category!r}; choose one of {', '.join(CATEGORIES)}")
    if n_persons == 0:
        raise NoPerson("no person was found in the image, so there is no garment region to mask")
    pid = 1 if person is None else person
    if isinstance(pid, bool) or not isinstance(pid, int | np.integer) or not 1 <= int(pid) <= n_persons:
        raise UnknownPerson(f"person {person!r} is not in this image; its persons are 1..{n_persons}")
    return CATEGORIES[category], int(pid)


def tryon(rgb: npt.NDArray[np.uint8], label_map: npt.NDArray[np.uint8], person_map: npt.NDArray[np.uint8],
          n_persons: int, category: str, person: int | None = None,
          keypoints: npt.NDArray[np.float32] | None = None) -> TryOn:
    """The mask, agnostic image and agnostic parse of ``person`` (1..n_persons, default 1) for ``category``.
    ``NothingToMask`` when the person shows none of the parts the category repaints (an empty mask would pass
    for a result)."""
    rule, pid = check_request(category, person, n_persons)
    if not (_in(label_map, rule.replace + rule.reveal) & (person_map == pid)).any():
        names = ", ".join(CIHP_LABELS[i] for i in rule.replace + rule.reveal)
        raise NothingToMask(f"person {pid} shows none of the parts {category} repaints ({names})")
    mask = inpaint_mask(label_map, person_map, pid, rule, keypoints)
    agnostic = rgb.copy()
    agnostic[mask] = AGNOSTIC_GREY
    parse_agn = label_map.copy()
    own = person_map == pid
    parse_agn[own & mask & _in(label_map, rule.replace + rule.reveal)] = 0
    return TryOn(category, pid, mask, agnostic, parse_agn)


def inpaint_mask(label_map: npt.NDArray[np.uint8], person_map: npt.NDArray[np.uint8], person: int,
                 rule: Category, keypoints: npt.NDArray[np.float32] | None = None) -> npt.NDArray[np.bool_]:
    """(H, W) bool region to repaint: the person's garments and revealed parts, grown and filled, then cut by
    what must stay (``protected``). Every pixel of the replaced garments is in it. Worked out in a window of
    the person's box widened by ``WINDOW_MARGIN`` of its height each way (the growth stays well inside it)."""
    h, w = person_map.shape
    own = person_map == person
    out = np.zeros((h, w), dtype=bool)
    rows, cols = np.flatnonzero(own.any(axis=1)), np.flatnonzero(own.any(axis=0))
    if rows.size == 0:
        return out
    m = int(np.ceil(WINDOW_MARGIN * (rows[-1] + 1 - rows[0])))
    y0, y1 = max(0, int(rows[0]) - m), min(h, int(rows[-1]) + 1 + m)
    x0, x1 = max(0, int(cols[0]) - m), min(w, int(cols[-1]) + 1 + m)
    kp = None
    if keypoints is not None:
        kp = keypoints.copy()
        kp[:, 0] -= x0
        kp[:, 1] -= y0
    out[y0:y1, x0:x1] = _window_mask(label_map[y0:y1, x0:x1], person_map[y0:y1, x0:x1], person, rule, kp)
    return out


def _window_mask(label_map: npt.NDArray[np.uint8], person_map: npt.NDArray[np.uint8], person: int,
                 rule: Category, keypoints: npt.NDArray[np.float32] | None) -> npt.NDArray[np.bool_]:

    own = person_map == person
    garments = own & _in(label_map, rule.replace)
    core = garments | (own & _in(label_map, rule.reveal))
    if not core.any():
        return np.asarray(garments, dtype=bool)
    y0, y1 = _rows(own)
    r = max(1, int(round(GROW_FRACTION * (y1 - y0))))
    grown = _grow(core, r)
    _fill_hull(grown, own & _in(label_map, (UPPER, COAT, DRESS, TORSO_SKIN)) & core)
    if rule.flare:
        _fill_hull(grown, _lower_half(own & _in(label_map, (DRESS, SKIRT, PANTS, *LEGS)) & core))
    if keypoints is not None:
        _draw_limbs(grown, keypoints, rule)
    mask = _fill_holes(grown > 0)
    mask &= ~protected(label_map, person_map, person, rule, keypoints)
    return np.asarray(mask | garments, dtype=bool)


def protected(label_map: npt.NDArray[np.uint8], person_map: npt.NDArray[np.uint8], person: int, rule: Category,
              keypoints: npt.NDArray[np.float32] | None = None) -> npt.NDArray[np.bool_]:
    """(H, W) bool: what the mask never covers — everyone else, this person's parts the category neither
    replaces nor reveals (face, hair, hat, the other garments, shoes ...), and, with keypoints, the hands and
    bare feet (CIHP labels them as arm and leg)."""
    own = person_map == person
    keep = ((person_map > 0) & ~own) | (own & ~_in(label_map, (0, *rule.replace, *rule.reveal)))
    if keypoints is not None:
        arms = own & _in(label_map, ARMS)
        for elbow, wrist in ((_R_ELBOW, _R_WRIST), (_L_ELBOW, _L_WRIST)):
            keep |= _beyond(arms, keypoints, elbow, wrist)
        legs = own & _in(label_map, LEGS)
        for knee, ankle in ((_R_KNEE, _R_ANKLE), (_L_KNEE, _L_ANKLE)):
            keep |= _beyond(legs, keypoints, knee, ankle)
    return np.asarray(keep, dtype=bool)


def _beyond(part: npt.NDArray[np.bool_], kp: npt.NDArray[np.float32], joint: int,
            end: int) -> npt.NDArray[np.bool_]:
    """Pixels of ``part`` past keypoint ``end`` on the line from ``joint`` (a hand past the wrist, a foot past
    the ankle), within one segment length of ``end``; nothing when either keypoint is missing."""
    if kp[joint, 2] <= 0 or kp[end, 2] <= 0:
        return np.zeros_like(part)
    a, b = kp[joint, :2].astype(np.float64), kp[end, :2].astype(np.float64)
    length = float(np.hypot(*(b - a)))
    if length < 1.0:
        return np.zeros_like(part)
    ys, xs = np.nonzero(part)
    d = np.stack([xs - b[0], ys - b[1]], axis=1)
    along = d @ ((b - a) / length)
    near = np.hypot(d[:, 0], d[:, 1]) <= length
    out = np.zeros_like(part)
    sel = (along > 0) & near
    out[ys[sel], xs[sel]] = True
    return out


def _draw_limbs(canvas: npt.NDArray[np.uint8], kp: npt.NDArray[np.float32], rule: Category) -> None:
    """Draw (in place, 1 = mask) where a new garment's sleeves and legs can reach: thick lines shoulder → elbow
    → wrist and hip → knee → ankle, the torso quadrilateral, and for a flared hem the cone hips → hem."""
    import cv2

    def pt(i: int) -> tuple[int, int] | None:
        return (int(round(float(kp[i, 0]))), int(round(float(kp[i, 1])))) if kp[i, 2] > 0 else None

    def width(a: int, b: int) -> int:
        pa, pb = pt(a), pt(b)
        return 0 if pa is None or pb is None else max(1, int(LIMB_WIDTH_FRACTION * np.hypot(pa[0] - pb[0],
                                                                                            pa[1] - pb[1])))

    chains = []
    if rule.sleeves:
        chains.append(((_R_SHOULDER, _R_ELBOW, _R_WRIST), width(_R_SHOULDER, _L_SHOULDER)))
        chains.append(((_L_SHOULDER, _L_ELBOW, _L_WRIST), width(_R_SHOULDER, _L_SHOULDER)))
        _poly(canvas, [pt(i) for i in (_R_SHOULDER, _L_SHOULDER, _L_HIP, _R_HIP)])
    if rule.legs:
        chains.append(((_R_HIP, _R_KNEE, _R_ANKLE), width(_R_HIP, _L_HIP)))
        chains.append(((_L_HIP, _L_KNEE, _L_ANKLE), width(_R_HIP, _L_HIP)))
    for chain, w in chains:
        pts = [pt(i) for i in chain]
        for p, q in zip(pts, pts[1:], strict=False):
            if p is not None and q is not None and w > 0:
                cv2.line(canvas, p, q, 1, thickness=w)
    if rule.flare:
        _poly(canvas, _hem_cone(kp))


def _hem_cone(kp: npt.NDArray[np.float32]) -> list[tuple[int, int] | None]:
    """Hips and the two hem corners: each ankle (else knee) pushed outward by ``FLARE_FRACTION`` of the hip
    width, on its own side."""
    if kp[_R_HIP, 2] <= 0 or kp[_L_HIP, 2] <= 0:
        return [None]
    rh, lh = kp[_R_HIP, :2], kp[_L_HIP, :2]
    out_dir = (rh - lh) / max(1.0, float(np.hypot(*(rh - lh))))  # from the left hip towards the right hip
    spread = FLARE_FRACTION * float(np.hypot(*(rh - lh)))
    corners: list[tuple[int, int] | None] = []
    for ankle, knee, sign in ((_R_ANKLE, _R_KNEE, 1.0), (_L_ANKLE, _L_KNEE, -1.0)):
        j = ankle if kp[ankle, 2] > 0 else knee
        if kp[j, 2] <= 0:
            return [None]
        p = kp[j, :2] + sign * spread * out_dir
        corners.append((int(round(float(p[0]))), int(round(float(p[1])))))
    return [(int(round(float(rh[0]))), int(round(float(rh[1])))), corners[0], corners[1],
            (int(round(float(lh[0]))), int(round(float(lh[1]))))]


def _poly(canvas: npt.NDArray[np.uint8], pts: list[tuple[int, int] | None]) -> None:
    import cv2

    if len(pts) >= 3 and all(p is not None for p in pts):
        cv2.fillPoly(canvas, [np.array(pts, dtype=np.int32)], 1)


def _grow(core: npt.NDArray[np.bool_], r: int) -> npt.NDArray[np.uint8]:
    """(H, W) uint8 0/1: ``core`` grown by a disk of radius ``r`` px. Up to ``r`` = 16 a dilation with OpenCV's
    ellipse kernel; beyond, the pixels within ``r`` of ``core`` by a Euclidean distance transform, whose cost does
    not grow with ``r``: a person filling a 12 MP frame (``r`` = 75) took 1.9 s dilated, 0.12 s so, differing on
    0.05 % of the grown region's pixels (its rim: the ellipse kernel is not quite a disk)."""
    import cv2

    if r <= 16:
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        return np.asarray(cv2.dilate(core.astype(np.uint8), disk), dtype=np.uint8)
    dist = cv2.distanceTransform(np.where(core, np.uint8(0), np.uint8(1)), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return np.asarray(dist <= r, dtype=np.uint8)


def _fill_hull(canvas: npt.NDArray[np.uint8], region: npt.NDArray[np.bool_]) -> None:
    """Fill (in place) the convex hull of ``region`` (a garment's outline without its folds and gaps). The hull
    of its outer contours' points is the hull of all its pixels: at 12 MP 0.03 s where all pixels took 0.7 s."""
    import cv2

    contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if contours:
        pts = np.concatenate(contours)
        if len(pts) >= 3:
            cv2.fillPoly(canvas, [cv2.convexHull(pts)], 1)


def _lower_half(region: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """``region`` below the middle of its own rows (the hem side of a dress or skirt with the legs)."""
    if not region.any():
        return region
    y0, y1 = _rows(region)
    out = region.copy()
    out[: (y0 + y1) // 2] = False
    return out


def _in(label_map: npt.NDArray[np.uint8], ids: tuple[int, ...]) -> npt.NDArray[np.bool_]:
    """(H, W) bool: ``label_map`` pixel is one of ``ids``. A 256-entry table read with ``np.take``: 0.18 ms on a
    500x458 map where ``np.isin`` took 4.0 ms."""
    lut = np.zeros(256, dtype=bool)
    lut[list(ids)] = True
    out: npt.NDArray[np.bool_] = np.take(lut, label_map)
    return out


def _fill_holes(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """``mask`` with every region it encloses (not reachable from the border, 4-connected) filled: what
    ``scipy.ndimage.binary_fill_holes`` does, by one flood fill from outside (cv2: 0.5 ms here against 7 ms)."""
    import cv2

    h, w = mask.shape
    outside = np.pad(mask.astype(np.uint8), 1)
    cv2.floodFill(outside, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 1, flags=4)
    return np.asarray(mask | (outside[1:-1, 1:-1] == 0), dtype=bool)


def _rows(mask: npt.NDArray[np.bool_]) -> tuple[int, int]:
    rows = np.flatnonzero(mask.any(axis=1))
    return (int(rows[0]), int(rows[-1]) + 1) if rows.size else (0, 0)
