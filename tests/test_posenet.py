"""PoseNet multi-pose decoding and pixel → person assignment on synthetic fields with a known answer."""

from __future__ import annotations

import numpy as np
from humanparse.engine.posenet import NUM_KEYPOINTS, POSE_CHAIN, assign_to_poses, decode_poses, pixel_keypoint_votes

STRIDE = 16


def _skeleton(cy: float, cx: float, scale: float) -> np.ndarray:
    """(17, 2) y, x of an upright person centred at (cy, cx), in input pixels."""
    rel = np.array([
        (-4, 0), (-4.3, -0.3), (-4.3, 0.3), (-4.1, -0.6), (-4.1, 0.6),  # nose, eyes, ears
        (-3, -1), (-3, 1), (-1.5, -1.3), (-1.5, 1.3), (0, -1.4), (0, 1.4),  # shoulders, elbows, wrists
        (0, -0.6), (0, 0.6), (2, -0.6), (2, 0.6), (4, -0.6), (4, 0.6),  # hips, knees, ankles
    ], dtype=np.float32)
    return np.array([cy, cx], dtype=np.float32) + rel * scale


def _fields(people: list[np.ndarray], gh: int, gw: int) -> dict[str, np.ndarray]:
    """Heatmap peaks at each keypoint's cell; exact short offsets; displacements that point along each edge
    of the nearest person (as a trained network's would, near its own keypoints)."""
    heat = np.full((gh, gw, NUM_KEYPOINTS), -8.0, dtype=np.float32)
    short = np.zeros((gh, gw, 2 * NUM_KEYPOINTS), dtype=np.float32)
    fwd = np.zeros((gh, gw, 2 * len(POSE_CHAIN)), dtype=np.float32)
    bwd = np.zeros_like(fwd)
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32) * STRIDE
    for k in range(NUM_KEYPOINTS):
        # short offsets from every cell to the nearest person's keypoint k
        d = np.stack([np.hypot(yy - p[k, 0], xx - p[k, 1]) for p in people])
        near = d.argmin(0)
        ky = np.choose(near, [np.full_like(yy, p[k, 0]) for p in people])
        kx = np.choose(near, [np.full_like(xx, p[k, 1]) for p in people])
        short[..., k], short[..., k + NUM_KEYPOINTS] = ky - yy, kx - xx
        for p, score in zip(people, np.linspace(4.0, 2.0, len(people)), strict=True):
            cy, cx = int(round(p[k, 0] / STRIDE)), int(round(p[k, 1] / STRIDE))
            heat[cy, cx, k] = score
    for e, (parent, child) in enumerate(POSE_CHAIN):
        d = np.stack([np.hypot(yy - p[parent, 0], xx - p[parent, 1]) for p in people])
        near = d.argmin(0)
        vec = np.stack([p[child] - p[parent] for p in people])[near]  # (gh, gw, 2)
        fwd[..., e], fwd[..., e + len(POSE_CHAIN)] = vec[..., 0], vec[..., 1]
        d = np.stack([np.hypot(yy - p[child, 0], xx - p[child, 1]) for p in people])
        near = d.argmin(0)
        vec = np.stack([p[parent] - p[child] for p in people])[near]
        bwd[..., e], bwd[..., e + len(POSE_CHAIN)] = vec[..., 0], vec[..., 1]
    return {"heatmaps": heat, "short_offsets": short, "displacement_fwd": fwd, "displacement_bwd": bwd}


def test_decodes_two_people_side_by_side() -> None:
    a, b = _skeleton(200, 150, 30), _skeleton(210, 330, 30)
    f = _fields([a, b], 30, 32)
    poses = decode_poses(f["heatmaps"], f["short_offsets"], f["displacement_fwd"], f["displacement_bwd"])
    assert len(poses) == 2
    got = sorted((p.keypoints for p in poses), key=lambda k: float(k[:, 1].mean()))
    for want, have in zip((a, b), got, strict=True):
        assert np.abs(have - want).max() < 1.0  # every keypoint, to the pixel
    assert all(p.keypoint_scores.min() > 0.5 for p in poses)


def test_no_people_no_poses() -> None:
    heat = np.full((20, 20, NUM_KEYPOINTS), -6.0, dtype=np.float32)
    zeros34 = np.zeros((20, 20, 34), np.float32)
    zeros32 = np.zeros((20, 20, 32), np.float32)
    assert decode_poses(heat, zeros34, zeros32, zeros32) == []


def test_votes_walk_the_offset_field_and_pick_the_right_person() -> None:
    """A long offset that covers only half the way (as far-away pixels' do) reaches the keypoint when re-read
    where it lands; pixels then go to the pose their votes land on."""
    a, b = _skeleton(200, 150, 30), _skeleton(210, 330, 30)
    gh, gw = 30, 32
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32) * STRIDE
    owner = (xx > 240).astype(int)  # left half belongs to a, right half to b
    long = np.zeros((gh, gw, 34), np.float32)
    for k in range(NUM_KEYPOINTS):
        ky = np.where(owner == 1, b[k, 0], a[k, 0])
        kx = np.where(owner == 1, b[k, 1], a[k, 1])
        long[..., k], long[..., k + NUM_KEYPOINTS] = 0.5 * (ky - yy), 0.5 * (kx - xx)  # half way only
    ys, xs = np.nonzero(np.ones((gh, gw), bool))
    one_step = pixel_keypoint_votes(long, ys, xs, refine_steps=0)
    walked = pixel_keypoint_votes(long, ys, xs, refine_steps=10)
    target = np.where(owner[ys, xs][:, None, None] == 1, b[None], a[None])
    assert np.abs(walked - target).max() <= STRIDE  # within one cell everywhere
    assert np.abs(one_step - target).max() > 4 * STRIDE  # (the single step was far off)
    f = _fields([a, b], gh, gw)
    poses = decode_poses(f["heatmaps"], f["short_offsets"], f["displacement_fwd"], f["displacement_bwd"])
    best, dist = assign_to_poses(walked, poses)
    left_pose = int(np.argmin([p.keypoints[:, 1].mean() for p in poses]))
    assert np.array_equal(best == left_pose, owner[ys, xs] == 0)
    assert np.all(dist < STRIDE)
