"""M2FP inference post-processing: query masks → semantic label map and human instances.

Same arithmetic as ModelScope's ``M2FP.instance_parsing_inference`` + ``paste_instance_to_semseg_probs``
(top-k (query, class) pairs, score = class prob × mean mask prob, per-class averaging of pasted instance
probabilities above 0.5, argmax), organised so its work is bounded by the model's canvas, not the photo:

- a mask logit is a convex combination of its low-resolution (1/4) cells, so it can be positive only near a
  positive cell: each candidate is upsampled only inside that box (plus margin). Outside it the mask is ≤ 0, which
  neither counts in the mask score nor reaches the 0.5 paste threshold (sigmoid ≤ 0.5, score ≤ 1) — exact;
- a candidate whose score is ≤ 0.5 can never paste (p = sigmoid × score ≤ score), so only its score is computed;
- the label map is a running argmax updated inside each class's box.

Labels and people are decided at the *working size* — the resized image inside the network's canvas (≤ 1333×640).
A larger photo gets the maps once, nearest-neighbour, and only the pixels in a band around label edges are
re-decided from the exactly upsampled logits of the candidates that can paste there (``refine_band``). Measured
agreement with deciding every photo pixel: bench/scale.py and the README's Scale section.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor

_FLOOR = -1e4  # stands for "some logit ≤ 0" outside a candidate's box
log = logging.getLogger(__name__)


@dataclass
class Candidate:
    query: int
    label: int
    class_score: float
    score: float = 0.0  # class_score * mask_score, set after upsampling
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # y0, y1, x0, x1 (exclusive) at the decision size


@dataclass
class HumanMask:
    """One human instance at the decision size: ``mask`` (y1-y0, x1-x0) bool inside ``box`` (y0, y1, x0, x1)."""

    box: tuple[int, int, int, int]
    mask: npt.NDArray[np.bool_]
    score: float


@dataclass
class PostprocessOutput:
    label_map: npt.NDArray[np.uint8]  # (H0, W0) uint8 ids 0..num_parsing-1, photo size
    work_label_map: npt.NDArray[np.uint8]  # (h, w) uint8: the decision size (== label_map when no upscaling)
    humans: list[HumanMask]  # at the decision size
    part_scores: dict[int, float]  # best pasted instance score per label


def select_candidates(class_logits: Tensor, num_parsing: int, ins_score_thr: float, human_score_thr: float,
                      topk: int) -> list[Candidate]:
    """class_logits (Q, C+1) → the top-k (query, class) pairs whose class probability passes its threshold (the
    final score is class prob × mask score ≤ class prob, so the others can never be kept)."""
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
    return cands


class BoxUpsampler:
    """One query's mask logits brought to the decision size ``out_hw`` as ModelScope does (bilinear ×4 to the
    padded canvas, crop to the resized image, bilinear to ``out_hw``; align_corners=False), computed only in the box
    that can hold positive values. The ×4 stage is ``upsample_exact`` on the box's rows and columns."""

    def __init__(self, mask_logits: Tensor, padded_hw: tuple[int, int], image_hw: tuple[int, int],
                 out_hw: tuple[int, int], cache_bytes: int = 256 << 20) -> None:
        self.masks = mask_logits  # (Q, h4, w4)
        self.padded_hw, self.image_hw, self.out_hw = padded_hw, image_hw, out_hw
        self.stride = padded_hw[0] // mask_logits.shape[1]
        self.rows = _linear_coords(mask_logits.shape[1], padded_hw[0])
        self.cols = _linear_coords(mask_logits.shape[2], padded_hw[1])
        self.exact = _exact_upsample_ok()
        self.keeps = cache_bytes > 0  # whether the boxes it returns may be read again (else callers may reuse them)
        self._out: tuple[Coords, Coords] | None = None  # image_hw → out_hw coordinates, made on first use
        self._cache: dict[int, tuple[tuple[int, int, int, int], Tensor] | None] = {}
        self._left = cache_bytes
        # per query, computed for all at once (one op each instead of ~10 small ones per query: the
        # post-processing's fixed cost was 0.33 ms a candidate): positive rows/columns span, largest logit
        self.spans = _positive_spans(mask_logits)
        self.peak = mask_logits.amax((1, 2)).tolist()
        self._lohi = (self.rows[0].tolist(), self.rows[1].tolist())

    def _stage1(self, q: int) -> tuple[tuple[int, int, int, int], Tensor] | None:
        """Positive-region box (y0, y1, x0, x1) in resized-image pixels and the logits inside it (contiguous), or
        None. Outside the box every value is ≤ 0 (module docstring)."""
        low = self.masks[q]
        span = self.spans[q]
        if span is None:
            return None
        r0, r1, c0, c1 = span
        s = self.stride
        y0, y1 = max(0, s * (r0 - 1)), min(self.image_hw[0], s * (r1 + 2))
        x0, x1 = max(0, s * (c0 - 1)), min(self.image_hw[1], s * (c1 + 2))
        if y0 >= y1 or x0 >= x1:
            return None
        if self.exact:
            ry = tuple(t[y0:y1] for t in self.rows)
            rx = tuple(t[x0:x1] for t in self.cols)
            lohi = self._lohi[0][y0], self._lohi[1][y1 - 1]
            return (y0, y1, x0, x1), upsample_exact(low, ry, rx, lohi)  # type: ignore[arg-type]
        h4, w4 = low.shape  # a CPU whose interpolate rounds otherwise: its own kernel on a crop
        cr0, cr1, cc0, cc1 = max(0, r0 - 3), min(h4, r1 + 4), max(0, c0 - 3), min(w4, c1 + 4)
        up = F.interpolate(low[None, None, cr0:cr1, cc0:cc1], scale_factor=float(s), mode="bilinear",
                           align_corners=False, recompute_scale_factor=False)[0, 0]
        return (y0, y1, x0, x1), up[y0 - s * cr0: y1 - s * cr0, x0 - s * cc0: x1 - s * cc0].contiguous()

    def stage1(self, q: int) -> tuple[tuple[int, int, int, int], Tensor] | None:
        """Cached ``_stage1``: the box and logits at the resized-image size (what ``refine_band`` reads)."""
        if q in self._cache:
            return self._cache[q]
        hit = self._stage1(q)
        size = 0 if hit is None else hit[1].numel() * 4
        if size <= self._left:
            self._cache[q] = hit
            self._left -= size
        return hit

    def __call__(self, q: int) -> tuple[tuple[int, int, int, int], Tensor] | None:
        """Box (y0, y1, x0, x1) at ``out_hw`` holding every positive value of query ``q``, and the values there."""
        hit = self.stage1(q)
        if hit is None or self.out_hw == self.image_hw:
            return hit
        (y0, y1, x0, x1), vals = hit
        # a box of most of the image: torch's kernel on the whole plane (its one pass beat the separable passes
        # there: 1024x768 from 853x640 took 0.47 s vs 0.49 s in bench/postprocess.py, 2 threads); a smaller box
        # costs what its own area does
        whole = (y1 - y0) * (x1 - x0) * 2 > self.image_hw[0] * self.image_hw[1]
        if whole or not self.exact or sum(self.out_hw) <= _SMALL_OUTPUT:
            plane = torch.full(self.image_hw, _FLOOR, dtype=torch.float32)
            plane[y0:y1, x0:x1] = vals  # outside: values ≤ 0 (see the module docstring), whatever they are
            full = F.interpolate(plane[None, None], size=self.out_hw, mode="bilinear", align_corners=False)[0, 0]
            oy, ox, box = 0, 0, full
        else:  # the output pixels reading the box; a plane with a _FLOOR border stands for everything outside
            if self._out is None:
                self._out = (_linear_coords(self.image_hw[0], self.out_hw[0]),
                             _linear_coords(self.image_hw[1], self.out_hw[1]))
            (oy, ry), (ox, rx) = _reading(self._out[0], y0, y1), _reading(self._out[1], x0, x1)
            plane = torch.full((y1 - y0 + 2, x1 - x0 + 2), _FLOOR, dtype=torch.float32)
            plane[1:-1, 1:-1] = vals
            box = upsample_exact(plane, ry, rx)
        span = _positive_spans(box[None])[0]
        if span is None:
            return None
        r0, r1, c0, c1 = span[0], span[1] + 1, span[2], span[3] + 1
        return (oy + r0, oy + r1, ox + c0, ox + c1), box[r0:r1, c0:c1].contiguous()


