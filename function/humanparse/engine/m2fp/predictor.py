"""M2FP model folder → ready parser. ``build_m2fp(path)`` never downloads (see ``humanparse.download``)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from PIL import Image

from ...exceptions import ModelError, ModelNotFound
from ..types import ModelInfo, ParseResult, check_deadline, persons_from_box_masks, upscale_persons
from .modeling import M2FPNet
from .postprocess import m2fp_postprocess

CONFIG_FILE = "configuration.json"
WEIGHTS_FILE = "pytorch_model.pt"
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
SIZE_DIVISIBILITY = 32
# Keys a training checkpoint may carry beside the network's own; safe to ignore.
_IGNORABLE_PREFIXES = ("pixel_mean", "pixel_std", "criterion.")


@dataclass(frozen=True)
class M2FPConfig:
    backbone: dict[str, Any]
    encoder: dict[str, Any]
    decoder: dict[str, Any]
    classes: tuple[str, ...]
    num_parsing: int
    parsing_ins_score_thr: float
    single_human: bool

    @classmethod
    def from_file(cls, path: Path) -> M2FPConfig:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            model = raw["model"]
            return cls(backbone=dict(model["backbone"]), encoder=dict(model["encoder"]),
                       decoder=dict(model["decoder"]), classes=tuple(model["classes"]),
                       num_parsing=int(model.get("num_parsing", 20)),
                       parsing_ins_score_thr=float(model.get("parsing_ins_score_thr", 0.3)),
                       single_human=bool(model.get("single_human", False)))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{path} is not an M2FP configuration.json: {exc!r}") from exc


def preprocess_shape(h: int, w: int, short: int = 640, max_size: int = 1333) -> tuple[int, int]:
    """ModelScope's resize rule: short side to ``short``, long side capped at ``max_size``; returns (h, w)."""
    scale = short * 1.0 / min(h, w)
    newh, neww = (short * 1.0, scale * w) if h < w else (scale * h, short * 1.0)
    if max(newh, neww) > max_size:
        s = max_size * 1.0 / max(newh, neww)
        newh, neww = newh * s, neww * s
    return int(newh + 0.5), int(neww + 0.5)


def preprocess(rgb: npt.NDArray[np.uint8], short: int = 640, max_size: int = 1333) -> tuple[torch.Tensor, tuple[int, int]]:
    """rgb (H, W, 3) uint8 RGB → normalised (1, 3, Hp, Wp) float32 padded with 0 to a multiple of 32, and the
    resized (h, w) inside it. Resizes with PIL bilinear as torchvision's ``Resize`` on a PIL image does."""
    h, w = rgb.shape[:2]
    nh, nw = preprocess_shape(h, w, short, max_size)
    resized = np.array(Image.fromarray(rgb).resize((nw, nh), Image.Resampling.BILINEAR))  # writable copy for torch
    # ToTensor then *255, as the pipeline does, so float rounding matches it bit for bit
    x = torch.from_numpy(np.ascontiguousarray(resized)).permute(2, 0, 1).float().div(255.0) * 255.0
    mean = torch.tensor(PIXEL_MEAN).view(3, 1, 1)
    std = torch.tensor(PIXEL_STD).view(3, 1, 1)
    x = (x - mean) / std
    hp = (nh + SIZE_DIVISIBILITY - 1) // SIZE_DIVISIBILITY * SIZE_DIVISIBILITY
    wp = (nw + SIZE_DIVISIBILITY - 1) // SIZE_DIVISIBILITY * SIZE_DIVISIBILITY
    x = F.pad(x, (0, wp - nw, 0, hp - nh), value=0.0)
    return x[None].contiguous(), (nh, nw)


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise ModelError(f"cannot read {path}: {exc}") from exc
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path} holds no state dict under 'model'")
    return state


