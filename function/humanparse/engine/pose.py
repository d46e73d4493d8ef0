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

from humanparse.engine.lite import LiteTuning, find_lite_models, run_bodypix
from humanparse.engine.posenet import decode_poses, poses_to_image


class PoseNetwork:
    """BodyPix alone, for its keypoints: one unshifted run at the lite tier's input size and PoseNet's multi-pose
    decoder with the lite tier's settings (``LiteTuning``), so that it finds the poses a lite parse finds.
    ``estimate(rgb)``: rgb (H, W, 3) uint8 RGB → list of (17, 3) poses in its pixels, strongest first."""

    def __init__(self, bodypix_path: Path, *, threads: int = 2) -> None:
        import onnxruntime as ort  # here: importing this module (for its types) loads no runtime

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
        return cls(find_lite_models(dirs)[0], threads=threads)

    def estimate(self, rgb: npt.NDArray[np.uint8]) -> list[npt.NDArray[np.float32]]:
        raw, scale = run_bodypix(self.session, self._outputs, rgb, self.tuning.bodypix_long_side)
        poses = decode_poses(raw["heatmaps"], raw["short_offsets"], raw["displacement_fwd"],
                             raw["displacement_bwd"], min_pose_score=self.tuning.min_pose_score)
        return poses_to_image(poses, scale)
