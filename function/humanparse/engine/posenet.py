"""Multi-person pose decoding and pixel-to-person assignment for BodyPix/PoseNet outputs.

This is PoseNet's published "multi-pose" decoder (greedy: strongest keypoint peaks become roots; each root grows
a skeleton along the 16 tree edges with the mid-range displacement fields, refined by the short offsets) and
BodyPix's instance assignment (each person pixel follows its long-range offsets to where it says every keypoint
of its own person is; it belongs to the decoded pose whose keypoints lie closest). Written from the algorithm's
description, in numpy.

Array contracts (all at the network's output stride ``stride``, grid (gh, gw), positions in network-input
pixels, (y, x) order):
- ``heatmaps``: (gh, gw, 17) float32 keypoint logits (sigmoid applied here);
- ``short_offsets``: (gh, gw, 34): dy for keypoints 0..16, then dx;
- ``displacement_fwd`` / ``displacement_bwd``: (gh, gw, 32): dy for edges 0..15, then dx;
- ``long_offsets``: (gh, gw, 34): like ``short_offsets`` but long-range (person pixel → own keypoint).
Keypoints are COCO's 17 in PoseNet order (nose, leftEye, rightEye, leftEar, rightEar, leftShoulder, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

NUM_KEYPOINTS = 17
# PoseNet's skeleton tree, (parent, child) in keypoint ids; the edge index selects the displacement channel.
POSE_CHAIN: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 3), (0, 2), (2, 4), (0, 5), (5, 7), (7, 9), (5, 11), (11, 13), (13, 15),
    (0, 6), (6, 8), (8, 10), (6, 12), (12, 14), (14, 16),
)
_NUM_EDGES = len(POSE_CHAIN)


@dataclass(frozen=True)
class Pose:
    score: float  # mean keypoint score not explained by earlier poses, 0..1
    keypoints: npt.NDArray[np.float32]  # (17, 2) y, x in network-input pixels
    keypoint_scores: npt.NDArray[np.float32]  # (17,) 0..1


def sigmoid(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


class _Grid:
    """The decoder's view of one run's fields: keypoint scores and short offsets on a stride-``stride`` grid.
    The skeleton walk is scalar work on Python floats: per-element numpy calls cost more than the arithmetic."""

    def __init__(self, scores: npt.NDArray[np.float32], short_offsets: npt.NDArray[np.float32], stride: int) -> None:
        self.scores, self.short_offsets, self.stride = scores, short_offsets, float(stride)
        self.gh, self.gw = scores.shape[:2]

    def cell(self, py: float, px: float) -> tuple[int, int]:
        return (min(max(round(py / self.stride), 0), self.gh - 1),
                min(max(round(px / self.stride), 0), self.gw - 1))

    def image_point(self, y: int, x: int, k: int) -> tuple[float, float]:
        off = self.short_offsets
        return (y * self.stride + float(off[y, x, k]), x * self.stride + float(off[y, x, k + NUM_KEYPOINTS]))

    def traverse(self, edge: int, src: tuple[float, float], target: int,
                 disp: npt.NDArray[np.float32]) -> tuple[tuple[float, float], float]:
        """Follow one skeleton edge's displacement from ``src`` to keypoint ``target``: (point, its score)."""
        cy, cx = self.cell(*src)
        p = (src[0] + float(disp[cy, cx, edge]), src[1] + float(disp[cy, cx, edge + _NUM_EDGES]))
        for _ in range(2):  # refine with the short offsets at the landing cell
            cy, cx = self.cell(*p)
            p = self.image_point(cy, cx, target)
        cy, cx = self.cell(*p)
        return p, float(self.scores[cy, cx, target])

    def skeleton(self, y: int, x: int, k: int, displacement_fwd: npt.NDArray[np.float32],
                 displacement_bwd: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """The whole pose grown from root keypoint ``k`` at cell (y, x): ((17, 2) y, x pixels; (17,) scores)."""
        kp: list[tuple[float, float] | None] = [None] * NUM_KEYPOINTS
        ks = [0.0] * NUM_KEYPOINTS
        kp[k], ks[k] = self.image_point(y, x, k), float(self.scores[y, x, k])
        for edge in reversed(range(_NUM_EDGES)):  # child → parent (towards the root of the tree)
            parent, child = POSE_CHAIN[edge]
            src = kp[child]
            if src is not None and kp[parent] is None:
                kp[parent], ks[parent] = self.traverse(edge, src, parent, displacement_bwd)
        for edge in range(_NUM_EDGES):  # parent → child
            parent, child = POSE_CHAIN[edge]
            src = kp[parent]
            if src is not None and kp[child] is None:
                kp[child], ks[child] = self.traverse(edge, src, child, displacement_fwd)
        return np.array(kp, dtype=np.float32), np.array(ks, dtype=np.float32)


def _peaks(scores: npt.NDArray[np.float32], score_threshold: float,
           local_max_radius: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Local maxima of the keypoint scores at or above the threshold, strongest first: (ys, xs, keypoints)."""
    from scipy import ndimage

    size = (2 * local_max_radius + 1, 2 * local_max_radius + 1, 1)
    peaks = (scores >= score_threshold) & (scores == ndimage.maximum_filter(scores, size=size, mode="constant"))
    ys, xs, ks = np.nonzero(peaks)
    order = np.argsort(-scores[ys, xs, ks], kind="stable")
    return ys[order], xs[order], ks[order]


def decode_poses(heatmaps: npt.NDArray[np.float32], short_offsets: npt.NDArray[np.float32],
                 displacement_fwd: npt.NDArray[np.float32], displacement_bwd: npt.NDArray[np.float32], *,
                 stride: int = 16, max_poses: int = 16, score_threshold: float = 0.5,
                 nms_radius: float = 20.0, local_max_radius: int = 1,
                 min_pose_score: float = 0.2) -> list[Pose]:
    """Greedy multi-person decoding. Returns poses, strongest first, with ``score >= min_pose_score``."""
    grid = _Grid(sigmoid(heatmaps), short_offsets, stride)
    sq_nms = nms_radius * nms_radius
    poses: list[Pose] = []
    # accepted poses' keypoints, (n, 17, 2): one array test per keypoint instead of a Python loop over poses
    taken = np.empty((0, NUM_KEYPOINTS, 2), dtype=np.float32)
    for y, x, k in zip(*(a.tolist() for a in _peaks(grid.scores, score_threshold, local_max_radius)), strict=True):
        if len(poses) >= max_poses:
            break
        root = grid.image_point(y, x, k)
        if taken.shape[0] and float((((taken[:, k] - root) ** 2).sum(-1)).min()) <= sq_nms:
            continue
        kp_arr, ks_arr = grid.skeleton(y, x, k, displacement_fwd, displacement_bwd)
        # a keypoint already claimed by an earlier pose adds nothing to this one's score
        claimed = (((taken - kp_arr[None]) ** 2).sum(-1) <= sq_nms).any(axis=0)  # (17,), all False at first
        score = float(ks_arr[~claimed].sum()) / NUM_KEYPOINTS
        if score >= min_pose_score:
            poses.append(Pose(score=score, keypoints=kp_arr, keypoint_scores=ks_arr))
            taken = np.concatenate([taken, kp_arr[None]])
    return poses


def pixel_keypoint_votes(long_offsets: npt.NDArray[np.float32], ys: npt.NDArray[np.intp],
                         xs: npt.NDArray[np.intp], *, stride: int = 16,
                         refine_steps: int = 10) -> npt.NDArray[np.float32]:
    """Where grid cells (ys, xs) say their own person's keypoints are: (n, 17, 2) y, x in input pixels.
    One long offset from far away (foot → nose) falls short; re-reading the field where it lands walks the
    rest of the way, as BodyPix's decoder does."""
    gh, gw, _ = long_offsets.shape
    k = np.arange(NUM_KEYPOINTS)[None, :]
    cy = np.broadcast_to(ys[:, None], (ys.size, NUM_KEYPOINTS))
    cx = np.broadcast_to(xs[:, None], (xs.size, NUM_KEYPOINTS))
    py = cy * float(stride) + long_offsets[cy, cx, k]
    px = cx * float(stride) + long_offsets[cy, cx, k + NUM_KEYPOINTS]
    for _ in range(refine_steps):
        cy = np.clip(np.rint(py / stride), 0, gh - 1).astype(np.intp)
        cx = np.clip(np.rint(px / stride), 0, gw - 1).astype(np.intp)
        py = cy * float(stride) + long_offsets[cy, cx, k]
        px = cx * float(stride) + long_offsets[cy, cx, k + NUM_KEYPOINTS]
    return np.stack([py, px], axis=-1).astype(np.float32)


def assign_to_poses(votes: npt.NDArray[np.float32], poses: list[Pose], *,
                    min_keypoint_score: float = 0.3) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
    """For each voting cell: the index of the pose whose confident keypoints lie nearest its votes (mean
    distance over those keypoints), and that distance in input pixels. votes: (n, 17, 2). Returns
    ((n,) int32, -1 when there are no poses; (n,) float32)."""
    n = votes.shape[0]
    if not poses or n == 0:
        return np.full(n, -1, dtype=np.int32), np.full(n, np.inf, dtype=np.float32)
    dists = np.empty((n, len(poses)), dtype=np.float32)
    for j, pose in enumerate(poses):
        use = pose.keypoint_scores >= min_keypoint_score
        if not use.any():
            use = pose.keypoint_scores >= pose.keypoint_scores.max()
        d = np.hypot(*(votes[:, use, :] - pose.keypoints[None, use, :]).transpose(2, 0, 1))
        dists[:, j] = d.mean(axis=1)
    best = dists.argmin(axis=1).astype(np.int32)
    return best, dists[np.arange(n), best]


def poses_to_image(poses: list[Pose] | tuple[Pose, ...], scale: npt.NDArray[np.float32],
                   to_hw: tuple[int, int] | None = None, from_hw: tuple[int, int] | None = None,
                   ) -> list[npt.NDArray[np.float32]]:
    """Decoded poses ((y, x) in BodyPix-input pixels) → (17, 3) x, y, score in the pixels of the image BodyPix's
    input was resized from (``scale`` = (bh / H, bw / W), as ``lite.run_bodypix`` returns), then, when ``from_hw``
    (that image's (H, W)) and ``to_hw`` are given, in a ``to_hw`` image of the same scene (the photo when BodyPix
    ran on a smaller work image). Both resizes put pixel centres at +0.5, as ``lite._grid_to_image`` does.
    The rows are ``pose``'s array contract (x, y, score: COCO-17 in PoseNet's order)."""
    out = []
    for p in poses:
        y = (p.keypoints[:, 0] + 0.5) / float(scale[0]) - 0.5
        x = (p.keypoints[:, 1] + 0.5) / float(scale[1]) - 0.5
        if to_hw is not None and from_hw is not None and to_hw != from_hw:
            y = (y + 0.5) * (to_hw[0] / from_hw[0]) - 0.5
            x = (x + 0.5) * (to_hw[1] / from_hw[1]) - 0.5
        out.append(np.stack([x, y, p.keypoint_scores], axis=1).astype(np.float32))
    return out
