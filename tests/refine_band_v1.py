"""The band refinement as it was before the row-slice version: the reference that
``postprocess.refine_band`` must equal exactly (tests/test_m2fp.py, bench/refine_band.py). Not shipped."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from humanparse.engine.m2fp.postprocess import _FLOOR, BoxUpsampler, Candidate, _linear_coords, edge_band


def refine_band_v1(work_label: npt.NDArray[np.uint8], cands: list[Candidate], up: BoxUpsampler,
                out_hw: tuple[int, int], num_parsing: int, ins_score_thr: float) -> npt.NDArray[np.uint8]:
    """The label map at ``out_hw`` (larger than the decision size): nearest-neighbour from ``work_label``, then the
    pixels in a band around label edges re-decided from the pasting candidates' logits upsampled to exactly those
    pixels (bilinear, the formula of ``F.interpolate``; floats may differ in the last bits)."""
    import cv2

    h, w = work_label.shape
    full = np.asarray(cv2.resize(work_label, (out_hw[1], out_hw[0]), interpolation=cv2.INTER_NEAREST), np.uint8)
    band = np.asarray(cv2.resize(edge_band(work_label).astype(np.uint8), (out_hw[1], out_hw[0]),
                                 interpolation=cv2.INTER_NEAREST), dtype=bool)
    ys_np, xs_np = np.nonzero(band)
    if ys_np.size == 0:
        return full
    ys, xs = torch.from_numpy(ys_np), torch.from_numpy(xs_np)
    ry0, ry1, rwy0, rwy1 = _linear_coords(h, out_hw[0])
    rx0, rx1, rwx0, rwx1 = _linear_coords(w, out_hw[1])
    iy0, iy1, wy0, wy1 = ry0[ys], ry1[ys], rwy0[ys], rwy1[ys]
    ix0, ix1, wx0, wx1 = rx0[xs], rx1[xs], rwx0[xs], rwx1[xs]
    n = ys.numel()
    best = torch.zeros(n, dtype=torch.float32)
    lab = torch.zeros(n, dtype=torch.uint8)
    for cls in range(num_parsing):
        pasting = sorted((c for c in cands if c.label == cls and c.score >= ins_score_thr and c.score > 0.5),
                         key=lambda c: c.score)
        if not pasting:
            continue
        acc = torch.zeros(n, dtype=torch.float32)
        times = torch.zeros(n, dtype=torch.float32)
        for c in pasting:
            hit = up.stage1(c.query)
            if hit is None:
                continue
            (y0, y1, x0, x1), m = hit
            sel = torch.nonzero((iy1 >= y0) & (iy0 < y1) & (ix1 >= x0) & (ix0 < x1)).flatten()
            if sel.numel() == 0:
                continue
            plane = torch.full((y1 - y0 + 2, x1 - x0 + 2), _FLOOR, dtype=torch.float32)
            plane[1:-1, 1:-1] = m
            a0 = torch.clamp(iy0[sel] - y0 + 1, 0, y1 - y0 + 1)
            a1 = torch.clamp(iy1[sel] - y0 + 1, 0, y1 - y0 + 1)
            b0 = torch.clamp(ix0[sel] - x0 + 1, 0, x1 - x0 + 1)
            b1 = torch.clamp(ix1[sel] - x0 + 1, 0, x1 - x0 + 1)
            v = ((plane[a0, b0] * wx0[sel] + plane[a0, b1] * wx1[sel]) * wy0[sel]
                 + (plane[a1, b0] * wx0[sel] + plane[a1, b1] * wx1[sel]) * wy1[sel])
            p = v.sigmoid() * c.score
            ok = p > 0.5
            acc[sel] = torch.where(ok, p + acc[sel], acc[sel])
            times[sel] += ok
        acc /= torch.where(times == 0, torch.ones_like(times), times)
        better = acc > best
        best = torch.where(better, acc, best)
        lab[better] = cls
    full[ys_np, xs_np] = lab.numpy()
    return full


