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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from humanparse.engine.posenet import Pose, assign_to_poses, decode_poses, pixel_keypoint_votes, poses_to_image, sigmoid
from humanparse.engine.types import ModelInfo, ParseResult, check_deadline, persons_from_masks, upscale_persons
from humanparse.exceptions import ModelError, ModelNotFound
from humanparse.models import LITE_SHA256, sha256_file

BODYPIX_FILE = "bodypix-mobilenetv1-050-stride16.onnx"
PAN_FILE = "pan-mobilenetv3-skin-clothes-hair.onnx"

# CIHP ids
BG, HAIR, UPPER, PANTS, TORSO_SKIN, FACE = 0, 2, 5, 9, 10, 13
L_ARM, R_ARM, L_LEG, R_LEG, L_SHOE, R_SHOE = 14, 15, 16, 17, 18, 19
SUPPORTED = (BG, HAIR, UPPER, PANTS, TORSO_SKIN, FACE, L_ARM, R_ARM, L_LEG, R_LEG, L_SHOE, R_SHOE)

# BodyPix part index → body region (REGION_*; ids above are CIHP labels). Sides: BodyPix "left" (the person's own
# left) = CIHP "Left-*", so REGION_ARM_LEFT becomes L_ARM.
(REGION_HEAD, REGION_TORSO, REGION_ARM_LEFT, REGION_ARM_RIGHT, REGION_LEG_LEFT, REGION_LEG_RIGHT, REGION_FOOT_LEFT,
 REGION_FOOT_RIGHT) = range(8)
_PART_REGION = np.array([
    REGION_HEAD, REGION_HEAD,  # left_face, right_face
    REGION_ARM_LEFT, REGION_ARM_LEFT, REGION_ARM_RIGHT, REGION_ARM_RIGHT,  # upper arms (left front/back, right front/back)
    REGION_ARM_LEFT, REGION_ARM_LEFT, REGION_ARM_RIGHT, REGION_ARM_RIGHT,  # lower arms
    REGION_ARM_LEFT, REGION_ARM_RIGHT,  # hands
    REGION_TORSO, REGION_TORSO,
    REGION_LEG_LEFT, REGION_LEG_LEFT, REGION_LEG_RIGHT, REGION_LEG_RIGHT,  # upper legs
    REGION_LEG_LEFT, REGION_LEG_LEFT, REGION_LEG_RIGHT, REGION_LEG_RIGHT,  # lower legs
    REGION_FOOT_LEFT, REGION_FOOT_RIGHT,
], dtype=np.uint8)


_NUM_REGIONS = 8


