"""OpenPose-18 keypoints per person: the conversion from PoseNet's 17, matching poses to parsed persons, the
JSON as VITON-HD's preprocessing reads it, and the real pose network (the lite tier's BodyPix) on CIHP photos."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import PEOPLE_PHOTO
from humanparse.pipeline.keypoints import (
    OPENPOSE18_NAMES,
    match_poses,
    openpose_document,
    person_keypoints,
    to_openpose18,
)
from PIL import Image

COCO17 = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
          "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
          "right_knee", "left_ankle", "right_ankle")


def read_like_viton_hd(fh: Any) -> np.ndarray:
    """What VITON-HD's dataset loader does with an OpenPose file: the first person's 2D pose, reshaped to
    (-1, 3), x and y kept."""
    pose_label = json.load(fh)
    pose_data = pose_label["people"][0]["pose_keypoints_2d"]
    pose_data = np.array(pose_data)
    pose_data = pose_data.reshape((-1, 3))[:, :2]
    return pose_data


def coco_pose(offset: float = 0.0, score: float = 0.9) -> np.ndarray:
    """A (17, 3) pose with keypoint i at x = 10 + i + offset, y = 20 + 2i."""
    return np.array([(10 + i + offset, 20 + 2 * i, score) for i in range(17)], np.float32)


def test_openpose18_order_neck_and_missing() -> None:
    pose = coco_pose()
    pose[COCO17.index("left_knee"), 2] = 0.1  # under the confidence bar
    pose[COCO17.index("right_ankle"), :2] = (500.0, 30.0)  # off a 100-wide image
    op = to_openpose18(pose, (200, 100))
    assert op.shape == (18, 3) and op.dtype == np.float32
    for name, coco in (("Nose", "nose"), ("RShoulder", "right_shoulder"), ("LWrist", "left_wrist"),
                       ("RHip", "right_hip"), ("LAnkle", "left_ankle"), ("REye", "right_eye"), ("LEar", "left_ear")):
        assert op[OPENPOSE18_NAMES.index(name)].tolist() == pytest.approx(pose[COCO17.index(coco)].tolist())
    ls, rs = pose[COCO17.index("left_shoulder")], pose[COCO17.index("right_shoulder")]
    assert op[1, :2].tolist() == pytest.approx(((ls[:2] + rs[:2]) / 2).tolist())  # neck: shoulders' midpoint
    assert op[OPENPOSE18_NAMES.index("LKnee")].tolist() == [0, 0, 0]
    assert op[OPENPOSE18_NAMES.index("RAnkle")].tolist() == [0, 0, 0]
    pose[COCO17.index("right_shoulder"), 2] = 0.0
    assert to_openpose18(pose, (200, 100))[1].tolist() == [0, 0, 0]  # no neck without both shoulders


def test_poses_match_persons_by_where_their_keypoints_land() -> None:
    persons = np.zeros((100, 120), np.uint8)
    persons[:, 5:50] = 1
    persons[:, 60:110] = 2
    a, b = coco_pose(offset=0), coco_pose(offset=55)  # a's keypoints on person 1, b's on person 2
    stray = coco_pose(offset=200)  # off to the side: nobody's
    matched = match_poses([stray, b, a], persons, 3)
    assert matched[1] is a and matched[2] is b and 3 not in matched
    per = person_keypoints([b, a], persons, 3)
    assert len(per) == 3 and (per[2] == 0).all()  # person 3 has no pose: all zeros, as OpenPose writes
    assert per[0][0].tolist() == pytest.approx(a[0].tolist())


def test_json_reads_as_viton_hd_reads_it() -> None:
    per = [to_openpose18(coco_pose(), (200, 100)), np.zeros((18, 3), np.float32)]
    doc = openpose_document(per)
    text = json.dumps(doc)
    assert [p["person_id"] for p in json.loads(text)["people"]] == [[1], [2]]
    pose = read_like_viton_hd(io.StringIO(text))
    assert pose.shape == (18, 2) and pose.dtype == np.float64
    assert np.allclose(pose, per[0][:, :2], atol=1e-3)
    one = read_like_viton_hd(io.StringIO(json.dumps(openpose_document(per, person=2))))
    assert (one == 0).all()


def test_lite_parse_keypoints_match_its_persons_and_the_pose_network(lite_parser: Any, shared_models: Path,
                                                                     people_photos: list[Path]) -> None:
    """On a photo the lite tier parses at full size (long side <= 640), BodyPix run alone for its poses
    (what runs beside M2FP) gives the lite parse's own poses; each person's matched keypoints lie on or near
    that person."""
    from humanparse.engine.pose import PoseNetwork

    net = PoseNetwork.from_lite_dirs([shared_models], threads=2)
    for path in [p for p in people_photos if max(Image.open(p).size) <= 640]:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        res = lite_parser.parse(rgb)
        alone = net.estimate(rgb)
        assert len(alone) == len(res.poses) >= 1
        for p, q in zip(alone, res.poses, strict=True):
            assert np.allclose(p, q, atol=1e-3)
        per = person_keypoints(res.poses, res.person_map, len(res.persons))
        assert sum(bool(k[:, 2].any()) for k in per) >= 1
        for person, kp in zip(res.persons, per, strict=True):
            seen = kp[kp[:, 2] > 0]
            if not len(seen):
                continue
            x0, y0, x1, y1 = person.bbox
            pad = 0.15 * max(x1 - x0, y1 - y0)
            inside = ((seen[:, 0] >= x0 - pad) & (seen[:, 0] <= x1 + pad) & (seen[:, 1] >= y0 - pad)
                      & (seen[:, 1] <= y1 + pad))
            assert inside.mean() >= 0.8, (path.stem, person.id)


@pytest.mark.slow
def test_m2fp_keypoints_come_from_the_pose_network_beside_it(m2fp_parser: Any, photo: np.ndarray) -> None:
    """M2FP (random weights: its persons are arbitrary) has no pose head: ``keypoints`` runs BodyPix on the
    photo and matches its poses to M2FP's persons; one entry per person whatever the match."""
    from humanparse.config import Settings
    from humanparse.entries.library import HumanParser
    from humanparse.exceptions import NoPerson

    parser = HumanParser(m2fp_parser, Settings())  # the session's M2FP engine, as humanparse.load builds it
    res = parser(photo)
    assert res.model.kind == "m2fp" and res._result.poses == []
    poses = parser.estimate_poses(photo)
    assert len(poses) >= 1 and all(p.shape == (17, 3) for p in poses)
    doc = res.keypoints
    assert [p["person_id"] for p in doc["people"]] == [[k] for k in range(1, len(res.people) + 1)]
    if res.people:
        assert res.tryon("full_body").mask.shape == photo.shape[:2]
    else:
        with pytest.raises(NoPerson):
            res.tryon("full_body")


