"""Lite tier: a real multi-person parse in ~0.1 s from two small ONNX models that we can ship.

- BodyPix 2.0 (MobileNetV1 x0.5, stride 16; Apache-2.0): person mask, 24 body parts, 17 keypoints and
  long-range offsets (each person pixel points at its own person's keypoints → people are told apart).
- PAN skin/clothes/hair segmenter (MIT): sharper masks for skin, clothes and hair at 512x512.

Fusion to CIHP ids: BodyPix says *where* a body region is (head, torso, arm, hand, leg, foot; left/right);
PAN says *what covers it* (hair vs face, clothes vs skin). CIHP's Left-/Right-* ids follow the data set's
annotation (is labelled Left-arm in neither sense by default, so this was measured: mapping BodyPix's "left" (the
person's own left) to CIHP's Left-* scores 0.29 fine mIoU on the CIHP images against 0.22 mirrored), so
both use the person's own side.

What it cannot produce: Hat, Glove, Sunglasses, Dress, Coat, Socks, Scarf, Skirt (no model here sees
them); dresses/coats come out as UpperClothes and skirts as Pants. ``ModelInfo.supported_labels`` says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from ..exceptions import ModelNotFound
from .posenet import assign_to_poses, decode_poses, pixel_keypoint_votes, sigmoid
from .types import ModelInfo, ParseResult, persons_from_masks

BODYPIX_FILE = "bodypix-mobilenetv1-050-stride16.onnx"
PAN_FILE = "pan-mobilenetv3-skin-clothes-hair.onnx"

# CIHP ids
BG, HAIR, UPPER, PANTS, TORSO_SKIN, FACE = 0, 2, 5, 9, 10, 13
L_ARM, R_ARM, L_LEG, R_LEG, L_SHOE, R_SHOE = 14, 15, 16, 17, 18, 19
SUPPORTED = (BG, HAIR, UPPER, PANTS, TORSO_SKIN, FACE, L_ARM, R_ARM, L_LEG, R_LEG, L_SHOE, R_SHOE)

# BodyPix part index → region code. Sides: BodyPix "left" (the person's own left) = CIHP "Left".
R_HEAD, R_TORSO, R_ARM_CIHP_L, R_ARM_CIHP_R, R_LEG_CIHP_L, R_LEG_CIHP_R, R_FOOT_CIHP_L, R_FOOT_CIHP_R = range(8)
_PART_REGION = np.array([
    R_HEAD, R_HEAD,  # left_face, right_face
    R_ARM_CIHP_L, R_ARM_CIHP_L, R_ARM_CIHP_R, R_ARM_CIHP_R,  # upper arms (left front/back, right front/back)
    R_ARM_CIHP_L, R_ARM_CIHP_L, R_ARM_CIHP_R, R_ARM_CIHP_R,  # lower arms
    R_ARM_CIHP_L, R_ARM_CIHP_R,  # hands
    R_TORSO, R_TORSO,
    R_LEG_CIHP_L, R_LEG_CIHP_L, R_LEG_CIHP_R, R_LEG_CIHP_R,  # upper legs
    R_LEG_CIHP_L, R_LEG_CIHP_L, R_LEG_CIHP_R, R_LEG_CIHP_R,  # lower legs
    R_FOOT_CIHP_L, R_FOOT_CIHP_R,
], dtype=np.uint8)


@dataclass(frozen=True)
class LiteTuning:
    bodypix_long_side: int = 641  # BodyPix input long side (k*16+1); 641 scored best on CIHP (bench/lite_eval.py)
    work_long_side: int = 640  # fusion resolution cap; the label map is then resized to the photo
    person_threshold: float = 0.0  # on BodyPix's person logit
    lower_body_threshold: float = -1.0  # the same for leg and foot parts
    hair_zone: int = 9  # px band around the head where hair outside the person mask is accepted
    hair_threshold: float = 0.5
    skin_threshold: float = 0.6
    min_pose_score: float = 0.2  # decoded poses below this mean keypoint score are not people
    offset_refine_steps: int = 10  # times a long offset is re-read where it lands (BodyPix's decoder: 10)
    # People smaller than this share of the largest person are background (CIHP, and so M2FP, parses the
    # people a photo is of, not the crowd behind them). 0 keeps everyone.
    min_person_rel_area: float = 0.35


def _resize_float(a: npt.NDArray[np.float32], hw: tuple[int, int]) -> npt.NDArray[np.float32]:
    """Bilinear resize of an (h, w, C) float array to (H, W, C)."""
    import cv2  # local: keeps module import light for tools that only read constants

    out = np.asarray(cv2.resize(a, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR), dtype=np.float32)
    return out.reshape(hw[0], hw[1], -1) if out.ndim == 2 else out


def find_lite_models(search_dirs: list[Path]) -> tuple[Path, Path]:
    for d in search_dirs:
        bp, pan = Path(d) / BODYPIX_FILE, Path(d) / PAN_FILE
        if bp.is_file() and pan.is_file():
            return bp, pan
    raise ModelNotFound("lite models not found in " + ", ".join(str(d) for d in search_dirs)
                        + "; run `python local_runner.py download lite`")


class LiteParser:
    """BodyPix + PAN fused into CIHP ids. ``parse(rgb)``: rgb (H, W, 3) uint8 RGB."""

    def __init__(self, bodypix_path: Path, pan_path: Path, *, threads: int = 2,
                 tuning: LiteTuning | None = None) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3  # the BodyPix file lists initialisers as inputs: harmless, noisy
        so.intra_op_num_threads = max(1, threads)
        so.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        self.bodypix = ort.InferenceSession(str(bodypix_path), so, providers=providers)
        self.pan = ort.InferenceSession(str(pan_path), so, providers=providers)
        self._bp_outputs = [o.name for o in self.bodypix.get_outputs()]
        self._pan_input = self.pan.get_inputs()[0].name
        self.tuning = tuning or LiteTuning()
        self.info = ModelInfo(
            kind="lite", model_id="bodypix-mnv1-050+pan-mnv3", supported_labels=SUPPORTED,
            notes="Lite tier (BodyPix + PAN skin/clothes/hair). Cannot produce Hat, Glove, Sunglasses, Dress, "
                  "Coat, Socks, Scarf, Skirt: dresses and coats come out as UpperClothes, skirts as Pants."
                  + (f" People smaller than {self.tuning.min_person_rel_area:.0%} of the largest person are left "
                     "as background, as CIHP annotates." if self.tuning.min_person_rel_area > 0 else ""))

    # ---------------------------------------------------------------------------------------- models
    def _run_bodypix(self, rgb: npt.NDArray[np.uint8]) -> dict[str, npt.NDArray[np.float32]]:
        h, w = rgb.shape[:2]
        s = (self.tuning.bodypix_long_side - 1) / max(h, w)
        bh = max(1, int(round(h * s / 16))) * 16 + 1
        bw = max(1, int(round(w * s / 16))) * 16 + 1
        x = np.asarray(Image.fromarray(rgb).resize((bw, bh), Image.Resampling.BILINEAR), dtype=np.float32)
        x = x / 127.5 - 1.0
        outs = self.bodypix.run(None, {"input": x[None]})
        res = {k: v[0] for k, v in zip(self._bp_outputs, outs, strict=False)}
        res["_scale"] = np.array([bh / h, bw / w], dtype=np.float32)
        return res

    def _run_pan(self, rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        x = np.asarray(Image.fromarray(rgb).resize((512, 512), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
        mean = np.array([0.485, 0.456, 0.406], np.float32)
        std = np.array([0.229, 0.224, 0.225], np.float32)
        x = ((x - mean) / std).astype(np.float32)
        out = np.asarray(self.pan.run(None, {self._pan_input: x.transpose(2, 0, 1)[None]})[0], dtype=np.float32)
        return np.ascontiguousarray(out[0].transpose(1, 2, 0))  # (512, 512, 3): skin, clothes, hair in [0, 1]

    # -------------------------------------------------------------------------------------- instances
    def _person_instances(self, bp: dict[str, npt.NDArray[np.float32]],
                          person_grid: npt.NDArray[np.bool_]) -> npt.NDArray[np.int32]:
        """Decode poses, then give each person cell of the stride-16 grid to the pose its long offsets point
        at (BodyPix's own multi-person method). Returns (gh, gw) int32: 0 = none, k = k-th decoded pose."""
        tn = self.tuning
        labels = np.zeros(person_grid.shape, dtype=np.int32)
        ys, xs = np.nonzero(person_grid)
        if ys.size == 0:
            return labels
        poses = decode_poses(bp["heatmaps"], bp["short_offsets"], bp["displacement_fwd"], bp["displacement_bwd"],
                             min_pose_score=tn.min_pose_score)
        if not poses:  # a person mask without a readable pose (a close-up torso, a back): one person
            labels[ys, xs] = 1
            return labels
        votes = pixel_keypoint_votes(bp["long_offsets"], ys, xs, refine_steps=tn.offset_refine_steps)
        best, _ = assign_to_poses(votes, poses)
        labels[ys, xs] = best + 1
        return labels

    # ------------------------------------------------------------------------------------------ parse
    def parse(self, rgb: npt.NDArray[np.uint8]) -> ParseResult:
        import cv2

        t0 = time.perf_counter()
        h0, w0 = rgb.shape[:2]
        tn = self.tuning
        s = min(1.0, tn.work_long_side / max(h0, w0))
        hw = (max(1, int(round(h0 * s))), max(1, int(round(w0 * s))))
        work = rgb if s == 1.0 else np.asarray(Image.fromarray(rgb).resize((hw[1], hw[0]), Image.Resampling.BILINEAR))
        bp = self._run_bodypix(work)
        pan = self._run_pan(work)
        t1 = time.perf_counter()

        seg = _resize_float(bp["segments"], hw)[..., 0]
        parts = _resize_float(bp["part_heatmaps"], hw).argmax(-1).astype(np.uint8)
        region = _PART_REGION[parts]
        pan_w = _resize_float(pan, hw)
        skin, clothes, hair = pan_w[..., 0], pan_w[..., 1], pan_w[..., 2]
        # BodyPix's own silhouette: PAN-based or PAN-refined ones scored lower on CIHP (README)
        # Legs and feet are thin and often dark against the floor: BodyPix's logit there runs low, so they get
        # a lower bar than the rest of the body (measured: bench/lite_eval.py).
        person = seg > np.where(region >= R_LEG_CIHP_L, tn.lower_body_threshold, tn.person_threshold)

        label = np.zeros(hw, dtype=np.uint8)
        # Bare skin needs positive evidence: PAN under-calls vests, coats, dark sleeves and beige cloth as
        # "clothes", and CIHP labels most torsos, sleeves and legs as garments.
        is_skin = (skin > tn.skin_threshold) & (skin > clothes)
        head = person & (region == R_HEAD)
        label[head] = FACE
        torso = person & (region == R_TORSO)
        label[torso] = np.where(is_skin[torso], TORSO_SKIN, UPPER)
        for reg, arm in ((R_ARM_CIHP_L, L_ARM), (R_ARM_CIHP_R, R_ARM)):
            m = person & (region == reg)
            label[m] = np.where(is_skin[m], arm, UPPER)
        for reg, leg in ((R_LEG_CIHP_L, L_LEG), (R_LEG_CIHP_R, R_LEG)):
            m = person & (region == reg)
            label[m] = np.where(is_skin[m], leg, PANTS)
        label[person & (region == R_FOOT_CIHP_L)] = L_SHOE
        label[person & (region == R_FOOT_CIHP_R)] = R_SHOE
        # Hair: BodyPix has no hair part and often cuts it off; PAN sees it. Accept hair inside the person
        # and in a band around the head.
        head_zone = cv2.dilate(head.astype(np.uint8), np.ones((tn.hair_zone, tn.hair_zone), np.uint8)) > 0 if tn.hair_zone > 0 else head
        hair_m = (hair > tn.hair_threshold) & (hair >= np.maximum(skin, clothes)) & head_zone
        label[hair_m] = HAIR

        # Instances on BodyPix's grid, then carried to the work resolution by nearest cell.
        grid_person = bp["segments"][..., 0] > tn.person_threshold
        clusters = self._person_instances(bp, grid_person)
        masks: list[npt.NDArray[np.bool_]] = []
        scores: list[float] = []
        if clusters.max() > 0:
            cl_up = cv2.resize(clusters.astype(np.float32), (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)
            # pixels of the person mask whose grid cell is unassigned take the nearest assigned cell's id
            from scipy import ndimage

            missing = cl_up == 0
            if missing.any():
                idx = ndimage.distance_transform_edt(missing, return_distances=False, return_indices=True)
                cl_up = cl_up[idx[0], idx[1]]
            probs = sigmoid(bp["segments"][..., 0])
            for k in range(1, int(clusters.max()) + 1):
                m = (cl_up == k) & (label > 0)
                if m.any():
                    masks.append(m)
                    scores.append(float(probs[clusters == k].mean()) if (clusters == k).any() else 0.5)
        if masks and tn.min_person_rel_area > 0:
            areas = [int(m.sum()) for m in masks]
            keep = [a >= tn.min_person_rel_area * max(areas) for a in areas]
            for m, k in zip(masks, keep, strict=True):
                if not k:
                    label[m] = BG
            masks = [m for m, k in zip(masks, keep, strict=True) if k]
            scores = [s for s, k in zip(scores, keep, strict=True) if k]
        if (h0, w0) != hw:
            label = np.asarray(cv2.resize(label, (w0, h0), interpolation=cv2.INTER_NEAREST), dtype=np.uint8)
            masks = [cv2.resize(m.astype(np.uint8), (w0, h0), interpolation=cv2.INTER_NEAREST) > 0 for m in masks]
        person_map, persons = persons_from_masks(label, masks, scores)
        t2 = time.perf_counter()
        return ParseResult(label_map=label, person_map=person_map, persons=persons, model=self.info,
                           timings={"inference": t1 - t0, "fusion": t2 - t1, "total": t2 - t0})


def build_lite(model_dir: str | Path, *, threads: int = 2) -> LiteParser:
    bp, pan = find_lite_models([Path(model_dir)])
    return LiteParser(bp, pan, threads=threads)
