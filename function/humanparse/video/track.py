"""Person tracking across frames: mask IoU between each frame's persons and the live tracks, Hungarian assignment
(scipy.optimize.linear_sum_assignment), lost tracks kept ``max_lost`` processed frames so a short occlusion keeps
its id. Masks are compared on a stride-``stride`` grid (a 1080p mask costs ~65x fewer pixels; IoU of people
tens of pixels wide barely moves)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from ..labels import CIHP_LABELS, PERSON_PALETTE, hex_color


@dataclass
class TrackFrame:
    frame: int  # sampled frame index
    time: float  # seconds
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), frame pixels
    area: int  # pixels of this person in the frame
    parts: dict[int, int]  # CIHP id -> pixels


@dataclass
class Track:
    id: int  # 1-based, stable across the clip
    frames: list[TrackFrame] = field(default_factory=list)
    mask: npt.NDArray[np.bool_] | None = None  # last seen mask on the tracker's grid
    lost: int = 0  # processed frames since last seen

    @property
    def color(self) -> str:
        return hex_color(PERSON_PALETTE[(self.id - 1) % len(PERSON_PALETTE)])

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "color": self.color, "frames": [f.frame for f in self.frames],
                "first": self.frames[0].time if self.frames else None,
                "last": self.frames[-1].time if self.frames else None,
                "per_frame": [{"frame": f.frame, "t": round(f.time, 3), "bbox": list(f.bbox), "area": f.area,
                               "parts": {CIHP_LABELS[k]: v for k, v in sorted(f.parts.items())}}
                              for f in self.frames]}


def iou_matrix(a: list[npt.NDArray[np.bool_]], b: list[npt.NDArray[np.bool_]]) -> npt.NDArray[np.float64]:
    """(len(a), len(b)) float64 IoU of same-shape bool masks."""
    if not a or not b:
        return np.zeros((len(a), len(b)), dtype=np.float64)
    fa = np.stack([m.ravel() for m in a]).astype(np.float32)
    fb = np.stack([m.ravel() for m in b]).astype(np.float32)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1.0), 0.0).astype(np.float64)


class Tracker:
    """Feed frames in order with ``update``; read ``tracks`` at the end.

    ``iou_threshold``: least IoU that continues a track; ``max_lost``: processed frames a track may miss and
    still be matched (10 frames = 1 s at the default 10 fps)."""

    def __init__(self, *, iou_threshold: float = 0.2, max_lost: int = 10, stride: int = 4) -> None:
        self.iou_threshold = iou_threshold
        self.max_lost = max_lost
        self.stride = stride
        self.tracks: list[Track] = []

    def update(self, frame: int, time: float, person_map: npt.NDArray[np.uint8],
               label_map: npt.NDArray[np.uint8]) -> dict[int, int]:
        """person_map: (H, W) uint8, 0 = nobody, k = person k of this frame; label_map: (H, W) uint8 CIHP ids.
        Returns {person id in this frame: track id}."""
        ids = [int(k) for k in np.unique(person_map) if k != 0]
        grid = person_map[:: self.stride, :: self.stride]
        masks = [grid == k for k in ids]
        live = [t for t in self.tracks if t.lost <= self.max_lost and t.mask is not None]
        iou = iou_matrix([t.mask for t in live if t.mask is not None], masks)
        assigned: dict[int, Track] = {}
        if iou.size:
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols, strict=True):
                if iou[r, c] >= self.iou_threshold:
                    assigned[c] = live[r]
        for t in self.tracks:
            t.lost += 1
        out: dict[int, int] = {}
        for c, pid in enumerate(ids):
            track = assigned.get(c)
            if track is None:
                track = Track(id=len(self.tracks) + 1)
                self.tracks.append(track)
            track.mask, track.lost = masks[c], 0
            track.frames.append(_track_frame(frame, time, person_map == pid, label_map))
            out[pid] = track.id
        return out

    def summary(self) -> list[dict[str, Any]]:
        return [t.as_dict() for t in self.tracks if t.frames]


def _track_frame(frame: int, time: float, sel: npt.NDArray[np.bool_],
                 label_map: npt.NDArray[np.uint8]) -> TrackFrame:
    ys, xs = np.nonzero(sel)
    counts = np.bincount(label_map[sel], minlength=len(CIHP_LABELS))
    parts = {int(k): int(counts[k]) for k in np.nonzero(counts)[0] if k != 0}
    return TrackFrame(frame=frame, time=time, bbox=(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1),
                      area=int(ys.size), parts=parts)


def relabel(person_map: npt.NDArray[np.uint8], mapping: dict[int, int]) -> npt.NDArray[np.uint8]:
    """Frame person ids → track ids, as (H, W) uint8 (track ids above 255 wrap to 1..255, so a palette PNG
    still colours them; tracks.json keeps the true id)."""
    lut = np.zeros(256, dtype=np.uint8)
    for k, tid in mapping.items():
        lut[k] = (tid - 1) % 255 + 1
    return lut[person_map]
