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


def test_person_counts(lite_parser: Any, cihp: Path) -> None:
    seven = lite_parser.parse(np.asarray(Image.open(cihp / "images" / "0005008.jpg").convert("RGB")))
    three = lite_parser.parse(np.asarray(Image.open(cihp / "images" / "0026375.jpg").convert("RGB")))
    assert 6 <= len(seven.persons) <= 8  # seven adults in a row
    assert 2 <= len(three.persons) <= 4  # three children


def test_left_right_follow_cihp(lite_parser: Any, cihp: Path) -> None:
    """CIHP's Left-arm is the person's own left: on the camera-facing children, GT and lite agree on sides."""
    rgb = np.asarray(Image.open(cihp / "images" / "0026375.jpg").convert("RGB"))
    gt = np.asarray(Image.open(cihp / "labels" / "0026375.png"))
    lab = lite_parser.parse(rgb).label_map
    both = (gt == 14) | (gt == 15)
    agree = ((lab == gt) & both).sum()
    swapped = (((lab == 14) & (gt == 15)) | ((lab == 15) & (gt == 14))).sum()
    assert agree > swapped
