"""The full-resolution M2FP post-processing as it was before the box-bounded version (test oracle only).

Same arithmetic as ModelScope's ``M2FP.instance_parsing_inference`` + ``paste_instance_to_semseg_probs``
(top-k (query, class) pairs, score = class prob × mean mask prob, per-class averaging of pasted instance
probabilities above 0.5, argmax), organised so it is cheap:

- a candidate can only be pasted if its class probability alone reaches the threshold (the final score is
  class prob × mask score ≤ class prob), so the others are never upsampled;
- masks are upsampled one at a time and the label map is kept as a running argmax, so memory stays at a few
  full-resolution planes instead of 100 (ModelScope) or 20 (semantic probabilities).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class Candidate:
    query: int
    label: int
    class_score: float
    score: float = 0.0  # class_score * mask_score, set after upsampling


@dataclass
class PostprocessOutput:
    label_map: npt.NDArray[np.uint8]  # (H0, W0) uint8 ids 0..num_parsing-1
    human_masks: list[npt.NDArray[np.bool_]]  # each (H0, W0) bool
    human_scores: list[float]
    part_scores: dict[int, float]  # best pasted instance score per label


class MaskUpsampler:
    """Upsamples one query's mask logits exactly as ModelScope does: bilinear to the padded input size,
    crop to the resized image, bilinear to the original size (both align_corners=False)."""

    def __init__(self, mask_logits: Tensor, padded_hw: tuple[int, int], image_hw: tuple[int, int],
                 out_hw: tuple[int, int], cache_bytes: int = 768 << 20) -> None:
        self.masks = mask_logits  # (Q, h4, w4)
        self.padded_hw, self.image_hw, self.out_hw = padded_hw, image_hw, out_hw
        self._cache: dict[int, Tensor] = {}
        self._per_mask = out_hw[0] * out_hw[1] * 4
        self._budget = cache_bytes

    def __call__(self, q: int) -> Tensor:
        hit = self._cache.get(q)
        if hit is not None:
            return hit
        m = F.interpolate(self.masks[q][None, None], size=self.padded_hw, mode="bilinear", align_corners=False)
        m = m[:, :, : self.image_hw[0], : self.image_hw[1]]
        m = F.interpolate(m, size=self.out_hw, mode="bilinear", align_corners=False)[0, 0]
        if (len(self._cache) + 1) * self._per_mask <= self._budget:
            self._cache[q] = m
        return m


def m2fp_postprocess(class_logits: Tensor, mask_logits: Tensor, *, padded_hw: tuple[int, int],
                     image_hw: tuple[int, int], out_hw: tuple[int, int], num_parsing: int,
                     ins_score_thr: float, human_score_thr: float = 0.1, topk: int = 100) -> PostprocessOutput:
    """class_logits: (Q, C+1) for one image (C includes the Human class at index ``num_parsing``);
    mask_logits: (Q, h4, w4). ``image_hw`` is the resized size inside the padded canvas; ``out_hw`` the
    original photo size."""
    with torch.no_grad():
        probs = F.softmax(class_logits.float(), dim=-1)[:, :-1]
        num_classes = probs.shape[1]
        top_scores, top_idx = probs.flatten().topk(min(topk, probs.numel()), sorted=False)
        cands: list[Candidate] = []
        for s, i in zip(top_scores.tolist(), top_idx.tolist(), strict=False):
            label = i % num_classes
            thr = human_score_thr if label == num_parsing else ins_score_thr
            # human instances are kept when score > thr, parts when score >= thr (ModelScope's comparisons)
            if (label == num_parsing and s > thr) or (label != num_parsing and s >= thr):
                cands.append(Candidate(query=i // num_classes, label=label, class_score=s))
        up = MaskUpsampler(mask_logits.float(), padded_hw, image_hw, out_hw)

        human_masks: list[npt.NDArray[np.bool_]] = []
        human_scores: list[float] = []
        for c in cands:
            m = up(c.query)
            pos = m > 0
            denom = pos.sum(dtype=torch.float32) + 1e-6
            c.score = c.class_score * float((m.sigmoid() * pos).sum(dtype=torch.float32) / denom)
            if c.label == num_parsing and c.score > human_score_thr:
                human_masks.append(pos.numpy().copy())
                human_scores.append(c.score)

        h0, w0 = out_hw
        best = torch.zeros((h0, w0), dtype=torch.float32)
        label_map = torch.zeros((h0, w0), dtype=torch.uint8)
        part_scores: dict[int, float] = {}
        for cls in range(num_parsing):
            insts = sorted((c for c in cands if c.label == cls and c.score >= ins_score_thr),
                           key=lambda c: c.score)
            if not insts:
                continue
            acc = torch.zeros((h0, w0), dtype=torch.float32)
            times = torch.zeros((h0, w0), dtype=torch.float32)
            for c in insts:
                p = up(c.query).sigmoid() * c.score
                hit = p > 0.5
                acc = torch.where(hit, p + acc, acc)
                times += hit
            acc /= torch.where(times == 0, torch.ones_like(times), times)
            # running argmax; strict '>' keeps the lower class id on ties, as argmax does
            better = acc > best
            best = torch.where(better, acc, best)
            label_map[better] = cls
            if cls != 0:
                part_scores[cls] = max(c.score for c in insts)
        return PostprocessOutput(label_map.numpy(), human_masks, human_scores, part_scores)