Coords = tuple[Tensor, Tensor, Tensor, Tensor]
# torch resizes outputs with height + width ≤ 128 with another kernel (other rounding): those keep F.interpolate
_SMALL_OUTPUT = 128


def upsample_exact(low: Tensor, rows: Coords, cols: Coords, lohi: tuple[int, int] | None = None) -> Tensor:
    """``F.interpolate(low, mode="bilinear", align_corners=False)`` at the output rows and columns whose source
    indices and weights are ``rows`` / ``cols`` (``_linear_coords``, sliced), as one contiguous (len(rows[0]),
    len(cols[0])) float32 tensor with the same floats: torch's CPU kernel computes fma(x0, w0, x1 * w1) along
    the width, then the same along the height, and ``addcmul`` is that fma (checked at run time by
    ``_exact_upsample_ok``). Separable, in streaming passes instead of the kernel's per-pixel gathers, and only
    the box is computed: the whole ×4 to 640x864 took 0.45-0.47 ms vs 0.96-1.46 ms for ``F.interpolate`` at 1
    thread, about the same at 2 (0.62-0.72 vs 0.57-0.80 ms; 2-core EPYC, alone). (Rows of one phase of a ×4
    resize read consecutive source rows, so strided slices could replace the row gathers: measured no faster.)
    ``lohi``: (rows[0][0], rows[1][-1]) if the caller knows them."""
    iy0, iy1, wy0, wy1 = rows
    ix0, ix1, wx0, wx1 = cols
    lo, hi = lohi if lohi is not None else (int(iy0[0]), int(iy1[-1]))
    band = low[lo: hi + 1]  # the low-resolution rows the output reads
    across = band.index_select(1, ix1).mul_(wx1).addcmul_(band.index_select(1, ix0), wx0)
    return across.index_select(0, iy1 - lo).mul_(wy1[:, None]).addcmul_(across.index_select(0, iy0 - lo),
                                                                         wy0[:, None])