def build_m2fp_net(model_dir: str | Path) -> tuple[M2FPNet, M2FPConfig]:
    """Build the network from ``configuration.json`` and load ``pytorch_model.pt`` strictly."""
    root = Path(model_dir)
    cfg_path, w_path = root / CONFIG_FILE, root / WEIGHTS_FILE
    if not cfg_path.is_file() or not w_path.is_file():
        raise ModelNotFound(f"{root} is not an M2FP model folder (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
    cfg = M2FPConfig.from_file(cfg_path)
    if cfg.single_human:
        raise ModelError("single-human M2FP checkpoints are not supported; use the multi-human model")
    net = M2FPNet(cfg.backbone, cfg.encoder, cfg.decoder)
    state = read_checkpoint(w_path)
    state = {k: v for k, v in state.items() if not k.startswith(_IGNORABLE_PREFIXES)}
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)}≠{tuple(v.shape)}" for k, v in own.items()
             if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        raise ModelError(f"checkpoint does not match configuration: missing {missing[:5]}"
                         f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}, wrong shape {wrong[:5]}")
    net.load_state_dict(state, strict=True)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net, cfg


class M2FPParser:
    """Image in, ``ParseResult`` out. Thread-safe for concurrent ``parse`` calls (no mutable state)."""

    def __init__(self, net: M2FPNet, cfg: M2FPConfig, model_id: str, *, person_score_thr: float = 0.3,
                 precision: str = "fp32") -> None:
        self.net, self.cfg = net, cfg
        self.precision = precision
        self.person_score_thr = person_score_thr
        self.info = ModelInfo(kind="m2fp", model_id=model_id, supported_labels=tuple(range(cfg.num_parsing)),
                              notes="M2FP (Mask2Former for Parsing), ResNet-101, CIHP 20 classes")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (1, 3, Hp, Wp) normalised. Returns class logits (Q, C+1) and mask logits (Q, Hp/4, Wp/4)."""
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                     enabled=self.precision == "bf16"):
            cls, masks = self.net(x)
        return cls[0].float(), masks[0].float()

    def parse(self, rgb: npt.NDArray[np.uint8], *, deadline: float | None = None) -> ParseResult:
        """rgb (H, W, 3) uint8 RGB → maps at (H, W). Decisions are taken at the network's working size and
        brought to the photo once (``m2fp_postprocess``), so a 12 MP photo costs about what a small one does."""
        t0 = time.perf_counter()
        x, (nh, nw) = preprocess(rgb)
        t1 = time.perf_counter()
        check_deadline(deadline, "preprocess")
        cls, masks = self.forward(x)
        t2 = time.perf_counter()
        check_deadline(deadline, "forward")
        out = m2fp_postprocess(cls, masks, padded_hw=(int(x.shape[2]), int(x.shape[3])), image_hw=(nh, nw),
                               out_hw=(int(rgb.shape[0]), int(rgb.shape[1])), num_parsing=self.cfg.num_parsing,
                               ins_score_thr=self.cfg.parsing_ins_score_thr)
        humans = [h for h in out.humans if h.score >= self.person_score_thr]
        work_persons, persons = persons_from_box_masks(out.work_label_map, [h.box for h in humans],
                                                       [h.mask for h in humans], [h.score for h in humans],
                                                       out.part_scores)
        person_map, persons = upscale_persons(out.label_map, work_persons, persons, out.part_scores)
        t3 = time.perf_counter()
        return ParseResult(label_map=out.label_map, person_map=person_map, persons=persons, model=self.info,
                           timings={"preprocess": t1 - t0, "forward": t2 - t1, "postprocess": t3 - t2,
                                    "total": t3 - t0})


def build_m2fp(model_dir: str | Path, *, model_id: str | None = None, fast: bool = True,
               precision: str = "auto") -> M2FPParser:
    """``fast``: the rearranged fast path (``fast.py``); False keeps the reference arithmetic that matches
    ModelScope bit for bit. ``precision``: auto | fp32 | bf16 (see ``fast.choose_precision``)."""
    from .fast import choose_precision, make_fast

    net, cfg = build_m2fp_net(model_dir)
    if fast:
        make_fast(net)
    prec = choose_precision(precision) if fast else "fp32"
    return M2FPParser(net, cfg, model_id or Path(model_dir).name, precision=prec)
