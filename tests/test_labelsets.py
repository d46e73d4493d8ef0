"""LIP and ATR label maps: every CIHP id maps as docs/tryon.md documents, one test per id, and back."""

from __future__ import annotations

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
