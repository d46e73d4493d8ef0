"""Body keypoints from BodyPix's pose heads, in photo pixels: what the lite tier decodes anyway, and what runs
beside M2FP (which has no pose head) when keypoints are asked for.

Array contract: a pose is (17, 3) float32 rows (x, y, score), COCO-17 keypoints in PoseNet's order (nose, left
eye, right eye, left ear, right ear, left shoulder, right shoulder, left elbow, right elbow, left wrist, right
wrist, left hip, right hip, left knee, right knee, left ankle, right ankle), x/y in the pixels of the image the
poses are for (pixel centres at integers), score 0..1. "Left" is the person's own left.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from .posenet import Pose, decode_poses


def poses_to_image(poses: list[Pose] | tuple[Pose, ...], scale: npt.NDArray[np.float32],
                   to_hw: tuple[int, int] | None = None, from_hw: tuple[int, int] | None = None,
                   ) -> list[npt.NDArray[np.float32]]:
    """Decoded poses ((y, x) in BodyPix-input pixels) → (17, 3) x, y, score in the pixels of the image BodyPix's
    input was resized from (``scale`` = (bh / H, bw / W), as ``_run_bodypix`` returns), then, when ``from_hw``
    (that image's (H, W)) and ``to_hw`` are given, in a ``to_hw`` image of the same scene (the photo when BodyPix
    ran on a smaller work image). Both resizes put pixel centres at +0.5, as ``_grid_to_image`` does."""
    out = []
    for p in poses:
        y = (p.keypoints[:, 0] + 0.5) / float(scale[0]) - 0.5
        x = (p.keypoints[:, 1] + 0.5) / float(scale[1]) - 0.5
        if to_hw is not None and from_hw is not None and to_hw != from_hw:
            y = (y + 0.5) * (to_hw[0] / from_hw[0]) - 0.5
            x = (x + 0.5) * (to_hw[1] / from_hw[1]) - 0.5
        out.append(np.stack([x, y, p.keypoint_scores], axis=1).astype(np.float32))
    return out


class PoseNetwork:
    """BodyPix alone, for its keypoints: one unshifted run at the lite tier's input size and PoseNet's multi-pose
    decoder with the lite tier's settings (``LiteTuning``), so that it finds the poses a lite parse finds.
    ``estimate(rgb)``: rgb (H, W, 3) uint8 RGB → list of (17, 3) poses in its pixels, strongest first."""

    def __init__(self, bodypix_path: Path, *, threads: int = 2) -> None:
        import onnxruntime as ort

        from .lite import LiteTuning

        self.tuning = LiteTuning()

        so = ort.SessionOptions()
        so.log_severity_level = 3  # the file lists initialisers as inputs: harmless, noisy
        so.intra_op_num_threads = max(1, threads)
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(bodypix_path), so, providers=["CPUExecutionProvider"])
        self._outputs = [o.name for o in self.session.get_outputs()]

    @classmethod
    def from_lite_dirs(cls, dirs: list[Path], *, threads: int = 2) -> PoseNetwork:
        """The BodyPix file of the lite tier, found (and sha256-checked) as the lite tier finds it."""
        from .lite import find_lite_models

        return cls(find_lite_models(dirs)[0], threads=threads)

    def estimate(self, rgb: npt.NDArray[np.uint8]) -> list[npt.NDArray[np.float32]]:
        from .lite import run_bodypix

        raw, scale = run_bodypix(self.session, self._outputs, rgb, self.tuning.bodypix_long_side)
        poses = decode_poses(raw["heatmaps"], raw["short_offsets"], raw["displacement_fwd"],
                             raw["displacement_bwd"], min_pose_score=self.tuning.min_pose_score)
        return poses_to_image(poses, scale)