def _region_logits(part_logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """(gh, gw, 24) BodyPix part logits → (gh, gw, 8) region log-probabilities, up to a per-cell constant.

    A region is several parts (front and back of each limb segment, both halves of the face, ...): its
    probability is the sum of theirs, so a limb seen half from the front and half from the back is not lost to
    a neighbour that takes the argmax over single parts (measured: coarse mIoU +0.012, feet +0.04). Working
    with 8 channels also makes carrying them to the image 3x cheaper.
    """
    m = part_logits.max(axis=-1, keepdims=True)
    e = np.exp(part_logits - m)
    out = np.empty((*part_logits.shape[:2], _NUM_REGIONS), dtype=np.float32)
    for r in range(_NUM_REGIONS):
        out[..., r] = np.log(e[..., _PART_REGION == r].sum(axis=-1) + 1e-6)
    return out


@dataclass(frozen=True)
class LiteTuning:
    bodypix_long_side: int = 641  # BodyPix input long side (k*16+1); 641 scored best on CIHP (bench/lite_eval.py)
    work_long_side: int = 640  # fusion resolution cap; the label map is then resized to the photo
    person_threshold: float = 0.0  # on BodyPix's person logit
    lower_body_threshold: float = -1.0  # the same for leg and foot parts
    hair_zone: int = 9  # px band around the head where hair outside the person mask is accepted
    hair_threshold: float = 0.5
    skin_threshold: float = 0.6
    # BodyPix is also run on its input padded by these many pixels (top-left): grids a third of a cell apart
    # on the diagonal, averaged. Measured: coarse mIoU 0.561 (none), 0.571 (8), 0.581 (5, 11); +15 ms each.
    extra_shifts: tuple[int, ...] = (5, 11)
    min_pose_score: float = 0.15  # decoded poses below this mean keypoint score are not people
    offset_refine_steps: int = 10  # times a long offset is re-read where it lands (BodyPix's decoder: 10)
    # People smaller than this share of the largest person are background (CIHP, and so M2FP, parses the
    # people a photo is of, not the crowd behind them). 0 keeps everyone.
    min_person_rel_area: float = 0.4  # in the middle of the range that scored best (0.35-0.5)


_PAN_MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # ImageNet, as the PAN model was trained
_PAN_STD = np.array([0.229, 0.224, 0.225], np.float32)
_PAN_SCALE = (1.0 / (255.0 * _PAN_STD)).astype(np.float32)
_PAN_SHIFT = (-_PAN_MEAN / _PAN_STD).astype(np.float32)


def _resize_rgb(rgb: npt.NDArray[np.uint8], hw: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """(H, W, 3) uint8 → (h, w, 3) uint8; area-averaging when shrinking, bilinear when enlarging (both with
    pixel centres at +0.5, which ``_grid_to_image`` relies on). cv2: ~25x faster than PIL here."""
    import cv2

    if (rgb.shape[0], rgb.shape[1]) == hw:
        return rgb
    shrink = hw[0] * hw[1] < rgb.shape[0] * rgb.shape[1]
    return np.asarray(cv2.resize(rgb, (hw[1], hw[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR),
                      dtype=np.uint8)


def _resize_float(a: npt.NDArray[np.float32], hw: tuple[int, int]) -> npt.NDArray[np.float32]:
    """Bilinear resize of an (h, w, C) float array to (H, W, C)."""
    import cv2  # local: keeps module import light for tools that only read constants

    out = np.asarray(cv2.resize(a, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR), dtype=np.float32)
    return out.reshape(hw[0], hw[1], -1) if out.ndim == 2 else out


def _grid_to_image(a: npt.NDArray[np.float32], hw: tuple[int, int], scale: npt.NDArray[np.float32], *,
                   shift: int = 0) -> npt.NDArray[np.float32]:
    """Carry a stride-16 BodyPix output (gh, gw, C) onto the (H, W) image it was run on, bilinearly; ``shift``
    is the run's input padding (``_run_bodypix``). Returns (H, W, C) float32.

    BodyPix's cell i sits on input pixel 16*i (input sides are 16k+1, corners aligned), and the input was resized
    from the image with pixel centres at +0.5: image row y is cell ((y + 0.5) * bh / H - 0.5) / 16. A plain
    ``cv2.resize`` (half-pixel centres on both sides) puts boundaries up to half a cell (8 input px) off, worst
    at the image edges: feet land on the shins. Measured: shifting this map by a quarter cell either way costs
    0.02 coarse mIoU (bench/lite_eval.py).
    """
    import cv2

    sy, sx = float(scale[0]) / 16.0, float(scale[1]) / 16.0
    t = (shift - 0.5) / 16.0
    m = np.array([[sx, 0.0, 0.5 * sx + t], [0.0, sy, 0.5 * sy + t]], dtype=np.float64)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    out = np.asarray(cv2.warpAffine(a, m, (hw[1], hw[0]), flags=flags, borderMode=cv2.BORDER_REPLICATE),
                     dtype=np.float32)
    return out.reshape(hw[0], hw[1], -1) if out.ndim == 2 else out


@dataclass(frozen=True)
class _GridRun:
    """One BodyPix run carried to the work image: ``seg`` (H, W) person logit, ``region_logit`` (H, W, 8);
    ``people`` (gh, gw) int32 person ids on its grid (unshifted run only), ``raw`` its outputs, ``scale`` its
    input size over the image's, (bh / H, bw / W)."""

    raw: dict[str, npt.NDArray[np.float32]]
    scale: npt.NDArray[np.float32]
    seg: npt.NDArray[np.float32]
    region_logit: npt.NDArray[np.float32]
    people: npt.NDArray[np.int32] | None
    poses: tuple[Pose, ...] = ()  # decoded on this grid (unshifted run only), BodyPix-input pixels


def run_bodypix(session: Any, output_names: list[str], rgb: npt.NDArray[np.uint8], long_side: int, shift: int = 0
                ) -> tuple[dict[str, npt.NDArray[np.float32]], npt.NDArray[np.float32]]:
    """BodyPix on ``rgb`` (H, W, 3) uint8 RGB, resized to 16k+1 sides (``long_side`` the longer). ``shift``
    (0..15) pads the input by that many pixels at the top/left (and 16 - shift at the bottom/right), so cell i
    lands on resized pixel 16*i - shift: another grid, between the unshifted one's cells. Returns the outputs by
    name (each (gh, gw, C) float32) and the scale (bh / H, bw / W) float32."""
    h, w = rgb.shape[:2]
    s = (long_side - 1) / max(h, w)
    bh = max(1, int(round(h * s / 16))) * 16 + 1
    bw = max(1, int(round(w * s / 16))) * 16 + 1
    x = _resize_rgb(rgb, (bh, bw)).astype(np.float32)
    x *= 1.0 / 127.5
    x -= 1.0
    if shift:
        x = np.pad(x, ((shift, 16 - shift), (shift, 16 - shift), (0, 0)), mode="edge")
    outs = session.run(None, {"input": x[None]})
    res = {k: v[0] for k, v in zip(output_names, outs, strict=False)}
    return res, np.array([bh / h, bw / w], dtype=np.float32)


def find_lite_models(search_dirs: list[Path]) -> tuple[Path, Path]:
    """(bodypix, pan) from the first folder in ``search_dirs`` (in order) that holds both files. Each file's
    sha256 must equal its pin (``humanparse.models.LITE_SHA256``): the fusion was tuned on exactly these."""
    for d in search_dirs:
        bp, pan = Path(d) / BODYPIX_FILE, Path(d) / PAN_FILE
        if bp.is_file() and pan.is_file():
            for f in (bp, pan):
                got = sha256_file(f)
                if got != LITE_SHA256[f.name]:
                    raise ModelError(f"{f} has sha256 {got}, not the pinned {LITE_SHA256[f.name]}: "
                                     "a different or damaged file")
            return bp, pan
    raise ModelNotFound("lite models not found in " + ", ".join(str(d) for d in search_dirs))


class LiteParser:
    """BodyPix + PAN fused into CIHP ids. ``parse(rgb)``: rgb (H, W, 3) uint8 RGB."""

    def __init__(self, bodypix_path: Path, pan_path: Path, *, threads: int = 2,
                 tuning: LiteTuning | None = None) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3  # the BodyPix file lists initialisers as inputs: harmless, noisy
        # These models are small: ORT's intra-op threads idle at every sync point. Single-threaded runs side by
        # side (BodyPix on each grid, PAN) fill the cores better: measured on 2 cores, a parse's 4 runs took
        # 78-94 ms so against 115-145 ms one after another with 2 threads each; and three workers on two cores
        # beat two (three runs: 58 ms against 71-76 ms).
        self._pool = ThreadPoolExecutor(max_workers=threads + 1, thread_name_prefix="lite") if threads > 1 else None
        so.intra_op_num_threads = 1 if self._pool else max(1, threads)
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
    def _run_bodypix(self, rgb: npt.NDArray[np.uint8], shift: int = 0
                     ) -> tuple[dict[str, npt.NDArray[np.float32]], npt.NDArray[np.float32]]:
        """``run_bodypix`` with this parser's session and input size."""
        return run_bodypix(self.bodypix, self._bp_outputs, rgb, self.tuning.bodypix_long_side, shift)

    def _run_pan(self, rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """PAN on ``rgb`` (H, W, 3) uint8 RGB. Returns (512, 512, 3) float32 in [0, 1]: skin, clothes, hair."""
        u = _resize_rgb(rgb, (512, 512))
        x = np.empty((1, 3, 512, 512), dtype=np.float32)
        for c in range(3):  # (v / 255 - mean) / std, channel by channel straight into NCHW
            np.multiply(u[..., c], _PAN_SCALE[c], out=x[0, c], casting="unsafe")
            x[0, c] += _PAN_SHIFT[c]
        out = np.asarray(self.pan.run(None, {self._pan_input: x})[0], dtype=np.float32)
        return np.ascontiguousarray(out[0].transpose(1, 2, 0))

    def _bodypix_maps(self, work: npt.NDArray[np.uint8], shift: int, hw: tuple[int, int]) -> _GridRun:
        b, scale = self._run_bodypix(work, shift)
        people, poses = (self._person_instances(b, b["segments"][..., 0] > self.tuning.person_threshold)
                         if shift == 0 else (None, []))
        return _GridRun(raw=b, scale=scale, seg=_grid_to_image(b["segments"], hw, scale, shift=shift)[..., 0],
                        region_logit=_grid_to_image(_region_logits(b["part_heatmaps"]), hw, scale, shift=shift),
                        people=people, poses=tuple(poses))

    def _pan_maps(self, work: npt.NDArray[np.uint8], hw: tuple[int, int]) -> npt.NDArray[np.float32]:
        return _resize_float(self._run_pan(work), hw)

    # -------------------------------------------------------------------------------------- instances
    def _person_instances(self, bp: dict[str, npt.NDArray[np.float32]],
                          person_grid: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.int32], list[Pose]]:
        """Decode poses, then give each person cell of the stride-16 grid to the pose its long offsets point
        at (BodyPix's own multi-person method). Returns (gh, gw) int32 (0 = none, k = k-th decoded pose) and
        the decoded poses (kept: they are the parse's keypoints)."""
        tn = self.tuning
        labels = np.zeros(person_grid.shape, dtype=np.int32)
        ys, xs = np.nonzero(person_grid)
        if ys.size == 0:
            return labels, []
        poses = decode_poses(bp["heatmaps"], bp["short_offsets"], bp["displacement_fwd"], bp["displacement_bwd"],
                             min_pose_score=tn.min_pose_score)
        if not poses:  # a person mask without a readable pose (a close-up torso, a back): one person
            labels[ys, xs] = 1
            return labels, poses
        votes = pixel_keypoint_votes(bp["long_offsets"], ys, xs, refine_steps=tn.offset_refine_steps)
        best, _ = assign_to_poses(votes, poses)
        labels[ys, xs] = best + 1
        return labels, poses

    # ------------------------------------------------------------------------------------------ parse
    def parse(self, rgb: npt.NDArray[np.uint8], *, deadline: float | None = None) -> ParseResult:
        """rgb (H, W, 3) uint8 RGB → ``ParseResult`` at (H, W). Everything is decided on a work image of at most
        ``work_long_side`` pixels; the label and person maps are brought to the photo once (nearest)."""
        t0 = time.perf_counter()
        h0, w0 = rgb.shape[:2]
        s = min(1.0, self.tuning.work_long_side / max(h0, w0))
        hw = (max(1, int(round(h0 * s))), max(1, int(round(w0 * s))))
        runs, pan_w = self._run_models(_resize_rgb(rgb, hw), hw)
        t1 = time.perf_counter()
        check_deadline(deadline, "inference")
        label = self._fuse_labels(runs, pan_w)
        masks, scores = self._find_people(label, runs[0], hw)
        masks, scores = self._drop_small_people(label, masks, scores)
        work_persons, persons = persons_from_masks(label, masks, scores)
        if (h0, w0) != hw:
            import cv2

            label = np.asarray(cv2.resize(label, (w0, h0), interpolation=cv2.INTER_NEAREST), dtype=np.uint8)
        person_map, persons = upscale_persons(label, work_persons, persons)
        t2 = time.perf_counter()
        return ParseResult(label_map=label, person_map=person_map, persons=persons, model=self.info,
                           timings={"inference": t1 - t0, "fusion": t2 - t1, "total": t2 - t0},
                           poses=poses_to_image(runs[0].poses, runs[0].scale, (h0, w0), hw))

    def _run_models(self, work: npt.NDArray[np.uint8], hw: tuple[int, int]
                    ) -> tuple[list[_GridRun], npt.NDArray[np.float32]]:
        """BodyPix on its own grid and on grids shifted by part of a cell (stride 16 is coarse: the shifted runs
        sample between its cells), and PAN, side by side. Each job also carries its own maps to the work image
        (and the unshifted one decodes the people), so that work overlaps the other model runs. Returns the
        BodyPix runs (unshifted first) and PAN's (h, w, 3) skin/clothes/hair probabilities."""
        jobs: list[Callable[[], Any]] = [partial(self._bodypix_maps, work, sh, hw)
                                         for sh in (0, *self.tuning.extra_shifts)]
        jobs.append(partial(self._pan_maps, work, hw))
        outs = list(self._pool.map(lambda f: f(), jobs)) if self._pool else [f() for f in jobs]
        return outs[:-1], outs[-1]

    def _fuse_labels(self, runs: list[_GridRun], pan_w: npt.NDArray[np.float32]
                     ) -> npt.NDArray[np.uint8]:
        """BodyPix regions (where) × PAN skin/clothes/hair (what covers it) → (h, w) uint8 CIHP ids. The grids'
        logits, each carried to the image at its own offsets, are averaged."""
        import cv2

        tn = self.tuning
        seg, region_logit = runs[0].seg.copy(), runs[0].region_logit.copy()
        for r in runs[1:]:
            seg += r.seg
            region_logit += r.region_logit
        seg /= len(runs)
        region = region_logit.argmax(-1).astype(np.uint8)
        skin, clothes, hair = pan_w[..., 0], pan_w[..., 1], pan_w[..., 2]
        # BodyPix's own silhouette: PAN-based or PAN-refined ones scored lower on CIHP (README)
        # Legs and feet are thin and often dark against the floor: BodyPix's logit there runs low, so they get
        # a lower bar than the rest of the body (measured: bench/lite_eval.py).
        person = seg > np.where(region >= REGION_LEG_LEFT, tn.lower_body_threshold, tn.person_threshold)

        label = np.zeros(seg.shape, dtype=np.uint8)
        # Bare skin needs positive evidence: PAN under-calls vests, coats, dark sleeves and beige cloth as
        # "clothes", and CIHP labels most torsos, sleeves and legs as garments.
        is_skin = (skin > tn.skin_threshold) & (skin > clothes)
        head = person & (region == REGION_HEAD)
        label[head] = FACE
        torso = person & (region == REGION_TORSO)
        label[torso] = np.where(is_skin[torso], TORSO_SKIN, UPPER)
        for reg, arm in ((REGION_ARM_LEFT, L_ARM), (REGION_ARM_RIGHT, R_ARM)):
            m = person & (region == reg)
            label[m] = np.where(is_skin[m], arm, UPPER)
        for reg, leg in ((REGION_LEG_LEFT, L_LEG), (REGION_LEG_RIGHT, R_LEG)):
            m = person & (region == reg)
            label[m] = np.where(is_skin[m], leg, PANTS)
        label[person & (region == REGION_FOOT_LEFT)] = L_SHOE
        label[person & (region == REGION_FOOT_RIGHT)] = R_SHOE
        # Hair: BodyPix has no hair part and often cuts it off; PAN sees it. Accept hair inside the person
        # and in a band around the head.
        head_zone = cv2.dilate(head.astype(np.uint8), np.ones((tn.hair_zone, tn.hair_zone), np.uint8)) > 0 if tn.hair_zone > 0 else head
        hair_m = (hair > tn.hair_threshold) & (hair >= np.maximum(skin, clothes)) & head_zone
        label[hair_m] = HAIR
        return label

    def _find_people(self, label: npt.NDArray[np.uint8], run: _GridRun, hw: tuple[int, int]
                     ) -> tuple[list[npt.NDArray[np.bool_]], list[float]]:
        """The people decoded on the unshifted BodyPix grid, carried to the work image: one (h, w) bool mask per
        person (within ``label`` > 0) and its score (mean person probability of its cells)."""
        clusters = run.people
        assert clusters is not None
        masks: list[npt.NDArray[np.bool_]] = []
        scores: list[float] = []
        if clusters.max() == 0:
            return masks, scores
        # cells outside BodyPix's grid mask (the pixel-level mask is wider: lower bar for legs, averaged
        # grids) take the nearest assigned cell's person, on the grid: cheap, and the same at this scale
        from scipy import ndimage

        filled = clusters
        if (clusters == 0).any():
            idx = ndimage.distance_transform_edt(clusters == 0, return_distances=False, return_indices=True)
            filled = clusters[idx[0], idx[1]]
        # people meet along smooth lines, not cell edges: each person's cells as a 0/1 map, carried
        # bilinearly, and the strongest wins
        n = int(filled.max())
        onehot = (filled[..., None] == np.arange(1, n + 1)).astype(np.float32)
        cl_up = (_grid_to_image(onehot, hw, run.scale).argmax(-1) + 1).astype(np.int32)
        probs = sigmoid(run.raw["segments"][..., 0])
        for k in range(1, int(clusters.max()) + 1):
            m = (cl_up == k) & (label > 0)
            if m.any():
                masks.append(m)
                scores.append(float(probs[clusters == k].mean()) if (clusters == k).any() else 0.5)
        return masks, scores

    def _drop_small_people(self, label: npt.NDArray[np.uint8], masks: list[npt.NDArray[np.bool_]],
                           scores: list[float]) -> tuple[list[npt.NDArray[np.bool_]], list[float]]:
        """People smaller than ``min_person_rel_area`` of the largest become background in ``label`` (in place)
        and leave the lists."""
        if not masks or self.tuning.min_person_rel_area <= 0:
            return masks, scores
        areas = [int(m.sum()) for m in masks]
        keep = [a >= self.tuning.min_person_rel_area * max(areas) for a in areas]
        for m, k in zip(masks, keep, strict=True):
            if not k:
                label[m] = BG
        return ([m for m, k in zip(masks, keep, strict=True) if k],
                [s for s, k in zip(scores, keep, strict=True) if k])
