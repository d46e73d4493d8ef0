"""Try-on masks and agnostic images: invariants on CIHP's ground-truth label maps (not a model's output), and
the geometry on hand-made figures (sleeves, a long dress, a person cut by the frame, two people overlapping)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from conftest import CIHP, StubParser
from humanparse.exceptions import NoPerson, NothingToMask, UnknownCategory, UnknownPerson
from humanparse.pipeline.tryon import AGNOSTIC_GREY, CATEGORIES, tryon
from PIL import Image

# CIHP ids
HAT, HAIR, GLOVE, SUNGLASSES, UPPER, DRESS, COAT, SOCKS, PANTS, TORSO = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
SCARF, SKIRT, FACE, L_ARM, R_ARM, L_LEG, R_LEG, L_SHOE, R_SHOE = 11, 12, 13, 14, 15, 16, 17, 18, 19
GARMENTS = (HAT, GLOVE, SUNGLASSES, UPPER, DRESS, COAT, SOCKS, PANTS, SCARF, SKIRT, L_SHOE, R_SHOE)
CATEGORY_PARTS = {"upper_body": (UPPER, COAT, TORSO, L_ARM, R_ARM), "lower_body": (PANTS, SKIRT, L_LEG, R_LEG),
                  "dresses": (UPPER, DRESS, COAT, PANTS, SKIRT, TORSO, L_ARM, R_ARM, L_LEG, R_LEG),
                  "full_body": (UPPER, DRESS, COAT, PANTS, SKIRT, TORSO, L_ARM, R_ARM, L_LEG, R_LEG)}
REPLACED = {"upper_body": (UPPER, COAT), "lower_body": (PANTS, SKIRT),
            "dresses": (UPPER, DRESS, COAT, PANTS, SKIRT), "full_body": (UPPER, DRESS, COAT, PANTS, SKIRT)}


def check_invariants(rgb: np.ndarray, label: np.ndarray, persons: np.ndarray, category: str, person: int,
                     out_mask: np.ndarray, agnostic: np.ndarray) -> None:
    """The promise of a try-on mask: every pixel of the category's garments is in the mask; no pixel of face, hair, the
    garments the category keeps, or another person is; the agnostic image is the photo outside the mask."""
    own = persons == person
    replaced = own & np.isin(label, REPLACED[category])
    kept = own & np.isin(label, (FACE, HAIR, *[g for g in GARMENTS if g not in REPLACED[category]]))
    others = (persons > 0) & ~own
    assert not (replaced & ~out_mask).any(), "a garment pixel of the category is outside the mask"
    assert not (out_mask & kept).any(), "the mask covers face, hair or a kept garment"
    assert not (out_mask & others).any(), "the mask covers another person"
    assert np.array_equal(agnostic[~out_mask], rgb[~out_mask])
    assert (agnostic[out_mask] == AGNOSTIC_GREY).all()


# ----------------------------------------------------------------------------------------- CIHP ground truth
def cihp_persons(label: np.ndarray) -> tuple[np.ndarray, int]:
    """Persons of a ground-truth map (CIHP's label PNGs carry no instance ids): its connected components,
    without specks under 1 % of the largest (0032190 has a 1-pixel one). A component may hold several people
    who touch (0005008's group is one); the invariants hold per component all the same."""
    from scipy import ndimage

    comp, n = ndimage.label(label > 0)
    sizes = np.bincount(comp.ravel())[1:]
    keep = [i + 1 for i in range(n) if sizes[i] >= 0.01 * sizes.max()]
    persons = np.zeros(label.shape, np.uint8)
    for k, c in enumerate(keep, start=1):
        persons[comp == c] = k
    return persons, len(keep)


def cihp_labels() -> list[Path]:
    return sorted((CIHP / "labels").glob("*.png"))


@pytest.fixture(scope="module")
def pose_net() -> object:
    from humanparse.engine.pose import PoseNetwork
    from humanparse.models import packaged_lite_dir

    return PoseNetwork.from_lite_dirs([packaged_lite_dir()], threads=2)


@pytest.mark.skipif(not cihp_labels(), reason="../shared/data/cihp (ground-truth label maps) not present")
@pytest.mark.parametrize("with_pose", [False, True], ids=["parse-only", "with-keypoints"])
@pytest.mark.parametrize("stem", [p.stem for p in cihp_labels()] or ["none"])
def test_cihp_ground_truth_every_person_and_category(stem: str, with_pose: bool, pose_net: object) -> None:
    from humanparse.pipeline.keypoints import person_keypoints

    label = np.asarray(Image.open(CIHP / "labels" / f"{stem}.png"))
    rgb = np.asarray(Image.open(CIHP / "images" / f"{stem}.jpg").convert("RGB"))
    persons, n = cihp_persons(label)
    assert n >= 1
    kps = person_keypoints(pose_net.estimate(rgb), persons, n) if with_pose else [None] * n  # type: ignore[attr-defined]
    for category in CATEGORIES:
        for k in range(1, n + 1):
            kp = kps[k - 1]
            if not ((persons == k) & np.isin(label, CATEGORY_PARTS[category])).any():  # 0002190: no legs
                with pytest.raises(NothingToMask, match=category):
                    tryon(rgb, label, persons, n, category, k)
                continue
            out = tryon(rgb, label, persons, n, category, k, keypoints=kp if kp is not None and kp[:, 2].any() else None)
            check_invariants(rgb, label, persons, category, k, out.mask, out.agnostic)
            own = persons == k
            garments = own & np.isin(label, REPLACED[category])
            if garments.any():  # grown beyond the garment itself, towards a new garment's extent
                assert out.mask.sum() > garments.sum()
            # the agnostic parse drops exactly the repainted garments and parts of this person
            gone = (out.parse_agnostic == 0) & (label > 0)
            assert not (gone & ~out.mask).any() and not (gone & ~own).any()


# ------------------------------------------------------------------------------------------- figures
def draw_person(label: np.ndarray, persons: np.ndarray, pid: int, cx: int, top: int, *, dress: bool = False,
                short_sleeves: bool = True) -> np.ndarray:
    """Paint a standing, camera-facing person (about 335 px tall) into ``label``/``persons`` (over whatever is
    there: this one is in front) and return its (18, 3) OpenPose keypoints (x, y, 0.9; off-image ones too)."""
    h, w = label.shape

    def rect(x0: int, x1: int, y0: int, y1: int, lab: int) -> None:
        ys, xs = slice(max(0, top + y0), max(0, min(h, top + y1))), slice(max(0, cx + x0), max(0, min(w, cx + x1)))
        label[ys, xs] = lab
        persons[ys, xs] = pid

    def ellipse(ex: int, ey: int, ax: int, ay: int, lab: int) -> None:
        yy, xx = np.mgrid[0:h, 0:w]
        m = ((xx - (cx + ex)) / ax) ** 2 + ((yy - (top + ey)) / ay) ** 2 <= 1.0
        label[m] = lab
        persons[m] = pid

    ellipse(0, 22, 24, 22, HAIR)
    ellipse(0, 32, 18, 20, FACE)
    rect(-8, 8, 50, 58, TORSO)
    for x0, x1, arm in ((-54, -44, R_ARM), (44, 54, L_ARM)):  # the person's right arm is on the image's left
        rect(x0, x1, 60, 200, arm)
        rect(x0, x1, 60, 100 if short_sleeves else 180, UPPER)
    for x0, x1, leg, shoe in ((-34, -12, R_LEG, R_SHOE), (12, 34, L_LEG, L_SHOE)):
        rect(x0, x1, 170, 320, leg)
        if not dress:
            rect(x0, x1, 170, 300, PANTS)
        rect(x0 - 2, x1 + 2, 320, 335, shoe)
    rect(-40, 40, 58, 170, UPPER)
    if dress:
        rect(-40, 40, 58, 170, DRESS)
        rect(-42, 42, 170, 260, DRESS)
    pts = {0: (0, 32), 1: (0, 60), 2: (-40, 62), 3: (-49, 130), 4: (-49, 180), 5: (40, 62), 6: (49, 130),
           7: (49, 180), 8: (-23, 170), 9: (-23, 245), 10: (-23, 318), 11: (23, 170), 12: (23, 245), 13: (23, 318),
           14: (-7, 27), 15: (7, 27), 16: (-16, 30), 17: (16, 30)}
    kp = np.zeros((18, 3), np.float32)
    for i, (x, y) in pts.items():
        kp[i] = (cx + x, top + y, 0.9)
    return kp


def blank(h: int = 380, w: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8),
            rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_sleeves_grow_along_the_arms_and_stop_at_the_hands() -> None:
    label, persons, rgb = blank()
    kp = draw_person(label, persons, 1, 150, 20)
    with_kp = tryon(rgb, label, persons, 1, "upper_body", 1, keypoints=kp)
    plain = tryon(rgb, label, persons, 1, "upper_body", 1)
    for out in (with_kp, plain):
        check_invariants(rgb, label, persons, "upper_body", 1, out.mask, out.agnostic)
        assert out.mask[20 + 140, 150 - 49]  # bare forearm (a long sleeve may cover it)
        assert out.mask[20 + 120, 150 - 42]  # the gap between arm and torso
        assert not out.mask[label == PANTS].any() and not out.mask[label == FACE].any()
    # a wider sleeve than the arm: background beside the upper arm, past the margin, only with keypoints
    assert with_kp.mask[20 + 110, 150 - 64] and not plain.mask[20 + 110, 150 - 64]
    # hands (arm past the wrist keypoint) stay; without keypoints CIHP cannot tell a hand from an arm
    hand = (label == R_ARM) & (np.arange(label.shape[0])[:, None] > 20 + 185)
    assert hand.any() and not (with_kp.mask & hand).any() and plain.mask[hand].all()


def test_long_dress_hem_flares_between_and_beyond_the_legs() -> None:
    label, persons, rgb = blank()
    kp = draw_person(label, persons, 1, 150, 20, dress=True)
    dresses = tryon(rgb, label, persons, 1, "dresses", 1, keypoints=kp)
    full = tryon(rgb, label, persons, 1, "full_body", 1, keypoints=kp)
    for cat, out in (("dresses", dresses), ("full_body", full)):
        check_invariants(rgb, label, persons, cat, 1, out.mask, out.agnostic)
        assert out.mask[label == DRESS].all() and out.mask[20 + 290, 150 - 20]  # the dress; bare shin
        assert not out.mask[(label == R_SHOE) | (label == L_SHOE)].any()
    # background between the shins, and outside a shin past the looser-fit margin (inside the hem's cone)
    between, beyond = (20 + 300, 150), (20 + 315, 150 - 44)
    assert dresses.mask[between] and not full.mask[between]
    assert dresses.mask[beyond] and not full.mask[beyond]
    # a lower-body garment is tried on under the dress: the dress stays, the legs may be covered
    lower = tryon(rgb, label, persons, 1, "lower_body", 1, keypoints=kp)
    check_invariants(rgb, label, persons, "lower_body", 1, lower.mask, lower.agnostic)
    assert not lower.mask[label == DRESS].any() and lower.mask[20 + 290, 150 + 20]


def test_person_cut_by_the_frame() -> None:
    """Cut at the thighs and at the image's left edge: keypoints off the image are not seen (0, 0, 0), and the
    mask runs to the edges without wrapping or failing."""
    from humanparse.pipeline.keypoints import to_openpose18

    label, persons, rgb = blank(h=230, w=200)
    kp18 = draw_person(label, persons, 1, 30, 20)
    # back to PoseNet's 17 (x, y, score) to go through the same conversion the engine's poses do
    coco = np.zeros((17, 3), np.float32)
    for op, c in enumerate((0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)):
        if c >= 0:
            coco[c] = kp18[op]
    kp = to_openpose18(coco, label.shape)
    assert (kp[[9, 10, 12, 13]] == 0).all()  # knees and ankles are below the bottom edge
    assert (kp[2] == 0).all() and (kp[5] > 0).all()  # the right shoulder is left of the left edge
    for cat in CATEGORIES:
        out = tryon(rgb, label, persons, 1, cat, 1, keypoints=kp)
        check_invariants(rgb, label, persons, cat, 1, out.mask, out.agnostic)
    full = tryon(rgb, label, persons, 1, "full_body", 1, keypoints=kp)
    assert full.mask[-1].any() and full.mask[:, 0].any()


def test_two_people_overlapping() -> None:
    label, persons, rgb = blank(w=360)
    kp_back = draw_person(label, persons, 1, 140, 20)
    kp_front = draw_person(label, persons, 2, 215, 30)  # in front, hiding the back person's left side
    assert (persons == 1).sum() > 0 and ((label == UPPER) & (persons == 1)).any()
    for pid, kp in ((1, kp_back), (2, kp_front)):
        for cat in CATEGORIES:
            out = tryon(rgb, label, persons, 2, cat, pid, keypoints=kp)
            check_invariants(rgb, label, persons, cat, pid, out.mask, out.agnostic)
    back = tryon(rgb, label, persons, 2, "upper_body", 1, keypoints=kp_back)
    front = persons == 2
    assert np.array_equal(back.agnostic[front], rgb[front])  # the person in front is left as photographed
    assert back.parse_agnostic[front].tolist() == label[front].tolist()


def test_bad_requests() -> None:
    label, persons, rgb = blank()
    draw_person(label, persons, 1, 150, 20)
    with pytest.raises(UnknownCategory) as e:
        tryon(rgb, label, persons, 1, "hats", 1)
    assert e.value.code == "unknown_category" and "upper_body" in str(e.value) and e.value.http_status == 422
    for bad in (0, 2, -1, True):
        with pytest.raises(UnknownPerson) as ep:
            tryon(rgb, label, persons, 1, "upper_body", bad)  # type: ignore[arg-type]
        assert ep.value.code == "unknown_person" and "1..1" in str(ep.value)
    head = np.where(np.isin(label, (FACE, HAIR)), label, 0).astype(np.uint8)  # a portrait: face and hair only
    with pytest.raises(NothingToMask) as em:
        tryon(rgb, head, (head > 0).astype(np.uint8), 1, "lower_body", 1)
    assert em.value.code == "nothing_to_mask" and "Pants" in str(em.value)
    empty = np.zeros_like(label)
    with pytest.raises(NoPerson) as en:
        tryon(rgb, empty, empty, 0, "upper_body")
    assert en.value.code == "no_person" and en.value.to_dict()["error"] == "no_person"


# ------------------------------------------------------------------------------------------ Python API
def test_parsed_api_on_a_stub_parse(photo: np.ndarray) -> None:
    """Through ``humanparse``'s Python API: the stub parse (a box: face, upper clothes, pants) of a photo."""
    from humanparse.config import Settings
    from humanparse.entries.library import HumanParser

    res = HumanParser(StubParser(), Settings())(photo)  # type: ignore[arg-type]
    out = res.tryon("upper_body", person=1)
    assert out.mask.shape == res.labels.shape and out.agnostic.shape == photo.shape
    assert out.mask_image().dtype == np.uint8 and set(np.unique(out.mask_image())) == {0, 255}
    files = {k: np.asarray(Image.open(io.BytesIO(v))) for k, v in out.files().items()}
    assert np.array_equal(files["mask.png"] > 0, out.mask) and np.array_equal(files["agnostic.png"], out.agnostic)
    assert np.array_equal(files["parse_agnostic.png"], out.parse_agnostic)
    check_invariants(photo, res.labels, res.persons, "upper_body", 1, out.mask, out.agnostic)
    assert res.tryon("lower_body").person == 1
    with pytest.raises(UnknownPerson):
        res.tryon("upper_body", person=2)
    with pytest.raises(UnknownCategory):
        res.tryon("shoes")
    assert set(np.unique(res.labels_as("atr"))) == {0, 4, 6, 11}  # upper clothes, pants, face in ATR ids
    assert np.array_equal(res.person_labels(1), np.where(res.persons == 1, res.labels, 0))
    doc = res.keypoints  # a model without a pose head: the lite pose network ran beside it
    assert len(doc["people"]) == 1 and len(doc["people"][0]["pose_keypoints_2d"]) == 54
    names = [g["name"] for g in res.outfit[0]["garments"]]
    assert names == ["upper_clothes", "pants"]


# ---------------------------------------------------------------------------------------------- outfit
def test_outfit_names_garments_area_and_colour() -> None:
    from humanparse.pipeline.outfit import COLOR_PALETTE, outfit

    label, persons, _ = blank()
    draw_person(label, persons, 1, 150, 20, short_sleeves=False)
    rng = np.random.default_rng(1)
    rgb = np.zeros(label.shape + (3,), np.uint8)
    shades = {UPPER: (30, 80, 190), PANTS: (120, 75, 45), L_SHOE: (235, 235, 235), R_SHOE: (235, 235, 235),
              FACE: (230, 190, 160), HAIR: (40, 30, 20)}
    for lab, c in shades.items():
        rgb[label == lab] = c
    rgb = np.clip(rgb.astype(np.int16) + rng.integers(-12, 13, rgb.shape), 0, 255).astype(np.uint8)
    rgb[(label == UPPER) & (np.arange(label.shape[1])[None, :] % 9 == 0)] = (240, 240, 240)  # thin white stripes
    (doc,) = outfit(rgb, label, persons, 1)
    items = {g["name"]: g for g in doc["garments"]}
    assert list(items) == ["upper_clothes", "pants", "shoes"] and doc["person"] == 1
    assert items["upper_clothes"]["color"]["name"] == "blue"
    assert items["pants"]["color"]["name"] == "brown" and items["shoes"]["color"]["name"] == "white"
    assert items["shoes"]["labels"] == [L_SHOE, R_SHOE]
    assert items["pants"]["pixels"] == int((label == PANTS).sum())
    assert items["pants"]["share"] == round((label == PANTS).sum() / (persons == 1).sum(), 4)
    r, g, b = (int(items["upper_clothes"]["color"]["hex"][i:i + 2], 16) for i in (1, 3, 5))
    assert abs(r - 30) <= 8 and abs(g - 80) <= 8 and abs(b - 190) <= 8  # the shirt's own shade, not the stripes
    assert len(COLOR_PALETTE) <= 16


def test_growth_of_a_large_person_is_a_disk() -> None:
    """Beyond a 16 px radius the growth is a distance transform (its cost does not rise with the radius): the
    same region as OpenCV's ellipse dilation but for a thin rim."""
    import cv2
    from humanparse.pipeline.tryon import _grow

    core = np.zeros((900, 700), bool)
    core[200:700, 250:450] = True
    core[100:200, 320:380] = True
    for r in (5, 40):
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        dilated = cv2.dilate(core.astype(np.uint8), disk) > 0
        grown = _grow(core, r) > 0
        assert grown[core].all() and grown.sum() > core.sum()
        assert (grown != dilated).sum() <= 0.01 * dilated.sum(), r
    assert np.array_equal(_grow(core, 5) > 0, cv2.dilate(core.astype(np.uint8), cv2.getStructuringElement(
        cv2.MORPH_ELLIPSE, (11, 11))) > 0)