def test_lite_keypoints_are_in_photo_pixels_when_the_parse_works_smaller(lite_parser: Any) -> None:
    """A photo over the lite tier's 640-pixel work size: its poses are carried to the photo's pixels. The same
    scene at twice the size gives the same poses at twice the coordinates (BodyPix sees nearly the same input)."""
    import cv2

    one = Image.open(PEOPLE_PHOTO).convert("RGB")  # two people side by side, 616x384: under the work size
    pair = Image.new("RGB", (2 * one.width - 152, one.height), (90, 100, 110))
    pair.paste(one.crop((76, 0, 384, 384)), (0, 0))
    pair.paste(one.crop((0, 0, 308, 384)).transpose(Image.Transpose.FLIP_LEFT_RIGHT), (308, 0))
    rgb = np.asarray(pair)
    big = cv2.resize(rgb, (rgb.shape[1] * 2, rgb.shape[0] * 2), interpolation=cv2.INTER_LINEAR)
    small_poses, big_poses = lite_parser.parse(rgb).poses, lite_parser.parse(big).poses
    assert len(small_poses) >= 2
    best = []
    for p in small_poses:
        seen = p[:, 2] >= 0.5
        expect = (p[seen, :2] + 0.5) * 2 - 0.5
        best.append(min(float(np.hypot(*(q[seen, :2] - expect).T).mean()) for q in big_poses))
    # px at the big size (1232x768; measured 1.2 and 2.5 px for the two people); a wrong scale or offset would
    # put them tens to hundreds of pixels off
    assert float(np.median(best)) < 10.0 and max(best) < 30.0, best


def test_python_api_keypoints_from_a_file(shared_models: Path, tmp_path: Path) -> None:
    """``humanparse.load("lite")`` on a file: one OpenPose entry per person, written and read back as VITON-HD
    reads a person's file."""
    import humanparse

    res = humanparse.load("lite", lite_dir=shared_models)(PEOPLE_PHOTO)
    doc = res.keypoints
    assert len(doc["people"]) == len(res.people) >= 1
    assert all(len(p["pose_keypoints_2d"]) == 54 for p in doc["people"])
    assert res.keypoint_arrays[0][:, 2].any()  # the strongest person has a pose
    f = tmp_path / "astronaut_keypoints.json"
    f.write_text(json.dumps(openpose_document(res.keypoint_arrays, person=1)))
    with f.open() as fh:
        pose = read_like_viton_hd(fh)
    assert pose.shape == (18, 2) and np.allclose(pose, res.keypoint_arrays[0][:, :2], atol=1e-3)
