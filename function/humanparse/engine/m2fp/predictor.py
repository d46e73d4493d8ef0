"""M2FP model folder → ready parser. ``build_m2fp(path)`` never downloads (see ``humanparse.models.download``)."""

from __future__ import annotations

import contextlib
import json
import logging
import pickle
import time
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from PIL import Image

from humanparse.engine.m2fp.autotune import REFERENCE, KernelChoice, choose_kernels
from humanparse.engine.m2fp.fast import make_fast
from humanparse.engine.m2fp.modeling import M2FPNet
from humanparse.engine.m2fp.postprocess import m2fp_postprocess
from humanparse.engine.m2fp.precision import PrecisionChoice, choose_precision
from humanparse.engine.types import ModelInfo, ParseResult, check_deadline, persons_from_box_masks, upscale_persons
from humanparse.exceptions import ModelError, ModelNotFound

CONFIG_FILE = "configuration.json"
WEIGHTS_FILE = "pytorch_model.pt"
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
SIZE_DIVISIBILITY = 32
log = logging.getLogger(__name__)


class CheckpointError(ModelError):
    """``pytorch_model.pt`` is not a checkpoint, or its weights do not fit the configuration."""

    code = "bad_checkpoint"


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
    """The state dict of a ModelScope ``pytorch_model.pt``: ``{"model": state_dict, ...training state}`` or a
    bare state dict. Anything else is a ``CheckpointError`` naming the file."""
    try:
        ckpt = _load(path)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError, OSError,
            AttributeError, TypeError) as exc:  # what torch.load raises for a file that is not a checkpoint
        raise CheckpointError(f"{path} is not a PyTorch checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path} holds no state dict (expected a dict of tensors under 'model')")
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(f"{path}: entries that are not tensors: {_names(not_tensors)}")
    return state


def _load(path: Path) -> Any:
    """``torch.load`` memory-mapped: only the weights the network reads are paged in, not training state beside
    them, and nothing is copied twice (0.17 vs 0.39-0.47 s for the 243 MB random folder, 2-core EPYC). Files in
    the legacy (non-zip) format cannot be mapped: read whole."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        return torch.load(path, map_location="cpu", weights_only=True)


@contextlib.contextmanager
def _no_random_init() -> Iterator[None]:
    """Build modules without drawing their random initial weights (``torch.nn.init``'s fills become no-ops):
    the checkpoint overwrites every one (``load_weights`` refuses a missing key), and drawing them took 0.65 of
    the 0.95 s the ResNet-101 M2FP took to build (2-core EPYC). Buffers are still set (BatchNorm's
    ``reset_running_stats`` zeroes its own), so a ``num_batches_tracked`` absent from the file is 0."""
    names = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "xavier_uniform_",
             "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_")
    saved = {n: getattr(torch.nn.init, n) for n in names}
    for n in names:
        setattr(torch.nn.init, n, lambda tensor, *args, **kwargs: tensor)
    try:
        yield
    finally:
        for n, f in saved.items():
            setattr(torch.nn.init, n, f)


def _names(keys: list[str], n: int = 8) -> str:
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def load_weights(net: torch.nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> list[str]:
    """Load ``state`` into ``net`` as ModelScope's ``M2FP.__init__`` does (``strict=False``), except where that
    would give wrong answers silently. Returns the unexpected keys (logged as one warning, then ignored:
    ``criterion.*``, ``pixel_mean``/``pixel_std``, modules the code no longer has). A missing key or a wrong shape
    raises ``CheckpointError`` naming them (ModelScope logs mis-shaped keys and runs with random weights there).
    BatchNorm's ``num_batches_tracked`` is a training counter that inference never reads: absent is fine."""
    own = net.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})" for k, v in own.items()
             if k in state and state[k].shape != v.shape]
    if missing or wrong:
        parts = ([f"missing {len(missing)} keys: {_names(missing)}"] if missing else []) + \
                ([f"wrong shape: {_names(wrong)}"] if wrong else [])
        raise CheckpointError(f"{source} does not match configuration.json: " + "; ".join(parts))
    unexpected = [k for k in state if k not in own]
    if unexpected:
        log.warning("%s: ignoring %d keys the network does not use: %s", source, len(unexpected), _names(unexpected))
    net.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return unexpected


def build_m2fp_net(model_dir: str | Path) -> tuple[M2FPNet, M2FPConfig]:
    """Build the network from ``configuration.json`` and load ``pytorch_model.pt`` (see ``load_weights``)."""
    root = Path(model_dir)
    cfg_path, w_path = root / CONFIG_FILE, root / WEIGHTS_FILE
    if not cfg_path.is_file() or not w_path.is_file():
        raise ModelNotFound(f"{root} is not an M2FP model folder (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
    cfg = M2FPConfig.from_file(cfg_path)
    if cfg.single_human:
        raise ModelError("single-human M2FP checkpoints are not supported; use the multi-human model")
    with _no_random_init():
        net = M2FPNet(cfg.backbone, cfg.encoder, cfg.decoder)
    load_weights(net, read_checkpoint(w_path), w_path)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net, cfg


class M2FPParser:
    """Image in, ``ParseResult`` out. Thread-safe for concurrent ``parse`` calls (no mutable state)."""

    def __init__(self, net: M2FPNet, cfg: M2FPConfig, model_id: str, *, person_score_thr: float = 0.3,
                 precision: str = "fp32", precision_reason: str = "", kernels: Mapping[str, str] | None = None,
                 kernels_reason: str = "") -> None:
        self.net, self.cfg = net, cfg
        self.precision = precision  # "fp32" | "bf16": what ``forward`` runs
        self.precision_reason = precision_reason or f"{precision} was requested"
        self.person_score_thr = person_score_thr
        self.info = ModelInfo(kind="m2fp", model_id=model_id, supported_labels=tuple(range(cfg.num_parsing)),
                              notes="M2FP (Mask2Former for Parsing), ResNet-101, CIHP 20 classes",
                              precision=precision, precision_reason=self.precision_reason,
                              kernels=dict(kernels or {}), kernels_reason=kernels_reason)

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
               precision: str = "auto", kernels: str | Mapping[str, str] = "auto",
               kernel_cache_dir: str | Path | None = None) -> M2FPParser:
    """``fast``: the rearranged fast path (``fast.py``); False keeps the reference arithmetic that matches
    ModelScope bit for bit (always fp32). ``precision``: auto | fp32 | bf16; ``auto`` is bf16 only where the
    folder's calibration verdict allows it on an AMX CPU (``precision.choose_precision``). ``kernels``: the fast
    path's formulations — ``auto`` measures them on this CPU at the current thread count (or reuses the verdict
    cached in ``kernel_cache_dir``), ``default``, or ``group=formulation,...`` (``autotune.choose_kernels``)."""
    net, cfg = build_m2fp_net(model_dir)
    if fast:
        make_fast(net)
        kc = choose_kernels(net, kernels, kernel_cache_dir)
    else:
        kc = KernelChoice(dict(REFERENCE), "reference path (ModelScope's formulations)")
    choice = choose_precision(precision, model_dir) if fast else PrecisionChoice("fp32", "reference path (fp32 only)")
    return M2FPParser(net, cfg, model_id or Path(model_dir).name, precision=choice.precision,
                      precision_reason=choice.reason, kernels=kc.kernels, kernels_reason=kc.source)
