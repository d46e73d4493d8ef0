"""Body keypoints per person in the OpenPose-18 layout that VITON-HD-family code reads.

OpenPose's COCO-18 body model is COCO's 17 keypoints reordered, plus a neck: 0 nose, 1 neck, 2 right shoulder,
3 right elbow, 4 right wrist, 5 left shoulder, 6 left elbow, 7 left wrist, 8 right hip, 9 right knee, 10 right
ankle, 11 left hip, 12 left knee, 13 left ankle, 14 right eye, 15 left eye, 16 right ear, 17 left ear. A file
is ``{"version": 1.3, "people": [{"pose_keypoints_2d": [x0, y0, c0, x1, y1, c1, ...]}]}`` (54 floats a person);
a keypoint not seen is written ``0, 0, 0``, as OpenPose writes it.

Poses come from the engine (``ParseResult.poses``: (17, 3) x, y, score in PoseNet order, engine/pose.py) in no
particular order; ``match_poses`` gives each parsed person the pose whose keypoints land on its pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

OPENPOSE18_NAMES: tuple[str, ...] = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "RHip", "RKnee", "RAnkle",
    "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar",
)
NECK = 1
# OpenPose-18 index → PoseNet/COCO-17 index (-1: the neck, made from the shoulders)
_FROM_COCO17 = (0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
_L_SHOULDER, _R_SHOULDER = 5, 6
MIN_KEYPOINT_SCORE = 0.3  # below this PoseNet's keypoint is a guess the decoder made along the skeleton
MATCH_RADIUS_FRACTION = 0.02  # a keypoint counts for a person within this share of the image diagonal


def to_openpose18(pose: npt.NDArray[np.float32], hw: tuple[int, int],
                  min_score: float = MIN_KEYPOINT_SCORE) -> npt.NDArray[np.float32]:
    """(17, 3) x, y, score (PoseNet order) → (18, 3) float32 x, y, confidence in OpenPose-18 order. Keypoints
    under ``min_score`` or outside the (H, W) image become 0, 0, 0; the neck is the shoulders' midpoint (its
    confidence the smaller of theirs) when both are kept, else 0, 0, 0."""
    h, w = hw
    kp = np.asarray(pose, dtype=np.float32).copy()
    inside = (kp[:, 0] >= -0.5) & (kp[:, 0] <= w - 0.5) & (kp[:, 1] >= -0.5) & (kp[:, 1] <= h - 0.5)
    kept = inside & (kp[:, 2] >= min_score)
    kp[:, 0] = np.clip(kp[:, 0], 0, w - 1)
    kp[:, 1] = np.clip(kp[:, 1], 0, h - 1)
    kp[~kept] = 0.0
    out = np.zeros((18, 3), dtype=np.float32)
    for op, coco in enumerate(_FROM_COCO17):
        if coco >= 0:
            out[op] = kp[coco]
    if kept[_L_SHOULDER] and kept[_R_SHOULDER]:
        out[NECK, :2] = (kp[_L_SHOULDER, :2] + kp[_R_SHOULDER, :2]) / 2.0
        out[NECK, 2] = min(kp[_L_SHOULDER, 2], kp[_R_SHOULDER, 2])
    return out


def match_poses(poses: list[npt.NDArray[np.float32]], person_map: npt.NDArray[np.uint8], n_persons: int,
                min_score: float = MIN_KEYPOINT_SCORE) -> dict[int, npt.NDArray[np.float32]]:
    """Person id (1..n_persons) → the (17, 3) pose that is that person's, for the persons that have one.

    A pose votes for a person with each confident keypoint that lands on that person's pixels of ``person_map``
    ((H, W) uint8, 0 = nobody) or near them (keypoints such as wrists and ears sit on a part's edge): the person
    id most frequent in a small window around the keypoint. Pairs are then taken greedily, most votes first
    (score sum breaks ties), one pose per person and one person per pose."""
    h, w = person_map.shape
    r = max(2, int(round(MATCH_RADIUS_FRACTION * float(np.hypot(h, w)))))
    votes = np.zeros((len(poses), n_persons + 1), dtype=np.float64)
    for j, pose in enumerate(poses):
        for x, y, c in pose:
            if c < min_score or not (-0.5 <= x <= w - 0.5 and -0.5 <= y <= h - 0.5):
                continue
            xi, yi = int(round(float(x))), int(round(float(y)))
            win = person_map[max(0, yi - r):yi + r + 1, max(0, xi - r):xi + r + 1]
            counts = np.bincount(win.ravel(), minlength=n_persons + 1)[: n_persons + 1]
            counts[0] = 0
            if counts.any():
                votes[j, int(counts.argmax())] += 1.0 + float(c) * 1e-3  # count first, confidence breaks ties
    out: dict[int, npt.NDArray[np.float32]] = {}
    while votes.size and votes.max() > 0:
        j, k = (int(v) for v in np.unravel_index(int(votes.argmax()), votes.shape))
        out[k] = poses[j]
        votes[j, :] = 0
        votes[:, k] = 0
    return out


def person_keypoints(poses: list[npt.NDArray[np.float32]], person_map: npt.NDArray[np.uint8],
                     n_persons: int) -> list[npt.NDArray[np.float32]]:
    """One (18, 3) float32 OpenPose-18 array per person, index k-1 for person k; all zeros for a person no pose
    matched (OpenPose's way of saying nothing was seen)."""
    hw = (int(person_map.shape[0]), int(person_map.shape[1]))
    matched = match_poses(poses, person_map, n_persons)
    return [to_openpose18(matched[k], hw) if k in matched else np.zeros((18, 3), np.float32)
            for k in range(1, n_persons + 1)]


def openpose_document(per_person: list[npt.NDArray[np.float32]], person: int | None = None) -> dict[str, Any]:
    """OpenPose's JSON layout: ``people[k-1]`` is person k (``person_id`` says so), each with
    ``pose_keypoints_2d`` = 54 floats (18 × x, y, c). With ``person``, only that person (people[0], the one
    VITON-HD's loader reads)."""
    chosen = list(enumerate(per_person, start=1))
    if person is not None:
        chosen = [chosen[person - 1]]
    people = [{"person_id": [k], "pose_keypoints_2d": [round(float(v), 3) for v in kp.reshape(-1)],
               "face_keypoints_2d": [], "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": []}
              for k, kp in chosen]
    return {"version": 1.3, "people": people}
