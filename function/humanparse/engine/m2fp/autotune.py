"""Which kernel runs each exact formulation of the fast path, chosen by measurement on this CPU.

Where two (or three) formulations compute the same thing up to float rounding, which is faster depends on the
CPU and the thread count, not on the vendor: on an AVX2-only AMD EPYC oneDNN's 1x1 convolution beat MKL's GEMM
for some of the pixel decoder's linears, on AMX Xeons MKL is the fast one. So at load the fast path times each
group of layers with the same shape both ways on the model's real shapes (the 864x640 canvas of a 4:3 photo),
at ``torch.get_num_threads()``, keeps the faster, and caches the verdict in a small JSON file keyed by CPU model,
thread count, torch version and the network's shapes. A cached verdict costs nothing at the next start.

Groups (``GROUPS``: name → formulations, the first is the default when nothing is measured):
- ``encoder_ffn_linear``, ``encoder_proj_linear`` (value/output projections), ``encoder_sampling_linear``
  (sampling offsets, attention weights): ``onednn`` (``modeling.OneDnnLinear``, a 1x1 convolution) or ``mkl``
  (``nn.Linear``);
- ``deform_sampling``: ``bag`` (``F.embedding_bag``), ``csr`` (CSR sparse-dense product) or ``grid``
  (``F.grid_sample``, the reference: never the fastest, so only forced, not measured);
- ``decoder_attention``: ``fused`` (no attention weights: the fused kernel) or ``plain`` (weights returned,
  ModelScope's call);
- ``backbone_conv``: ``fused`` (ReLU and the residual sum as oneDNN post-ops of the ResNet's convolutions) or
  ``plain`` (the convolution, then the separate ops): oneDNN's post-ops are x86-tuned, and on arm64 its
  convolutions go through the Arm Compute Library, where the fused call may be the slower one.

Every formulation is held to the reference by ``tests/test_fast_path.py``.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from humanparse.engine.cpu import cpu_model
from humanparse.engine.m2fp.modeling import (
    Bottleneck,
    Conv2d,
    CrossAttentionLayer,
    DeformEncoderLayer,
    DeformTransformerEncoderOnly,
    M2FPNet,
    MSDeformAttn,
    OneDnnLinear,
    SelfAttentionLayer,
    linear_relu,
    ms_deform_attn_core,
    pixel_reference,
    sparse_sample,
)

log = logging.getLogger(__name__)

GROUPS: dict[str, tuple[str, ...]] = {
    "encoder_ffn_linear": ("onednn", "mkl"),
    "encoder_proj_linear": ("onednn", "mkl"),
    "encoder_sampling_linear": ("onednn", "mkl"),
    "deform_sampling": ("bag", "csr", "grid"),
    "decoder_attention": ("fused", "plain"),
    "backbone_conv": ("fused", "plain"),
}
DEFAULTS: dict[str, str] = {g: c[0] for g, c in GROUPS.items()}
# What the reference path (``fast=False``) runs: ModelScope's arithmetic.
REFERENCE: dict[str, str] = {"encoder_ffn_linear": "mkl", "encoder_proj_linear": "mkl",
                             "encoder_sampling_linear": "mkl", "deform_sampling": "grid",
                             "decoder_attention": "plain", "backbone_conv": "plain"}
CACHE_FILE = "kernels.json"
CACHE_VERSION = 1
TUNE_CANVAS = (640, 864)  # (H, W): a 4:3 photo at ModelScope's 640 short side
# A challenger replaces the default only when it is this much faster (timing noise on a shared CPU is ~5 %).
MIN_GAIN = 1.05
# The encoder's linears are timed on a quarter of the canvas's tokens (2835 of 11340 rows: large GEMMs, same
# kernels; at an eighth MKL looked up to 15 % better than at full size), so that all groups cost ~0.8-1 s at
# one thread on an AVX2 EPYC, about half that at two.
TOKEN_SHARE = 4
# Deformable sampling is timed on the canvas halved each way (queries and values both a quarter: the ratio of
# the formulations holds; a share of the queries alone over all the values would favour grid_sample).
# After the first round a formulation 3x slower than the best is not timed again (grid_sample, ~6x slower
# than the others on an AVX2 EPYC), after later rounds one 1.6x slower.
DROP_FIRST, DROP_RATIO = 3.0, 1.6
# grid_sample is the reference, not a contender: 6-13x slower than bag/csr at 1 and 2 threads on both EPYCs
# measured (67-100 ms for its one warm-up call at 2 threads: an eighth of the whole measurement). It stays
# selectable by ``HUMANPARSE_KERNELS=deform_sampling=grid``.
NOT_MEASURED = {"deform_sampling": ("grid",)}
ROUNDS = 3  # timed rounds after the warm-up: at least 2, the third while the budget allows
BUDGET_S = 0.6  # all groups together: 0.55-0.65 s at 2 threads on a 2-core EPYC, so cold start stays under 3 s
# (backbone_conv adds 0.19-0.36 s there: 16-20 ms a call for one res4 block on the halved canvas, more when the
# CPU is busy; it runs its two timed rounds even past the budget, as every group does)
# A verdict whose repeated timings of one formulation differ by more than this (the CPU was busy elsewhere)
# is used but not cached: the next start measures again. (On the 2 shared cores here a half-idle machine
# still gave 1.5-1.7x, and the paired-win rule of ``_pick`` already guards the choice itself.)
NOISY_SPREAD = 2.0


@dataclass(frozen=True)
class KernelChoice:
    kernels: dict[str, str]  # group → formulation that runs
    source: str  # one plain sentence: measured, cached, forced or reference
    timings_ms: dict[str, dict[str, float]] = field(default_factory=dict)  # group → formulation → best ms


def parse_forced(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """``"auto"``/empty → {}; ``"group=formulation,..."`` or a mapping → those choices, checked."""
    if spec is None or (isinstance(spec, str) and spec.strip() in ("", "auto")):
        return {}
    pairs: dict[str, str]
    if isinstance(spec, str):
        pairs = {}
        for item in spec.split(","):
            if item.strip():
                name, sep, value = item.partition("=")
                if not sep:
                    raise ValueError(f"kernels: {item.strip()!r} is not group=formulation")
                pairs[name.strip()] = value.strip()
    else:
        pairs = dict(spec)
    for name, value in pairs.items():
        if name not in GROUPS:
            raise ValueError(f"kernels: unknown group {name!r} (one of {', '.join(GROUPS)})")
        if value not in GROUPS[name]:
            raise ValueError(f"kernels: {name} must be one of {', '.join(GROUPS[name])}, not {value!r}")
    return pairs


# ------------------------------------------------------------------------------------------ applying
def _encoder_layers(net: M2FPNet) -> list[DeformEncoderLayer]:
    layers = net.sem_seg_head.pixel_decoder.transformer.encoder.layers
    return [m for m in layers if isinstance(m, DeformEncoderLayer)]


def _layer_slots(layer: DeformEncoderLayer, group: str) -> list[tuple[nn.Module, str]]:
    """(parent, attribute) of each linear of ``group`` in one encoder layer."""
    attn: nn.Module = layer.self_attn
    slots: dict[str, list[tuple[nn.Module, str]]] = {
        "encoder_ffn_linear": [(layer, "linear1"), (layer, "linear2")],
        "encoder_proj_linear": [(attn, "value_proj"), (attn, "output_proj")],
        "encoder_sampling_linear": [(attn, "sampling_offsets"), (attn, "attention_weights")]}
    return slots[group]


def _with_formulation(module: nn.Module, formulation: str) -> nn.Module:
    if formulation == "onednn" and isinstance(module, nn.Linear):
        return OneDnnLinear(module)
    if formulation == "mkl" and isinstance(module, OneDnnLinear):
        return module.to_linear()
    return module


def apply_kernels(net: M2FPNet, kernels: Mapping[str, str]) -> None:
    """Switch ``net`` (in place) to ``kernels`` (group → formulation; groups not named keep theirs)."""
    for group, choice in parse_forced(kernels).items():
        if group.endswith("_linear"):
            for layer in _encoder_layers(net):
                for parent, name in _layer_slots(layer, group):
                    setattr(parent, name, _with_formulation(getattr(parent, name), choice))
        elif group == "deform_sampling":
            for m in net.modules():
                if isinstance(m, MSDeformAttn):
                    m.sampling = choice
        elif group == "decoder_attention":
            for m in net.modules():
                if isinstance(m, (SelfAttentionLayer, CrossAttentionLayer)):
                    m.need_weights = choice == "plain"
        elif group == "backbone_conv":
            for m in net.backbone.modules():
                if isinstance(m, Conv2d):
                    m.fuse = choice == "fused"


# ------------------------------------------------------------------------------------------ measuring
def _race(candidates: Mapping[str, Callable[[], Any]], default: str,
          deadline: float) -> tuple[dict[str, list[float]], float]:
    """Wall times (ms) of each candidate's timed rounds, interleaved round by round after one warm-up round
    (first calls build oneDNN primitives and allocate); at least 2 timed rounds, more until ``deadline``. A
    challenger ``DROP_FIRST`` slower than the default in the warm-up, or ``DROP_RATIO`` slower after a timed
    round, is not timed again; the default always is. Also returns the largest max/min ratio of one candidate's
    timed rounds (how busy the CPU was with other work)."""
    runs: dict[str, list[float]] = {name: [] for name in candidates}
    alive = list(candidates)
    for rnd in range(ROUNDS + 1):
        if rnd > 2 and time.perf_counter() > deadline:
            break
        for name in alive:
            t = time.perf_counter()
            candidates[name]()
            runs[name].append((time.perf_counter() - t) * 1e3)
        ref = min(runs[default][1:] or runs[default])
        limit = DROP_FIRST if rnd == 0 else DROP_RATIO
        alive = [n for n in alive if n == default or min(runs[n][1:] or runs[n]) <= limit * ref]
        if len(alive) == 1 and rnd > 1:
            break
    spread = max((max(v[1:]) / min(v[1:]) for v in runs.values() if len(v) > 2), default=1.0)
    return {n: v[1:] or v for n, v in runs.items()}, spread  # one dropped at the warm-up: its warm-up time


def _pick(default: str, timed: Mapping[str, list[float]]) -> str:
    """The fastest by best time, if it beat the default by ``MIN_GAIN`` in its best time AND in every round
    both ran (paired: a round's two timings are adjacent in time, so a burst of other load hits both alike);
    else the default."""
    best = min(timed, key=lambda n: min(timed[n]))
    if best == default:
        return default
    mine, theirs = timed[best], timed[default]
    paired = all(a * MIN_GAIN < b for a, b in zip(mine, theirs, strict=False))
    return best if paired and min(mine) * MIN_GAIN < min(theirs) else default


def _levels(h: int, w: int) -> list[tuple[int, int]]:
    return [(h // s, w // s) for s in (32, 16, 8)]  # res5, res4, res3: the transformer's levels


def _tuning_inputs(net: M2FPNet) -> tuple[DeformEncoderLayer, list[tuple[int, int]], torch.Tensor]:
    layer = _encoder_layers(net)[0]
    shapes = _levels(*TUNE_CANVAS)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, sum(a * b for a, b in shapes) // TOKEN_SHARE, layer.self_attn.d_model, generator=g)
    return layer, shapes, x


def _linear_candidates(layer: DeformEncoderLayer, group: str, x: torch.Tensor) -> dict[str, Callable[[], Any]]:
    slots = _layer_slots(layer, group)

    def runner(mods: list[nn.Module]) -> Callable[[], Any]:
        if group == "encoder_ffn_linear":  # linear2 reads relu(linear1), fused into linear1 where it can be
            return lambda: mods[1](linear_relu(mods[0], x))
        return lambda: [f(x) for f in mods]

    return {choice: runner([_with_formulation(getattr(p, n), choice) for p, n in slots]) for choice in GROUPS[group]}


def _sampling_candidates(attn: MSDeformAttn) -> dict[str, Callable[[], Any]]:
    heads, levels, points = attn.n_heads, attn.n_levels, attn.n_points
    shapes = _levels(TUNE_CANVAS[0] // 2, TUNE_CANVAS[1] // 2)
    q = sum(h * w for h, w in shapes)
    g = torch.Generator().manual_seed(1)
    value = torch.randn(1, q, heads, attn.d_model // heads, generator=g)
    ref = DeformTransformerEncoderOnly.reference_points(shapes, levels, torch.device("cpu"))
    offsets = torch.randn(1, q, heads, levels, points, 2, generator=g) * 2.0  # a few pixels, as trained models do
    weights = torch.softmax(torch.randn(1, q, heads, levels * points, generator=g), -1).view(
        1, q, heads, levels, points)
    wh = torch.tensor([[w, h] for h, w in shapes], dtype=torch.float32)
    loc = ref[:, :, None, :, None, :] + offsets / wh[None, None, None, :, None, :]
    pixel_ref = pixel_reference(ref[0], shapes, heads, points)
    def runner(choice: str) -> Callable[[], Any]:
        if choice == "grid":
            return lambda: ms_deform_attn_core(value, shapes, loc, weights)
        return lambda: sparse_sample(value, shapes, offsets[0] + pixel_ref, weights, choice)

    return {choice: runner(choice) for choice in GROUPS["deform_sampling"]
            if choice not in NOT_MEASURED["deform_sampling"]}


def _attention_candidates(net: M2FPNet, shapes: list[tuple[int, int]]) -> dict[str, Callable[[], Any]]:
    pred = net.sem_seg_head.predictor
    cross, self_ = pred.transformer_cross_attention_layers[0], pred.transformer_self_attention_layers[0]
    assert isinstance(cross, CrossAttentionLayer) and isinstance(self_, SelfAttentionLayer)
    h, w = shapes[1]  # the decoder's middle level (it attends to each of the 3 in turn)
    c, nq = pred.hidden_dim, pred.num_queries
    g = torch.Generator().manual_seed(2)
    tgt, qpos = torch.randn(nq, 1, c, generator=g), torch.randn(nq, 1, c, generator=g)
    mem, pos = torch.randn(h * w, 1, c, generator=g), torch.randn(h * w, 1, c, generator=g)
    mask = torch.rand(nq, h * w, generator=g) < 0.5

    def run(plain: bool) -> None:
        old = cross.need_weights, self_.need_weights
        cross.need_weights = self_.need_weights = plain
        try:
            self_(cross(tgt, mem, mask, pos, qpos), qpos)
        finally:
            cross.need_weights, self_.need_weights = old

    return {"fused": lambda: run(False), "plain": lambda: run(True)}


def _backbone_candidates(net: M2FPNet) -> dict[str, Callable[[], Any]]:
    """One res4 bottleneck (23 of ResNet-101's 33 blocks; dilated, identity shortcut: both fused forms run) on
    the canvas halved each way, channels-last as the fast path runs it."""
    stage = net.backbone.get_submodule("res4")
    assert isinstance(stage, nn.Sequential)
    block = stage[min(1, len(stage) - 1)]
    assert isinstance(block, Bottleneck)
    convs = [m for m in block.modules() if isinstance(m, Conv2d)]
    stride = net.backbone.output_shape().get("res4", {}).get("stride", 16)
    h, w = TUNE_CANVAS[0] // 2 // stride, TUNE_CANVAS[1] // 2 // stride
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, block.conv1.in_channels, h, w, generator=g).contiguous(memory_format=torch.channels_last)

    def run(fused: bool) -> None:
        old = [m.fuse for m in convs]
        for m in convs:
            m.fuse = fused
        try:
            block(x.clone())  # the fused residual sum writes into the block's input
        finally:
            for m, f in zip(convs, old, strict=True):
                m.fuse = f

    return {"fused": lambda: run(True), "plain": lambda: run(False)}


def measure(net: M2FPNet, groups: Mapping[str, str] | None = None,
            budget_s: float = BUDGET_S) -> tuple[dict[str, str], dict[str, dict[str, float]], float]:
    """Time every group not already in ``groups`` on the real shapes; returns (choices, timings in ms, the
    largest spread of one formulation's repeated timings)."""
    fixed = dict(groups or {})
    layer, shapes, x = _tuning_inputs(net)
    deadline = time.perf_counter() + budget_s
    choices, timings, spread = {}, {}, 1.0
    with torch.inference_mode():
        for group in GROUPS:
            if group in fixed:
                continue
            if group.endswith("_linear"):
                cands = _linear_candidates(layer, group, x)
            elif group == "deform_sampling":
                cands = _sampling_candidates(layer.self_attn)
            elif group == "backbone_conv":
                cands = _backbone_candidates(net)
            else:
                cands = _attention_candidates(net, shapes)
            timed, noise = _race(cands, DEFAULTS[group], deadline)
            choices[group], spread = _pick(DEFAULTS[group], timed), max(spread, noise)
            timings[group] = {n: round(min(v), 2) for n, v in timed.items()}
    return choices, timings, round(spread, 2)


# ------------------------------------------------------------------------------------------ caching
def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/humanparse``, else ``~/.cache/humanparse``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    try:
        return (Path(xdg) if xdg else Path.home() / ".cache") / "humanparse"
    except RuntimeError:  # no home directory (some sandboxes)
        return _tmp_dir()


def cache_places(cache_dir: str | Path | None = None) -> list[Path]:
    """Where ``kernels.json`` is looked for, in order, and written (the first place that takes it):
    ``cache_dir`` (default ``default_cache_dir()``), then the temp dir (a Lambda's /tmp)."""
    return [Path(cache_dir) if cache_dir else default_cache_dir(), _tmp_dir()]


def _tmp_dir() -> Path:
    return Path(tempfile.gettempdir()) / "humanparse"


def cache_key(net: M2FPNet) -> str:
    """CPU model | threads | torch version | the tuned shapes: a verdict is valid only where all four match."""
    layer = _encoder_layers(net)[0]
    pred = net.sem_seg_head.predictor
    shape = (f"d{layer.self_attn.d_model}-ffn{layer.linear1.out_features}-h{layer.self_attn.n_heads}"
             f"-l{layer.self_attn.n_levels}-p{layer.self_attn.n_points}-q{pred.num_queries}"
             f"-canvas{TUNE_CANVAS[0]}x{TUNE_CANVAS[1]}")
    return f"{cpu_model()}|{torch.get_num_threads()} threads|torch {torch.__version__}|{shape}"


def read_cache(path: Path, key: str) -> dict[str, str] | None:
    """The cached choices for ``key``, or None (missing, unreadable, corrupt or stale file: all ignored)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        entry = doc["entries"][key] if doc.get("version") == CACHE_VERSION else None
        kernels = dict(entry["kernels"]) if entry else None
        return parse_forced(kernels) if kernels and set(kernels) == set(GROUPS) else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):  # deep nesting: json's limit
        return None


def write_cache(path: Path, key: str, kernels: Mapping[str, str], timings: Mapping[str, Any]) -> bool:
    """Add ``key``'s verdict to the file (atomically; other keys kept). False, never an error, if it cannot."""
    try:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            entries = doc["entries"] if isinstance(doc, dict) and doc.get("version") == CACHE_VERSION else {}
            entries = entries if isinstance(entries, dict) else {}
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            entries = {}
        entries[key] = {"kernels": dict(kernels), "timings_ms": dict(timings),
                        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"version": CACHE_VERSION, "entries": entries}, indent=1), encoding="utf-8")
        os.replace(tmp, path)
        return True
    except OSError as exc:
        log.debug("kernel choice not cached in %s: %s", path, exc)
        return False


def choose_kernels(net: M2FPNet, requested: str | Mapping[str, str] | None = "auto",
                   cache_dir: str | Path | None = None) -> KernelChoice:
    """Decide, apply (``apply_kernels``) and return the formulations of ``net``'s fast path.

    ``requested``: ``"auto"`` (measure, or reuse this CPU's cached verdict), ``"default"`` (the defaults,
    nothing measured) or ``"group=formulation,..."`` (those forced, the rest auto). ``cache_dir``: where
    ``kernels.json`` lives (default ``default_cache_dir()``); when it cannot be written the verdict goes to
    the temp dir (a Lambda's /tmp), and when neither can, it is only kept in memory."""
    if requested == "default":
        apply_kernels(net, DEFAULTS)
        return KernelChoice(dict(DEFAULTS), "defaults (no measurement requested)")
    forced = parse_forced(requested)
    if set(forced) == set(GROUPS):
        apply_kernels(net, forced)
        return KernelChoice(forced, "forced by configuration")
    key = cache_key(net)
    places = cache_places(cache_dir)
    for place in places:
        cached = read_cache(place / CACHE_FILE, key)
        if cached is not None:
            kernels = {**cached, **forced}
            apply_kernels(net, kernels)
            return KernelChoice(kernels, f"cached verdict for this CPU and {torch.get_num_threads()} threads "
                                         f"({place / CACHE_FILE})" + (", some forced" if forced else ""))
    t0 = time.perf_counter()
    measured, timings, spread = measure(net, forced)
    took = time.perf_counter() - t0
    kernels = {**DEFAULTS, **measured, **forced}
    apply_kernels(net, kernels)
    noisy = spread > NOISY_SPREAD
    # A partly forced run measured only some groups, a noisy one may be wrong: neither is a verdict to keep.
    if not forced and not noisy:
        for place in places:
            if write_cache(place / CACHE_FILE, key, kernels, timings):
                break
    return KernelChoice(kernels, f"measured at load in {took:.2f} s at {torch.get_num_threads()} threads"
                                 + (", some forced" if forced else "")
                                 + (f" (CPU busy: timings varied {spread:.2f}x; not cached)" if noisy else ""),
                        timings)
