"""LIP and ATR label maps: every CIHP id maps as docs/tryon.md documents, one test per id, and back."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from humanparse.exceptions import UnknownLabelSet
from humanparse.pipeline.labels import CIHP_LABELS
from humanparse.pipeline.labelsets import ATR_LABELS, LIP_LABELS, convert, to_cihp

# The documented table, by name (written out here, not derived from the module's tables): CIHP name → (LIP name,
# ATR name, CIHP name after ATR → CIHP). "side" = the Left-/Right- twin of the arm/leg the pixel sits on.
EXPECTED: dict[str, tuple[str, str, str]] = {
    "Background": ("Background", "Background", "Background"),
    "Hat": ("Hat", "Hat", "Hat"),
    "Hair": ("Hair", "Hair", "Hair"),
    "Glove": ("Glove", "side arm", "side arm"),
    "Sunglasses": ("Sunglasses", "Sunglasses", "Sunglasses"),
    "UpperClothes": ("UpperClothes", "Upper-clothes", "UpperClothes"),
    "Dress": ("Dress", "Dress", "Dress"),
    "Coat": ("Coat", "Upper-clothes", "UpperClothes"),
    "Socks": ("Socks", "side leg", "side leg"),
    "Pants": ("Pants", "Pants", "Pants"),
    "Torso-skin": ("Background", "Background", "Background"),
    "Scarf": ("Scarf", "Scarf", "Scarf"),
    "Skirt": ("Skirt", "Skirt", "Skirt"),
    "Face": ("Face", "Face", "Face"),
    "Left-arm": ("Left-arm", "Left-arm", "Left-arm"),
    "Right-arm": ("Right-arm", "Right-arm", "Right-arm"),
    "Left-leg": ("Left-leg", "Left-leg", "Left-leg"),
    "Right-leg": ("Right-leg", "Right-leg", "Right-leg"),
    "Left-shoe": ("Left-shoe", "Left-shoe", "Left-shoe"),
    "Right-shoe": ("Right-shoe", "Right-shoe", "Right-shoe"),
}


def scene(cihp_id: int) -> tuple[np.ndarray, np.ndarray]:
    """A 20x30 map: the id under test in the middle column band, a Right-arm and a Right-leg just left of it and
    a Left-arm and Left-leg far to the right (so "side" resolves to Right-), one person."""
    lab = np.zeros((20, 30), np.uint8)
    lab[2:8, 4:8] = 15  # Right-arm
    lab[10:18, 4:8] = 17  # Right-leg
    lab[2:8, 26:29] = 14
    lab[10:18, 26:29] = 16
    lab[5:15, 9:13] = cihp_id
    return lab, (lab > 0).astype(np.uint8)


@pytest.mark.parametrize("name", CIHP_LABELS)
def test_each_cihp_id_maps_as_documented(name: str) -> None:
    cid = CIHP_LABELS.index(name)
    lab, persons = scene(cid)
    region = lab == cid
    lip_name, atr_name, back_name = EXPECTED[name]
    assert {LIP_LABELS[v] for v in convert(lab, "lip")[region]} == {lip_name}
    atr = convert(lab, "atr", persons)
    right = {"side arm": "Right-arm", "side leg": "Right-leg"}
    assert {ATR_LABELS[v] for v in atr[region]} == {right.get(atr_name, atr_name)}
    assert {CIHP_LABELS[v] for v in to_cihp(atr, "atr")[region]} == {right.get(back_name, back_name)}
    assert {CIHP_LABELS[v] for v in to_cihp(convert(lab, "lip"), "lip")[region]} == {lip_name if lip_name == "Background" else name}
    assert np.array_equal(convert(lab, "cihp"), lab)


def test_side_follows_the_nearest_limb_of_the_same_person() -> None:
    lab = np.zeros((10, 40), np.uint8)
    lab[:, 0:1], lab[:, 18:20] = 15, 14  # person 1: Right-arm 10 px from the glove, Left-arm 6-8 px
    lab[:, 10:13] = 3  # person 1's glove
    lab[:, 13:16] = 15  # person 2's Right-arm, touching the glove
    persons = np.where(lab > 0, 1, 0).astype(np.uint8)
    persons[:, 13:16] = 2
    assert set(convert(lab, "atr", persons)[:, 10:13].ravel()) == {ATR_LABELS.index("Left-arm")}
    assert set(convert(lab, "atr")[:, 10:13].ravel()) == {ATR_LABELS.index("Right-arm")}  # without persons
    # a glove with no arm in the image at all: Left- (documented default)
    lone = np.zeros((6, 6), np.uint8)
    lone[2:4, 2:4] = 3
    assert set(convert(lone, "atr")[2:4, 2:4].ravel()) == {ATR_LABELS.index("Left-arm")}


def test_label_set_sizes_and_unknown_set() -> None:
    assert len(LIP_LABELS) == 20 and LIP_LABELS[10] == "Jumpsuits" and len(ATR_LABELS) == 18
    assert to_cihp(np.array([[10]], np.uint8), "lip")[0, 0] == CIHP_LABELS.index("Dress")
    assert to_cihp(np.array([[8, 16]], np.uint8), "atr").tolist() == [[9, 0]]  # Belt → Pants, Bag → Background
    with pytest.raises(UnknownLabelSet) as e:
        convert(np.zeros((2, 2), np.uint8), "pascal")
    assert e.value.code == "unknown_label_set" and "atr" in str(e.value)
    assert convert(np.zeros((2, 2), np.uint8), "ATR").dtype == np.uint8  # any case


def _nearest_side_whole_image(label_map: np.ndarray, person_map: np.ndarray, where: np.ndarray,
                              side_ids: tuple[int, int], out_ids: tuple[int, int]) -> np.ndarray:
    """The previous formulation: one feature transform of the whole image per owner."""
    from scipy import ndimage

    result = np.full(int(where.sum()), out_ids[0], dtype=np.uint8)
    ys, xs = np.nonzero(where)
    owners = person_map[ys, xs]
    for owner in np.unique(owners):
        sided = np.isin(label_map, side_ids)
        if owner:
            sided &= person_map == owner
        if not sided.any():
            continue
        _, (iy, ix) = ndimage.distance_transform_edt(~sided, return_indices=True)
        sel = owners == owner
        near = label_map[iy[ys[sel], xs[sel]], ix[ys[sel], xs[sel]]]
        result[sel] = np.where(near == side_ids[0], out_ids[0], out_ids[1])
    return result


def _sided_maps() -> list[tuple[np.ndarray, np.ndarray]]:
    """Label and person maps with gloves and socks: the lite parse of the shipped photo (two people side by side)
    with its lower legs relabelled socks and its forearms gloves (some of them nobody's), and random small maps
    (ties between equally near left and right pixels everywhere)."""
    from conftest import PEOPLE_PHOTO
    from humanparse.engine.lite import LiteParser, find_lite_models
    from humanparse.models import packaged_lite_dir
    from PIL import Image

    im = Image.open(PEOPLE_PHOTO).convert("RGB")
    pair = Image.new("RGB", (2 * im.width, im.height))
    pair.paste(im, (0, 0))
    pair.paste(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (im.width, 0))
    res = LiteParser(*find_lite_models([packaged_lite_dir()]), threads=1).parse(np.asarray(pair))
    label, persons = res.label_map.copy(), res.person_map.copy()
    h = label.shape[0]
    rows = np.arange(h)[:, None]
    label[np.isin(label, (16, 17)) & (rows > h * 0.8)] = 8
    label[np.isin(label, (14, 15)) & (rows > h * 0.6)] = 3
    persons[:, : label.shape[1] // 8] = 0
    maps = [(label, persons)]
    rng = np.random.default_rng(3)
    for _ in range(40):
        shape = tuple(int(v) for v in rng.integers(8, 60, 2))
        label = rng.choice(np.array([0, 3, 8, 14, 15, 16, 17, 5], np.uint8), shape,
                           p=[0.5, 0.05, 0.05, 0.02, 0.02, 0.02, 0.02, 0.32])
        maps.append((label, rng.integers(0, 3, shape).astype(np.uint8)))
    return maps


def test_sides_decided_in_boxes_equal_the_whole_image_transform() -> None:
    """Gloves and socks get the same side as the previous formulation's whole-image feature transform, ties
    included, on a parsed photo and on random maps."""
    from humanparse.pipeline.labelsets import ATR_SIDED, _nearest_side

    checked = 0
    for label, persons in _sided_maps():
        for cihp_id, (left, right, side_ids) in ATR_SIDED.items():
            where = label == cihp_id
            if not where.any():
                continue
            got = _nearest_side(label, persons, where, side_ids, (left, right))
            want = _nearest_side_whole_image(label, persons, where, side_ids, (left, right))
            assert np.array_equal(got, want)
            checked += 1
    assert checked >= 60


def _tie_maps() -> list[tuple[np.ndarray, np.ndarray]]:
    """Larger maps where the two sides are often exactly as near: legs mirrored about a pixel column (every sock
    pixel on that column ties), blocky maps (block edges on the pixel grid: many exact ties), a map with one side
    only, and smooth blobs (no exact ties, gaps of a fraction of a pixel)."""
    maps = []
    legs = np.zeros((120, 161), np.uint8)
    legs[20:100, 40:60], legs[20:100, 101:121] = 16, 17  # mirror images about column 80
    legs[100:118, 30:131] = 8
    legs[5:15, 70:91] = 8
    maps.append((legs, (legs > 0).astype(np.uint8)))
    one = legs.copy()
    one[one == 17] = 0
    maps.append((one, np.zeros_like(one)))
    rng = np.random.default_rng(11)
    for _ in range(6):
        small = rng.choice(np.array([0, 3, 8, 14, 15, 16, 17], np.uint8), (6, 8), p=[.4, .15, .15, .075, .075, .075, .075])
        label = np.kron(small, np.ones((int(rng.integers(5, 30)), int(rng.integers(5, 30))), np.uint8))
        persons = np.kron(rng.integers(0, 3, (2, 2)).astype(np.uint8), np.ones((3, 4), np.uint8))
        maps.append((label, np.kron(persons, np.ones((label.shape[0] // 6, label.shape[1] // 8), np.uint8))))
    yy, xx = np.mgrid[:300, :400]
    blobs = np.zeros((300, 400), np.uint8)
    for cid, cy, cx, r in ((16, 80, 90, 40.3), (17, 210, 300, 55.7), (14, 60, 330, 33.1), (15, 240, 70, 47.9)):
        blobs[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = cid
    blobs[(blobs == 0) & ((xx + yy) % 7 < 2)] = 8
    blobs[(blobs == 0) & ((xx * 3 + yy) % 11 < 2)] = 3
    maps.append((blobs, (xx < 200).astype(np.uint8) + 1))
    return maps


def test_sides_decided_by_distances_equal_the_feature_transform_ties_included() -> None:
    """Where the nearest arm/leg of each side is equally near, the side is still the feature transform's pick:
    the same sides as the whole-image transform on maps full of exact ties, on a one-sided map, on smooth shapes
    and with no person map; some calls had ties to pick among (``_edt_pick``), some did not, and some picked
    without a transform of their box (the others had more ties than it has pixels to spare)."""
    from humanparse.pipeline import labelsets
    from humanparse.pipeline.labelsets import ATR_SIDED, _nearest_side
    from scipy import ndimage

    picks: list[int] = []
    whole: list[int] = []
    real_pick, real_edt = labelsets._edt_pick, ndimage.distance_transform_edt

    def counting_pick(*args: Any) -> Any:
        picks[-1] += 1
        return real_pick(*args)

    def counting_edt(*args: Any, **kwargs: Any) -> Any:
        whole[-1] += 1
        return real_edt(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        for label, persons in _tie_maps():
            for cihp_id, (left, right, side_ids) in ATR_SIDED.items():
                where = label == cihp_id
                for pm in (persons, np.zeros_like(persons)) if where.any() else ():
                    picks.append(0)
                    whole.append(0)
                    mp.setattr(labelsets, "_edt_pick", counting_pick)
                    mp.setattr(ndimage, "distance_transform_edt", counting_edt)
                    got = _nearest_side(label, pm, where, side_ids, (left, right))
                    mp.setattr(ndimage, "distance_transform_edt", real_edt)
                    want = _nearest_side_whole_image(label, pm, where, side_ids, (left, right))
                    assert np.array_equal(got, want)
    assert len(picks) >= 30 and max(picks) > 0 and min(picks) == 0
    assert any(p and not t for p, t in zip(picks, whole, strict=True))


@pytest.mark.parametrize("density", [0.002, 0.03, 0.3, 0.8])
def test_edt_pick_is_the_feature_transforms_pick(density: float) -> None:
    """``_edt_pick`` names the pixel scipy's feature transform names, at every pixel of random maps (ties
    everywhere on sparse ones), through its near search (exact reach, and a generous one: chunks of mixed
    reach) and through its fallback to the whole transform (a reach as large as the map)."""
    from humanparse.pipeline import labelsets
    from scipy import ndimage

    rng = np.random.default_rng(int(density * 1000))
    for _ in range(12):
        h, w = (int(v) for v in rng.integers(5, 90, 2))
        sided = rng.random((h, w)) < density
        if not sided.any():
            continue
        dist, (iy, ix) = ndimage.distance_transform_edt(~sided, return_indices=True)
        qy, qx = (a.ravel() for a in np.mgrid[:h, :w])
        exact = np.floor(dist.ravel()).astype(np.intp) + 2
        for reach in (exact, exact + rng.integers(0, 40, exact.size), np.full(exact.size, h + w)):
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(labelsets, "_PICK_CHUNK", 997)  # many chunks
                ny, nx = labelsets._edt_pick(sided, qy, qx, reach)
            assert np.array_equal(ny, iy.ravel()) and np.array_equal(nx, ix.ravel())