def _reading(coords: Coords, a: int, b: int) -> tuple[int, Coords]:
    """The first output index whose sources meet [a, b), and the coordinates of that run of outputs with source
    indices shifted into a plane holding [a, b) at 1.. and a border at 0 and b - a + 1."""
    i0, i1, w0, w1 = coords
    idx = torch.nonzero((i1 >= a) & (i0 < b)).flatten()
    first, last = int(idx[0]), int(idx[-1]) + 1
    shift = [torch.clamp(i[first:last] - a + 1, 0, b - a + 1) for i in (i0, i1)]
    return first, (shift[0], shift[1], w0[first:last], w1[first:last])


@functools.cache
def _exact_upsample_ok() -> bool:
    """Whether ``upsample_exact`` gives ``F.interpolate``'s floats on this CPU and build (both depend on the
    compiler contracting a*b + c into an fma): checked once on random values at ×4 and at an odd ratio."""
    g = torch.Generator().manual_seed(0)
    for (h, w), (oh, ow) in (((23, 31), (92, 124)), ((40, 56), (57, 73))):
        low = torch.randn(h, w, generator=g) * 8
        how: dict[str, Any] = ({"scale_factor": 4.0, "recompute_scale_factor": False} if oh == 4 * h  # the ×4 stage's
                               else {"size": (oh, ow)})
        ref = F.interpolate(low[None, None], mode="bilinear", align_corners=False, **how)[0, 0]
        rows, cols = _linear_coords(h, oh), _linear_coords(w, ow)
        # the whole output, and a box starting mid-phase as the candidates' boxes do
        boxes = [upsample_exact(low, rows, cols), upsample_exact(low, tuple(t[5:-3] for t in rows), cols)]  # type: ignore[arg-type]
        ref = torch.cat([ref, ref[5:-3]])
        if not torch.equal(torch.cat(boxes), ref):
            log.info("exact separable upsampling does not match F.interpolate here: using F.interpolate")
            return False
    return True


