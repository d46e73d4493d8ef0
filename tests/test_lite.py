"""The lite tier on real CIHP photos with ground truth (trained BodyPix + PAN from ../shared/models)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from conftest import cihp_images
from humanparse.engine.lite import SUPPORTED
from PIL import Image


def test_labels_persons_and_silhouette(lite_parser: Any, cihp: Path) -> None:
    ious = []
    for p in cihp_images():
        rgb = np.asarray(Image.open(p).convert("RGB"))
        gt = np.asarray(Image.open(cihp / "labels" / f"{p.stem}.png"))
        res = lite_parser.parse(rgb)
        assert res.label_map.shape == gt.shape and res.label_map.dtype == np.uint8
        assert set(np.unique(res.label_map)) <= set(SUPPORTED)  # honest: only ids it can produce
        pred, g = res.label_map > 0, gt > 0
        ious.append((pred & g).sum() / (pred | g).sum())
        # every person pixel belongs to a listed person, and each listed person owns pixels
        assert set(np.unique(res.person_map)) - {0} == {q.id for q in res.persons}
        assert all(q.area > 0 and q.parts for q in res.persons)
    assert np.mean(ious) > 0.65  # silhouette of the people (BodyPix person IoU on these: ~0.74)


def test_one_instance_per_person(lite_parser: Any, cihp: Path) -> None:
    """Counted by eye on the photos: the people each photo is of (small background people are background, as
    in CIHP's annotation). Each instance is a whole person: it has a head (a person cut at the hips would
    leave a headless half) and reaches down past the middle of the body."""
    for stem, people in (("0005008", 7), ("0012008", 3), ("0026375", 3), ("0032190", 2)):
        res = lite_parser.parse(np.asarray(Image.open(cihp / "images" / f"{stem}.jpg").convert("RGB")))
        assert len(res.persons) == people, stem
        for q in res.persons:
            assert {2, 13} & set(q.parts), (stem, q.id, q.parts)  # hair or face
            body = set(q.parts) & {5, 9, 10, 14, 15, 16, 17, 18, 19}
            assert body, (stem, q.id, q.parts)


def test_left_right_follow_cihp(lite_parser: Any, cihp: Path) -> None:
    """CIHP's Left-arm is the person's own left: on the camera-facing children, GT and lite agree on sides."""
    rgb = np.asarray(Image.open(cihp / "images" / "0026375.jpg").convert("RGB"))
    gt = np.asarray(Image.open(cihp / "labels" / "0026375.png"))
    lab = lite_parser.parse(rgb).label_map
    both = (gt == 14) | (gt == 15)
    agree = ((lab == gt) & both).sum()
    swapped = (((lab == 14) & (gt == 15)) | ((lab == 15) & (gt == 14))).sum()
    assert agree > swapped