def _photo_samples(hit: tuple[tuple[int, int, int, int], Tensor], work_hw: tuple[int, int],
                   photo_hw: tuple[int, int], k: int | None = None) -> Tensor:
    """The logits the photo-size upsample would have on a grid of photo pixels (every k-th row and column), from the
    working-size box ``hit``: the mask score is a mean over photo pixels. k defaults to half the upscale factor
    (2 for 12 MP from 853x640), measured on a 12 MP photo with the random-weight folder against deciding every
    photo pixel: working-size mean → smallest class IoU 0.93; k = factor (4) → scores off by up to 3e-4 and IoU
    0.976; k = 3 → 0.980; k = 2 → 0.988; every pixel (k = 1) → 0.991 (the band's own limit). Interpolated
    columns first (a gather on the box's rows), then rows (whole-row copies), each one ``lerp``: the same floats
    as the separable formula written out (tests/test_m2fp.py)."""
    (y0, y1, x0, x1), m = hit
    k = k or max(1, int(photo_hw[0] / work_hw[0] / 2))
    plane = torch.full((y1 - y0 + 2, x1 - x0 + 2), _FLOOR, dtype=torch.float32)
    plane[1:-1, 1:-1] = m
    (a0, a1), wy = _grid_reading(work_hw[0], photo_hw[0], k, y0, y1)
    (b0, b1), wx = _grid_reading(work_hw[1], photo_hw[1], k, x0, x1)
    # the same lerps in fewer passes: a column gather (0.22 ms) instead of index_select along dim 1 (0.40 ms),
    # each lerp into its first operand; a 12 MP sample (1512 x 2016) took 1.0 instead of 1.8 ms (interleaved)
    rows = plane.shape[0]
    cols = torch.gather(plane, 1, b0.expand(rows, -1)).lerp_(torch.gather(plane, 1, b1.expand(rows, -1)), wx)
    return cols.index_select(0, a0).lerp_(cols.index_select(0, a1), wy[:, None])


def _grid_reading(n_work: int, n_photo: int, k: int, a: int, b: int) -> tuple[tuple[Tensor, Tensor], Tensor]:
    """Of the grid's photo pixels (every k-th of ``n_photo``), those whose sources meet the box's [a, b): their
    source indices into a plane holding [a, b) at 1.. with a border at 0 and b - a + 1, and their weights (w1).
    The sources are non-decreasing, so those pixels are one run."""
    i0, i1, w1 = _grid_coords(n_work, n_photo, k)
    first, last = int(torch.searchsorted(i1, a)), int(torch.searchsorted(i0, b))
    s0, s1 = (torch.clamp(i[first:last] - a + 1, 0, b - a + 1) for i in (i0, i1))
    return (s0, s1), w1[first:last]


@functools.lru_cache(maxsize=8)
def _grid_coords(n_work: int, n_photo: int, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """``_linear_coords(n_work, n_photo)``'s source indices (i0, i1) and weight w1 at every k-th output, contiguous:
    made once per photo size, not once per candidate (96 times a 12 MP parse)."""
    i0, i1, _, w1 = _linear_coords(n_work, n_photo)
    return i0[::k].contiguous(), i1[::k].contiguous(), w1[::k].contiguous()


def _positive_spans(masks: Tensor) -> list[tuple[int, int, int, int] | None]:
    """Per plane of ``masks`` (Q, h, w): (first row, last row, first column, last column) holding a value > 0
    (inclusive), or None if none does."""
    rows, cols = (masks.amax(2) > 0), (masks.amax(1) > 0)
    h, w = rows.shape[1], cols.shape[1]
    r0, c0 = rows.byte().argmax(1), cols.byte().argmax(1)  # the first maximum: the first True
    r1, c1 = h - 1 - rows.flip(1).byte().argmax(1), w - 1 - cols.flip(1).byte().argmax(1)
    return [(a, b, c, d) if ok else None for a, b, c, d, ok in
            zip(r0.tolist(), r1.tolist(), c0.tolist(), c1.tolist(), rows.any(1).tolist(), strict=True)]


def _indicator(x: Tensor) -> Tensor:
    """1.0 where ``x`` > 0, else 0.0, float32. Why not ``x > 0``: on CPU a bool mask and every op that mixes it with
    floats (``where``, ``*``, ``+=``, ``sum``) take 0.3-3 ms a 640x864 plane, float ops 0.06-0.1 ms (measured,
    2-core EPYC); the comparison written straight into a float tensor is one pass (0.08 ms at 1 thread; relu +
    sign, the same 0/1, took 0.15)."""
    return torch.gt(x, 0, out=torch.empty_like(x, memory_format=torch.contiguous_format))


def _mask_score(pos: Tensor, s: Tensor) -> float:
    """ModelScope's mask score: mean of sigmoid(m) over the pixels where m > 0. ``pos`` = ``_indicator(m)`` (used
    up), ``s`` = m.sigmoid()."""
    count = pos.sum()
    return float(pos.mul_(s).sum() / (count + 1e-6))  # the sums ModelScope takes (not dot: other rounding)


def _sampled_mask_score(sample: Tensor) -> float:
    """``_mask_score`` of a 2-D sample (an estimate, so sigmoid > 0.5 stands for logit > 0; they differ only for
    logits under 3e-8), in four passes over it instead of six (``torch.count_nonzero`` for the count took 6 ms a
    12 MP sample, ``sign_`` and ``sum`` 0.26 ms). Summed row by row, then the rows in float64: the same at any
    thread count (a whole-tensor sum is split among the threads, and a 12 MP photo's label map differed in 2-3
    pixels between 1, 2 and 3 threads), and closer to the exact sum (``math.fsum``); 0.43 against 0.40 ms."""
    kept = F.threshold(sample.sigmoid_(), 0.5, 0.0, inplace=True)
    total = kept.sum(1).sum(dtype=torch.float64)
    return float(total / (kept.sign_().sum(1).sum(dtype=torch.float64) + 1e-6))


def _dominated(c: Candidate, peak: float, best: float) -> bool:
    """Whether a part candidate's score cannot matter, known before upsampling: score = class score × mask score,
    and the mask score (a mean of sigmoids) is at most sigmoid of ``peak``, the largest low-resolution logit
    (bilinear values are convex combinations of them). A candidate whose bound is ≤ 0.5 never pastes; if its
    label already has a score above the bound it is not the label's best either. (1e-5: the mean's rounding.)"""
    bound = c.class_score * min(1.0, 1.0 / (1.0 + math.exp(-max(peak, -80.0))) + 1e-5)
    return bound <= 0.5 and best > bound


def _score_candidates(cands: list[Candidate], up: BoxUpsampler, num_parsing: int, human_score_thr: float,
                      photo_hw: tuple[int, int] | None = None,
                      keep_bytes: int = 0) -> tuple[list[HumanMask], dict[int, Tensor]]:
    """Set each candidate's score and box; return the human instances and, within ``keep_bytes``, the paste
    values (``_paste_values``) in the box of each part candidate that can paste (score > 0.5), which ``_paste``
    then reads instead of upsampling and taking the sigmoid again. ``photo_hw``: the decision size is smaller
    than the photo, and scores are taken on a grid of photo pixels (``_photo_samples``); nothing is kept then.
    Part candidates that cannot matter (``_dominated``) are skipped, their score left 0."""
    humans: list[tuple[int, HumanMask]] = []  # with the candidate's place in ``cands``: ModelScope's order
    kept: dict[int, Tensor] = {}
    best: dict[int, float] = {}  # highest score found so far per part label
    # a label's best score known early (``_dominated``)
    for i, c in sorted(enumerate(cands), key=lambda ic: -ic[1].class_score):
        if c.label != num_parsing and _dominated(c, up.peak[c.query], best.get(c.label, 0.0)):
            c.score = 0.0  # not computed: it can neither paste nor be its label's best score
            continue
        hit = up(c.query)
        if hit is None:  # no positive pixel: mask score 0
            c.score = 0.0
            continue
        c.box, m = hit
        human = (m > 0).numpy() if c.label == num_parsing else None
        if photo_hw is None:
            pos = _indicator(m)
            sig = m.sigmoid() if up.keeps else m.sigmoid_()  # a logit box nobody reads again: in place
            c.score = c.class_score * _mask_score(pos, sig)
        else:
            c.score = c.class_score * _sampled_mask_score(_photo_samples(hit, up.out_hw, photo_hw))
        best[c.label] = max(best.get(c.label, 0.0), c.score)
        if human is not None:
            if c.score > human_score_thr:
                humans.append((i, HumanMask(c.box, human, c.score)))
        elif photo_hw is None and c.score > 0.5 and sig.numel() * 4 <= keep_bytes:
            kept[c.query] = _paste_values(sig, c.score)  # while the sigmoids are still in the CPU's cache
            keep_bytes -= sig.numel() * 4
    return [h for _, h in sorted(humans, key=lambda ih: ih[0])], kept


def _paste_values(sig: Tensor, score: float) -> Tensor:
    """ModelScope's instance probability p = sigmoid × score where p > 0.5, else 0 (adds nothing); in place."""
    return F.threshold(sig.mul_(score), 0.5, 0.0, inplace=True)


def _paste(cands: list[Candidate], up: BoxUpsampler, kept: dict[int, Tensor], out_hw: tuple[int, int],
           num_parsing: int, ins_score_thr: float) -> tuple[npt.NDArray[np.uint8], dict[int, float]]:
    """ModelScope's paste (per class: mean of the instance probabilities p = sigmoid × score where p > 0.5; then
    argmax over classes, lower id on ties) as a running argmax inside each class's box, in float ops only
    (``_indicator``). ``kept``: paste values from ``_score_candidates`` (consumed); the others are upsampled
    again."""
    best = torch.zeros(out_hw, dtype=torch.float32)
    label = torch.zeros(out_hw, dtype=torch.float32)  # class ids as floats (exact), uint8 at the end
    part_scores: dict[int, float] = {}
    for cls in range(num_parsing):
        insts = sorted((c for c in cands if c.label == cls and c.score >= ins_score_thr), key=lambda c: c.score)
        if not insts:
            continue
        if cls != 0:
            part_scores[cls] = max(c.score for c in insts)
        pasting = [c for c in insts if c.score > 0.5]  # p = sigmoid × score ≤ score: the rest never pass 0.5
        if not pasting:
            continue
        y0, y1 = min(c.box[0] for c in pasting), max(c.box[1] for c in pasting)
        x0, x1 = min(c.box[2] for c in pasting), max(c.box[3] for c in pasting)
        acc = torch.zeros((y1 - y0, x1 - x0), dtype=torch.float32)
        times = torch.zeros_like(acc) if len(pasting) > 1 else acc  # (``acc``: not used)
        for c in pasting:
            p = kept.pop(c.query, None)
            if p is None:
                hit = up(c.query)
                assert hit is not None
                p = _paste_values(hit[1].sigmoid(), c.score)
            by0, by1, bx0, bx1 = c.box
            a, t = acc[by0 - y0: by1 - y0, bx0 - x0: bx1 - x0], times[by0 - y0: by1 - y0, bx0 - x0: bx1 - x0]
            a.add_(p)
            if len(pasting) > 1:  # one instance: its mean is p itself
                t.add_(p.ceil_())  # p is 0 or in (0.5, 1]: ceil is the 0/1 count
        if len(pasting) > 1:
            acc.div_(times.clamp_min(1.0))
        # running argmax; strict '>' keeps the lower class id on ties, as argmax does
        b, lm = best[y0:y1, x0:x1], label[y0:y1, x0:x1]
        lm.addcmul_(_indicator(acc - b), cls - lm)
        b.copy_(torch.maximum(b, acc))
    return label.to(torch.uint8).numpy(), part_scores


def _linear_coords(n_in: int, n_out: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Source rows (i0, i1) and weights (w0, w1) of a bilinear resize n_in → n_out (align_corners=False), the
    floats torch's kernel uses: source = fma(scale, i + 0.5, -0.5) (``addcmul``)."""
    scale = torch.tensor(float(n_in)) / torch.tensor(float(n_out))
    half = torch.arange(n_out, dtype=torch.float32) + 0.5
    src = torch.clamp(torch.addcmul(torch.full((n_out,), -0.5), half, scale.expand(n_out)), min=0)
    i0 = torch.clamp(src.floor().long(), max=n_in - 1)
    l1 = torch.clamp(src - i0, 0, 1)
    return i0, torch.clamp(i0 + 1, max=n_in - 1), 1 - l1, l1


def edge_band(label: npt.NDArray[np.uint8], width: int = 0) -> npt.NDArray[np.bool_]:
    """(h, w) bool: pixels whose 3×3 neighbourhood holds more than one label, grown by ``width`` pixels."""
    import cv2

    k = np.ones((3, 3), np.uint8)
    lo, hi = cv2.erode(label, k), cv2.dilate(label, k)
    band = (lo != hi).astype(np.uint8)
    if width > 0:
        band = cv2.dilate(band, np.ones((2 * width + 1, 2 * width + 1), np.uint8))
    return np.asarray(band, dtype=bool)


def refine_band(work_label: npt.NDArray[np.uint8], cands: list[Candidate], up: BoxUpsampler,
                out_hw: tuple[int, int], num_parsing: int, ins_score_thr: float) -> npt.NDArray[np.uint8]:
    """The label map at ``out_hw`` (larger than the decision size): nearest-neighbour from ``work_label``, then the
    pixels in a band around label edges re-decided from the pasting candidates' logits upsampled to exactly those
    pixels (bilinear, the formula of ``F.interpolate``; floats may differ in the last bits).

    Band pixels are in row order, so the pixels whose source rows meet a candidate's box are one slice
    (``np.searchsorted``), and the four source cells are read from one working-size plane that is ``_FLOOR``
    outside the box, by flat indices computed once. A pixel of the slice outside the box's columns reads four
    ``_FLOOR`` cells, exactly as the border of a per-box plane, so it cannot paste: the same result as gathering
    only the box's pixels (tests/test_m2fp.py), without 1.6 M-pixel masks, gathers and scatters per candidate."""
    import cv2

    h, w = work_label.shape
    full = np.asarray(cv2.resize(work_label, (out_hw[1], out_hw[0]), interpolation=cv2.INTER_NEAREST), np.uint8)
    band = np.asarray(cv2.resize(edge_band(work_label).astype(np.uint8), (out_hw[1], out_hw[0]),
                                 interpolation=cv2.INTER_NEAREST), dtype=bool)
    # row-major: ys non-decreasing, so are their source rows (flat indices: numpy's 2-D nonzero took 5x as long)
    flat_idx = np.flatnonzero(band)
    if flat_idx.size == 0:
        return full
    ys_np, xs_np = np.divmod(flat_idx, out_hw[1])
    taps = _band_taps(ys_np, xs_np, (h, w), out_hw)
    plane = torch.full((h, w), _FLOOR, dtype=torch.float32)
    best = torch.zeros(ys_np.size, dtype=torch.float32)
    lab = torch.zeros(ys_np.size, dtype=torch.float32)
    for cls in range(num_parsing):
        pasting = sorted((c for c in cands if c.label == cls and c.score >= ins_score_thr and c.score > 0.5),
                         key=lambda c: c.score)
        if not pasting:
            continue
        acc = _band_paste(pasting, up, taps, plane)
        lab.addcmul_(_indicator(acc - best), cls - lab)
        best = torch.maximum(best, acc)
    full.reshape(-1)[flat_idx] = lab.to(torch.uint8).numpy()
    return full


@dataclass(frozen=True)
class _BandTaps:
    """Bilinear taps of the n band pixels (row order) into an (h, w) working plane: flat indices of the four
    source cells (i00 = top-left, i01 top-right, i10, i11) and their (n,) float32 weights, and each pixel's first
    and last source row (int64 numpy, non-decreasing)."""

    i00: Tensor
    i01: Tensor
    i10: Tensor
    i11: Tensor
    wy0: Tensor
    wy1: Tensor
    wx0: Tensor
    wx1: Tensor
    first_row: npt.NDArray[np.int64]
    last_row: npt.NDArray[np.int64]


def _band_taps(ys_np: npt.NDArray[np.intp], xs_np: npt.NDArray[np.intp], work_hw: tuple[int, int],
               out_hw: tuple[int, int]) -> _BandTaps:
    """Taps of the band pixels (ys, xs at ``out_hw``) into the ``work_hw`` plane, ``F.interpolate``'s formula."""
    h, w = work_hw
    ys, xs = torch.from_numpy(ys_np), torch.from_numpy(xs_np)
    ry0, ry1, rwy0, rwy1 = (t.index_select(0, ys) for t in _linear_coords(h, out_hw[0]))
    rx0, rx1, rwx0, rwx1 = (t.index_select(0, xs) for t in _linear_coords(w, out_hw[1]))
    row0, row1 = ry0 * w, ry1 * w
    return _BandTaps(row0 + rx0, row0 + rx1, row1 + rx0, row1 + rx1, rwy0, rwy1, rwx0, rwx1, ry0.numpy(),
                     ry1.numpy())


def _band_paste(pasting: list[Candidate], up: BoxUpsampler, taps: _BandTaps, plane: Tensor) -> Tensor:
    """One class's paste value at each band pixel: the mean of its pasting candidates' thresholded probabilities
    (as ``_paste``), (n,) float32. ``plane`` is the (h, w) ``_FLOOR`` plane, borrowed and given back unchanged."""
    flat = plane.view(-1)
    n = taps.i00.numel()
    acc = torch.zeros(n, dtype=torch.float32)
    times = torch.zeros(n, dtype=torch.float32)
    for c in pasting:
        hit = up.stage1(c.query)
        if hit is None:
            continue
        (y0, y1, x0, x1), m = hit
        # pixels with iy1 >= y0 and iy0 < y1: one slice of the row-ordered band
        lo = int(np.searchsorted(taps.last_row, y0, "left"))
        hi = int(np.searchsorted(taps.first_row, y1, "left"))
        if lo >= hi:
            continue
        s = slice(lo, hi)
        plane[y0:y1, x0:x1] = m
        # (a wx0 + b wx1) wy0 + (c wx0 + d wx1) wy1 with one rounding per operation, as the expression written
        # out, but in place: 4 new buffers instead of 14 (the bench's 12 MP band paste: 0.45 -> 0.36 s, interleaved).
        v = _tap(flat, taps.i00, taps.wx0, s).add_(_tap(flat, taps.i01, taps.wx1, s)).mul_(taps.wy0[s])
        v.add_(_tap(flat, taps.i10, taps.wx0, s).add_(_tap(flat, taps.i11, taps.wx1, s)).mul_(taps.wy1[s]))
        plane[y0:y1, x0:x1] = _FLOOR
        p = F.threshold(v.sigmoid_().mul_(c.score), 0.5, 0.0, inplace=True)  # as in _paste
        acc[s].add_(p)
        times[s].add_(p.sign_())
    return acc.div_(times.clamp_min(1.0))


def _tap(flat: Tensor, idx: Tensor, weight: Tensor, s: slice) -> Tensor:
    """``flat[idx[s]] * weight[s]``, a new tensor. ``index_select``, not ``flat[idx]``: the same gather, 0.36 vs
    0.86 ms for a 12 MP band's 1 M pixels."""
    return flat.index_select(0, idx[s]).mul_(weight[s])


def m2fp_postprocess(class_logits: Tensor, mask_logits: Tensor, *, padded_hw: tuple[int, int],
                     image_hw: tuple[int, int], out_hw: tuple[int, int], num_parsing: int,
                     ins_score_thr: float, human_score_thr: float = 0.1, topk: int = 100,
                     full_resolution: bool = False) -> PostprocessOutput:
    """class_logits: (Q, C+1) for one image (C includes the Human class at index ``num_parsing``);
    mask_logits: (Q, h4, w4). ``image_hw`` is the resized size inside the padded canvas; ``out_hw`` the
    original photo size. Decisions are taken at ``image_hw`` when the photo has at least twice its pixels (then
    upscaled with ``refine_band``), else at ``out_hw``; ``full_resolution`` decides every photo pixel (the reference)."""
    with torch.no_grad():
        cands = select_candidates(class_logits, num_parsing, ins_score_thr, human_score_thr, topk)
        # below 2x the working size's pixels deciding every photo pixel is cheaper than the band refinement
        upscale = not full_resolution and out_hw[0] * out_hw[1] >= 2 * image_hw[0] * image_hw[1]
        decide_hw = image_hw if upscale else out_hw
        # what is kept between scoring and pasting: the logits at the working size when refine_band reads them
        # again (upscale), else the sigmoids of the candidates that paste (each box's, at most 256 MB)
        budget = 256 << 20
        up = BoxUpsampler(mask_logits.float(), padded_hw, image_hw, decide_hw, cache_bytes=budget if upscale else 0)
        humans, kept = _score_candidates(cands, up, num_parsing, human_score_thr, out_hw if upscale else None,
                                         keep_bytes=0 if upscale else budget)
        work, part_scores = _paste(cands, up, kept, decide_hw, num_parsing, ins_score_thr)
        final = refine_band(work, cands, up, out_hw, num_parsing, ins_score_thr) if upscale else work
        return PostprocessOutput(final, work, humans, part_scores)
