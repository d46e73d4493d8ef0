"""M2FP (Mask2Former for Parsing) network in plain PyTorch.

Module names mirror the checkpoint ModelScope publishes for ``damo/cv_resnet101_image-multiple-human-parsing``
(``backbone.*``, ``sem_seg_head.pixel_decoder.*``, ``sem_seg_head.predictor.*``) so its ``pytorch_model.pt``
loads with ``strict=True``. Written from the published architecture (DeepLab-stem ResNet, MSDeformAttn pixel
decoder, masked-attention transformer decoder); numerical parity with ModelScope's classes is checked by
``bench/parity.py``.

No mmcv: multi-scale deformable attention is ``F.grid_sample`` (the same computation mmcv itself falls back
to on CPU), so no compiled extension is needed.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

HAS_MKLDNN = bool(torch.backends.mkldnn.is_available())  # type: ignore[no-untyped-call]


class Conv2d(nn.Conv2d):
    """Conv with an optional ``norm`` child and activation (Detectron2's layout: keys ``weight``, ``norm.*``)."""

    def __init__(self, *args: Any, norm: nn.Module | None = None,
                 activation: Callable[[Tensor], Tensor] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.norm = norm
        self.activation = activation

    # Fast path (``fast.make_fast``, after BatchNorm folding): ReLU and the residual sum as oneDNN post-ops of
    # the convolution, saving a pass over each output (same arithmetic; oneDNN may pick another algorithm, so
    # rounding differs).
    fuse = False

    def forward(self, x: Tensor) -> Tensor:
        x = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x

    def _fusable(self, x: Tensor) -> bool:
        return (self.fuse and self.norm is None and self.activation is None and x.device.type == "cpu"
                and x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
                and x.is_contiguous(memory_format=torch.channels_last) and HAS_MKLDNN)

    def conv_relu(self, x: Tensor) -> Tensor:
        """relu(conv(x))."""
        if not self._fusable(x):
            return F.relu_(self(x))
        out: Tensor = torch.ops.mkldnn._convolution_pointwise(
            x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups, "relu", [], "")
        return out

    def conv_add_relu(self, x: Tensor, residual: Tensor) -> Tensor:
        """relu(conv(x) + residual); ``residual`` may be overwritten."""
        if not (self._fusable(x) and residual.dtype == torch.float32
                and residual.is_contiguous(memory_format=torch.channels_last)):
            return F.relu_(self(x) + residual)
        out: Tensor = torch.ops.mkldnn._convolution_pointwise_.binary(
            residual, x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups,
            "add", 1.0, "relu", [], "")
        return out


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "BN":
        return nn.BatchNorm2d(channels)
    if kind == "GN":
        return nn.GroupNorm(32, channels)
    raise ValueError(f"unsupported norm {kind!r}")


# ----------------------------------------------------------------------------------------------- backbone
class Bottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, mid: int, stride: int, dilation: int, groups: int,
                 norm: str, stride_in_1x1: bool) -> None:
        super().__init__()
        self.out_channels = cout
        self.stride = stride
        self.shortcut = (Conv2d(cin, cout, 1, stride=stride, bias=False, norm=_norm(norm, cout))
                         if cin != cout else None)
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = Conv2d(cin, mid, 1, stride=s1, bias=False, norm=_norm(norm, mid))
        self.conv2 = Conv2d(mid, mid, 3, stride=s3, padding=dilation, dilation=dilation, groups=groups,
                            bias=False, norm=_norm(norm, mid))
        self.conv3 = Conv2d(mid, cout, 1, bias=False, norm=_norm(norm, cout))

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2.conv_relu(self.conv1.conv_relu(x))
        return self.conv3.conv_add_relu(out, self.shortcut(x) if self.shortcut is not None else x)


class DeepLabStem(nn.Module):
    def __init__(self, cin: int, cout: int, norm: str) -> None:
        super().__init__()
        self.out_channels = cout
        self.stride = 4
        self.conv1 = Conv2d(cin, cout // 2, 3, stride=2, padding=1, bias=False, norm=_norm(norm, cout // 2))
        self.conv2 = Conv2d(cout // 2, cout // 2, 3, padding=1, bias=False, norm=_norm(norm, cout // 2))
        self.conv3 = Conv2d(cout // 2, cout, 3, padding=1, bias=False, norm=_norm(norm, cout))

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv3.conv_relu(self.conv2.conv_relu(self.conv1.conv_relu(x)))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


class DeepLabResNet(nn.Module):
    """ResNet with the DeepLab 3-conv stem. Returns ``{"res2": (N,256,H/4,W/4), ..., "res5": (N,2048,H/32,W/32)}``."""

    def __init__(self, *, out_features: Sequence[str], depth: int, num_groups: int, width_per_group: int,
                 norm: str, stem_out_channels: int, res2_out_channels: int, stride_in_1x1: bool,
                 res4_dilation: int, res5_dilation: int, res5_multi_grid: Sequence[int],
                 in_channels: int = 3) -> None:
        super().__init__()
        self.stem = DeepLabStem(in_channels, stem_out_channels, norm)
        blocks_per_stage = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}[depth]
        order = {"res2": 2, "res3": 3, "res4": 4, "res5": 5}
        max_stage = max(order[f] for f in out_features)
        self._out_features = list(out_features)
        self.stage_names: list[str] = []
        self._channels: dict[str, int] = {}
        self._strides: dict[str, int] = {}
        cin, cout, mid = stem_out_channels, res2_out_channels, num_groups * width_per_group
        stride_now = 4
        for idx, stage in enumerate(range(2, max_stage + 1)):
            dil = res4_dilation if stage == 4 else res5_dilation if stage == 5 else 1
            first_stride = 1 if idx == 0 or dil > 1 else 2
            n = blocks_per_stage[idx]
            dilations = [dil * g for g in res5_multi_grid] if stage == 5 else [dil] * n
            blocks = []
            for b in range(n):
                blocks.append(Bottleneck(cin if b == 0 else cout, cout, mid, first_stride if b == 0 else 1,
                                         dilations[b], num_groups, norm, stride_in_1x1))
            name = f"res{stage}"
            self.add_module(name, nn.Sequential(*blocks))
            self.stage_names.append(name)
            stride_now *= first_stride
            self._channels[name], self._strides[name] = cout, stride_now
            cin, cout, mid = cout, cout * 2, mid * 2

    def output_shape(self) -> dict[str, dict[str, int]]:
        return {n: {"channels": self._channels[n], "stride": self._strides[n]} for n in self._out_features}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        outputs: dict[str, Tensor] = {}
        x = self.stem(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
            if name in self._out_features:
                outputs[name] = x
        return outputs


# ------------------------------------------------------------------------------------ position encoding
def sine_position_embedding(h: int, w: int, num_pos_feats: int, *, device: torch.device,
                            temperature: float = 10000.0) -> Tensor:
    """DETR's normalised sine embedding for an unmasked (1, 2*num_pos_feats, h, w) map."""
    eps, scale = 1e-6, 2 * math.pi
    y_embed = torch.arange(1, h + 1, dtype=torch.float32, device=device)[:, None].expand(h, w)
    x_embed = torch.arange(1, w + 1, dtype=torch.float32, device=device)[None, :].expand(h, w)
    y_embed = y_embed / (float(h) + eps) * scale
    x_embed = x_embed / (float(w) + eps) * scale
    dim_t = torch.arange(num_pos_feats, dtype=torch.float32, device=device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_pos_feats)
    pos_x = x_embed[:, :, None] / dim_t
    pos_y = y_embed[:, :, None] / dim_t
    pos_x = torch.stack((pos_x[:, :, 0::2].sin(), pos_x[:, :, 1::2].cos()), dim=3).flatten(2)
    pos_y = torch.stack((pos_y[:, :, 0::2].sin(), pos_y[:, :, 1::2].cos()), dim=3).flatten(2)
    return torch.cat((pos_y, pos_x), dim=2).permute(2, 0, 1).unsqueeze(0)


# ------------------------------------------------------------------------- multi-scale deformable attn
def ms_deform_attn_core(value: Tensor, shapes: Sequence[tuple[int, int]], sampling_locations: Tensor,
                        attention_weights: Tensor) -> Tensor:
    """Pure-PyTorch multi-scale deformable attention.

    value: (N, S, heads, C/heads); sampling_locations: (N, Q, heads, levels, points, 2) in [0, 1];
    attention_weights: (N, Q, heads, levels, points). Returns (N, Q, C).
    """
    n, _, heads, dh = value.shape
    _, q, _, levels, points, _ = sampling_locations.shape
    value_list = torch.split(value, [h * w for h, w in shapes], dim=1)
    grids = 2 * sampling_locations - 1
    sampled = []
    for lvl, (h, w) in enumerate(shapes):
        v = value_list[lvl].flatten(2).transpose(1, 2).reshape(n * heads, dh, h, w)
        g = grids[:, :, :, lvl].transpose(1, 2).flatten(0, 1)  # (N*heads, Q, points, 2)
        sampled.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False))
    attn = attention_weights.transpose(1, 2).reshape(n * heads, 1, q, levels * points)
    out = (torch.stack(sampled, dim=-2).flatten(-2) * attn).sum(-1).view(n, heads * dh, q)
    return out.transpose(1, 2).contiguous()




def _padded_values(value: Tensor, shapes: Sequence[tuple[int, int]]) -> Tensor:
    """value (S, heads, d) → (heads * R, d): each head's block holds every level's (h, w) map with a zero border
    (1 before, 2 after), levels one after another (R = sum (h+3)(w+3) rows per head, the layout
    ``_sampling_constants`` indexes). One zero-fill and one strided copy (pad + cat copied it three times)."""
    _, heads, d = value.shape
    sizes = [(h + 3) * (w + 3) for h, w in shapes]
    buf = value.new_zeros(heads, sum(sizes), d)
    pos = start = 0
    for (h, w), sz in zip(shapes, sizes, strict=True):
        dst = buf[:, start:start + sz].view(heads, h + 3, w + 3, d)[:, 1:h + 1, 1:w + 1]
        dst.copy_(value[pos:pos + h * w].view(h, w, heads, d).permute(2, 0, 1, 3))
        pos, start = pos + h * w, start + sz
    return buf.view(-1, d)


@functools.lru_cache(maxsize=16)
def _sampling_constants(shapes: tuple[tuple[int, int], ...], heads: int, points: int,
                        device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per input shape, each materialised over a whole (heads, L, P) sample block: level sizes (w, h) and
    (w+1, h+1) (1, heads, L, P, 2) float32; row offset of each (head, level) in ``_padded_values`` plus the
    padded-width stride (1, heads, L, P, 2) int32 as (1, w+3); the 4 bilinear corners' row offsets
    (1, heads, L, P, 4) int32. Full blocks, not (1, 1, L, 1, 2) broadcasts: an elementwise op whose innermost
    broadcast run is 2-4 elements measured 10-40x slower (1 thread, 1.1M samples: 16 ms vs 1.3 ms)."""
    levels = len(shapes)
    widths = [w + 3 for _, w in shapes]
    sizes = [(h + 3) * (w + 3) for h, w in shapes]
    starts = [sum(sizes[:i]) for i in range(levels)]
    block = (1, heads, levels, points)
    wh = torch.tensor([[w, h] for h, w in shapes], dtype=torch.float32, device=device).view(1, 1, levels, 1, 2)
    first = (torch.arange(heads, dtype=torch.int32, device=device).view(heads, 1) * sum(sizes)
             + torch.tensor(starts, dtype=torch.int32, device=device).view(1, levels)).view(1, heads, levels, 1)
    stride = torch.tensor([[1, wp] for wp in widths], dtype=torch.int32, device=device).view(1, 1, levels, 1, 2)
    corners = torch.tensor([[0, 1, wp, wp + 1] for wp in widths], dtype=torch.int32, device=device)
    corners = (corners.view(1, 1, levels, 1, 4) + first.unsqueeze(-1)).expand(*block, 4).contiguous()
    return (wh.expand(*block, 2).contiguous(), (wh + 1).expand(*block, 2).contiguous(),
            stride.expand(*block, 2).contiguous(), corners)


def pixel_reference(reference_points: Tensor, shapes: Sequence[tuple[int, int]], heads: int,
                    points: int) -> Tensor:
    """reference_points (Q, L, 2) in [0, 1] (x, y) → (Q, heads, L, P, 2) float32 pixel coordinates + 0.5 (the
    +1 border shift of ``_padded_values`` less grid_sample's half-pixel centre). Once per forward, not per
    layer: this broadcast costs ~15 ms at 864x640, the add of it to the offsets ~1 ms."""
    wh = torch.tensor([[w, h] for h, w in shapes], dtype=torch.float32, device=reference_points.device)
    ref = reference_points.float() * wh + 0.5
    q, levels, _ = ref.shape
    return ref.view(q, 1, levels, 1, 2).expand(q, heads, levels, points, 2).contiguous()


def deform_sampling_weights(pix: Tensor, attention_weights: Tensor, shapes: Sequence[tuple[int, int]]
                            ) -> tuple[Tensor, Tensor]:
    """The bilinear x attention weights of every sample as (row, weight) pairs over ``_padded_values`` rows.

    pix (Q, heads, L, P, 2) float32: sample positions (x, y) in pixels of each level's map, shifted by +1 for
    the padded border and by +0.5 for grid_sample's align_corners=False centres (= location * size + 0.5);
    consumed (overwritten). attention_weights (Q, heads, L, P). Returns rows (Q*heads, L*P*4) int32 and
    weights (Q*heads, L*P*4) float32, corners in the order (y0x0, y0x1, y1x0, y1x1). Positions are clamped to
    [0, size+1]: int32 truncation is then floor, and a corner beyond the map lands in the zero border."""
    q, heads, levels, points, _ = pix.shape
    _, wh1, stride, corners = _sampling_constants(tuple(shapes), heads, points, pix.device)
    pix.clamp_(min=0.0)
    torch.minimum(pix, wh1, out=pix)
    ipix = pix.to(torch.int32)
    fy1 = pix.sub_(ipix)  # (..., 2): weight of the right (x) / lower (y) corner
    base = ipix[..., 1] * stride[..., 1]  # y * padded width
    base += ipix[..., 0]
    rows = torch.empty(q, heads, levels, points, 4, dtype=torch.int32, device=pix.device)
    weights = torch.empty(q, heads, levels, points, 4, dtype=pix.dtype, device=pix.device)
    for k in range(4):  # one op per corner: a (..., 1) + (..., 4) broadcast measured 5x slower than 4 adds
        torch.add(base, corners[..., k], out=rows[..., k])
    a = attention_weights.reshape(q, heads, levels, points)
    f0 = torch.sub(1.0, fy1)
    wy0, wy1 = f0[..., 1] * a, fy1[..., 1] * a
    fx0, fx1 = f0[..., 0], fy1[..., 0]
    torch.mul(wy0, fx0, out=weights[..., 0])
    torch.mul(wy0, fx1, out=weights[..., 1])
    torch.mul(wy1, fx0, out=weights[..., 2])
    torch.mul(wy1, fx1, out=weights[..., 3])
    return rows.view(q * heads, -1), weights.view(q * heads, -1)


def ms_deform_attn_sparse(value: Tensor, shapes: Sequence[tuple[int, int]], sampling_locations: Tensor,
                          attention_weights: Tensor, kernel: str = "bag") -> Tensor:
    """Same contract and arithmetic as ``ms_deform_attn_core`` (bilinear, zero padding, align_corners=False),
    as one weighted gather (``sparse_sample``). Batch size 1 (else the grid_sample reference runs)."""
    n, _, heads, d = value.shape
    _, q, _, levels, points, _ = sampling_locations.shape
    if n != 1:
        return ms_deform_attn_core(value, shapes, sampling_locations, attention_weights)
    wh = _sampling_constants(tuple(shapes), heads, points, value.device)[0]
    pix = (sampling_locations[0].float() * wh).add_(0.5)
    return sparse_sample(value, shapes, pix, attention_weights, kernel)


def sparse_sample(value: Tensor, shapes: Sequence[tuple[int, int]], pix: Tensor, attention_weights: Tensor,
                  kernel: str) -> Tensor:
    """value (1, S, heads, d); pix as ``deform_sampling_weights`` takes it (consumed); attention_weights
    (1, Q, heads, L, P). Returns (1, Q, heads*d): every (query, head) row is the sum of L*P*4 value rows times
    bilinear×attention weights. The zero border around each level's map makes every corner index valid, so
    no masks are needed: a corner outside the map reads zeros, as grid_sample pads.
    ``kernel``: ``bag`` = ``F.embedding_bag`` (FBGEMM's weighted row sum), ``csr`` = a CSR sparse-dense
    product (MKL). Both read the same (row, weight) pairs; on an AVX2 EPYC, 1 thread, 90720 rows x 48 samples
    x 32: bag 26 ms, csr 128 ms."""
    heads, d = value.shape[2], value.shape[3]
    q = pix.shape[0]
    v = _padded_values(value[0], shapes)
    rows, weights = deform_sampling_weights(pix, attention_weights, shapes)
    if kernel == "bag":
        out = F.embedding_bag(rows, v, per_sample_weights=weights, mode="sum")
    elif kernel == "csr":
        k = rows.shape[1]
        crow = torch.arange(0, rows.numel() + 1, k, device=value.device, dtype=torch.int32)
        with warnings.catch_warnings():
            # torch labels CSR tensors "beta"; the op used here (CSR @ dense, fp32, CPU) is the MKL path, covered
            # by tests/test_fast_path.py, so the notice is noise. Silenced here only, not process-wide.
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            mat = torch.sparse_csr_tensor(crow, rows.view(-1), weights.view(-1), size=(q * heads, v.shape[0]),
                                          check_invariants=False)
        out = mat @ v
    else:
        raise ValueError(f"unknown sampling kernel {kernel!r} (bag or csr)")
    return out.view(1, q, heads * d)


def linear_relu(linear: nn.Module, x: Tensor) -> Tensor:
    """relu(linear(x)), fused where the layer can (``OneDnnLinear.forward_relu``)."""
    fused = getattr(linear, "forward_relu", None)
    out: Tensor = fused(x) if fused is not None else F.relu(linear(x), inplace=True)
    return out


class OneDnnLinear(nn.Module):
    """``nn.Linear`` computed as a 1x1 convolution: (..., in) tokens are viewed, without a copy, as a
    channels-last (1, in, N, 1) image, which oneDNN multiplies with its own kernels. Same weights, same
    result up to float rounding order. Called through oneDNN's own op: ``F.conv2d`` sends a 1x1 convolution
    to the im2col + MKL path when torch runs one thread. ``forward_relu`` fuses the ReLU that follows (one pass
    less over the output: 1 thread, 11340x1024: 124 ms vs 145 ms for MKL's GEMM + ReLU)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        w = linear.weight.detach().reshape(self.out_features, self.in_features, 1, 1)
        self.weight = nn.Parameter(w.contiguous(memory_format=torch.channels_last), requires_grad=False)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def _run(self, x: Tensor, attr: str) -> Tensor:
        lead = x.shape[:-1]
        tokens = x.reshape(-1, self.in_features)
        img = tokens.view(1, tokens.shape[0], 1, self.in_features).permute(0, 3, 1, 2)
        out: Tensor
        if HAS_MKLDNN and img.dtype == torch.float32 and not torch.is_autocast_enabled("cpu"):
            out = torch.ops.mkldnn._convolution_pointwise(img, self.weight, self.bias, [0, 0], [1, 1], [1, 1], 1,
                                                          attr, [], "")
        else:
            out = F.conv2d(img, self.weight, self.bias)  # channels-last in → channels-last out
            out = F.relu_(out) if attr == "relu" else out
        return out.permute(0, 2, 3, 1).reshape(*lead, self.out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self._run(x, "none")

    def forward_relu(self, x: Tensor) -> Tensor:
        """relu(self(x))."""
        return self._run(x, "relu")

    def to_linear(self) -> nn.Linear:
        """The same layer as an ``nn.Linear`` (MKL's GEMM), weights copied."""
        lin = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None)
        with torch.no_grad():
            lin.weight.copy_(self.weight.reshape(self.out_features, self.in_features))
            if self.bias is not None:
                lin.bias.copy_(self.bias)
        return lin.requires_grad_(False)


class MSDeformAttn(nn.Module):
    def __init__(self, d_model: int, n_levels: int, n_heads: int, n_points: int) -> None:
        super().__init__()
        self.d_model, self.n_levels, self.n_heads, self.n_points = d_model, n_levels, n_heads, n_points
        # grid: grid_sample (reference); bag | csr: ms_deform_attn_sparse with that kernel (fast path, autotuned)
        self.sampling = "grid"
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # Deformable DETR's init, so randomly initialised test models sample sensible locations.
        nn.init.constant_(self.sampling_offsets.weight, 0.0)
        thetas = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(self.n_heads, 1, 1, 2)
        grid = grid.repeat(1, self.n_levels, self.n_points, 1)
        for i in range(self.n_points):
            grid[:, :, i, :] *= i + 1
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.view(-1))
        nn.init.constant_(self.attention_weights.weight, 0.0)
        nn.init.constant_(self.attention_weights.bias, 0.0)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.constant_(self.value_proj.bias, 0.0)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.constant_(self.output_proj.bias, 0.0)

    def forward(self, query: Tensor, reference_points: Tensor, value_in: Tensor,
                shapes: Sequence[tuple[int, int]], pixel_ref: Tensor | None = None) -> Tensor:
        """query (N, Q, C); reference_points (N, Q, L, 2) in [0, 1]; value_in (N, S, C); pixel_ref: the
        sparse path's ``pixel_reference(reference_points[0], ...)`` when the caller computed it once for all
        layers. Returns (N, Q, C)."""
        n, q, _ = query.shape
        s = value_in.shape[1]
        value = self.value_proj(value_in).view(n, s, self.n_heads, self.d_model // self.n_heads)
        offsets = self.sampling_offsets(query).view(n, q, self.n_heads, self.n_levels, self.n_points, 2)
        attn = self.attention_weights(query).view(n, q, self.n_heads, self.n_levels * self.n_points)
        attn = F.softmax(attn, -1).view(n, q, self.n_heads, self.n_levels, self.n_points)
        with torch.autocast("cpu", enabled=False):  # sampling stays fp32 under a bf16 fast path
            if self.sampling != "grid" and n == 1:
                # pixels = (ref + offset / size) * size + 0.5 = ref * size + 0.5 + offset: same in real arithmetic
                if pixel_ref is None:
                    pixel_ref = pixel_reference(reference_points[0], shapes, self.n_heads, self.n_points)
                pix = offsets[0].float() + pixel_ref
                sampled = sparse_sample(value.float(), shapes, pix, attn.float(), self.sampling)
            else:
                normalizer = torch.tensor([[w, h] for h, w in shapes], dtype=query.dtype, device=query.device)
                loc = reference_points[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
                sampled = ms_deform_attn_core(value.float(), shapes, loc.float(), attn.float())
        out: Tensor = self.output_proj(sampled)
        return out


class DeformEncoderLayer(nn.Module):
    def __init__(self, d_model: int, d_ffn: int, n_levels: int, n_heads: int, n_points: int = 4) -> None:
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, src: Tensor, pos: Tensor, ref: Tensor, shapes: Sequence[tuple[int, int]],
                pixel_ref: Tensor | None = None) -> Tensor:
        src = self.norm1(src + self.self_attn(src + pos, ref, src, shapes, pixel_ref))
        out: Tensor = self.norm2(src + self.linear2(linear_relu(self.linear1, src)))
        return out


class DeformEncoder(nn.Module):
    def __init__(self, layer_factory: Callable[[], nn.Module], num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([layer_factory() for _ in range(num_layers)])


class DeformTransformerEncoderOnly(nn.Module):
    def __init__(self, d_model: int, nhead: int, num_layers: int, dim_ff: int, n_levels: int) -> None:
        super().__init__()
        self.encoder = DeformEncoder(lambda: DeformEncoderLayer(d_model, dim_ff, n_levels, nhead), num_layers)
        self.level_embed = nn.Parameter(torch.empty(n_levels, d_model))
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m._reset_parameters()
        nn.init.normal_(self.level_embed)

    @staticmethod
    def reference_points(shapes: Sequence[tuple[int, int]], n_levels: int, device: torch.device) -> Tensor:
        refs = []
        for h, w in shapes:
            ref_y, ref_x = torch.meshgrid(
                torch.linspace(0.5, h - 0.5, h, dtype=torch.float32, device=device),
                torch.linspace(0.5, w - 0.5, w, dtype=torch.float32, device=device), indexing="ij")
            refs.append(torch.stack((ref_x.reshape(-1) / w, ref_y.reshape(-1) / h), -1))
        ref = torch.cat(refs, 0)[None]  # (1, S, 2)
        return ref[:, :, None].expand(1, ref.shape[1], n_levels, 2)

    def forward(self, srcs: Sequence[Tensor], pos_embeds: Sequence[Tensor]) -> tuple[Tensor, list[tuple[int, int]]]:
        shapes = [(int(s.shape[2]), int(s.shape[3])) for s in srcs]
        flat = torch.cat([s.flatten(2).transpose(1, 2) for s in srcs], 1)
        pos = torch.cat([p.flatten(2).transpose(1, 2) + self.level_embed[i].view(1, 1, -1)
                         for i, p in enumerate(pos_embeds)], 1)
        ref = self.reference_points(shapes, len(srcs), flat.device)
        attn0 = self.encoder.layers[0].self_attn
        assert isinstance(attn0, MSDeformAttn)
        pixel_ref = (pixel_reference(ref[0], shapes, attn0.n_heads, attn0.n_points)
                     if attn0.sampling != "grid" and flat.shape[0] == 1 else None)  # once, not per layer
        out = flat
        for layer in self.encoder.layers:
            out = layer(out, pos, ref, shapes, pixel_ref)
        return out, shapes


class MSDeformAttnPixelDecoder(nn.Module):
    """Returns (mask_features (N,mask_dim,H/4,W/4), [3 multi-scale maps, low→high resolution])."""

    def __init__(self, input_shape: dict[str, dict[str, int]], *, transformer_dropout: float,
                 transformer_nheads: int, transformer_dim_feedforward: int, transformer_enc_layers: int,
                 conv_dim: int, mask_dim: int, transformer_in_features: Sequence[str], common_stride: int) -> None:
        super().__init__()
        del transformer_dropout  # inference only
        ordered = sorted(input_shape.items(), key=lambda kv: kv[1]["stride"])
        self.in_features = [k for k, _ in ordered]
        channels = [v["channels"] for _, v in ordered]
        t_ordered = [(k, v) for k, v in ordered if k in transformer_in_features]
        self.transformer_in_features = [k for k, _ in t_ordered]
        t_channels = [v["channels"] for _, v in t_ordered]
        t_strides = [v["stride"] for _, v in t_ordered]
        self.conv_dim = conv_dim
        self.input_proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, conv_dim, kernel_size=1), nn.GroupNorm(32, conv_dim))
            for c in t_channels[::-1])
        for proj in self.input_proj:
            conv = proj[0]  # type: ignore[index]
            nn.init.xavier_uniform_(conv.weight, gain=1)
            nn.init.constant_(conv.bias, 0)
        self.transformer = DeformTransformerEncoderOnly(conv_dim, transformer_nheads, transformer_enc_layers,
                                                        transformer_dim_feedforward, len(t_channels))
        self.mask_features = Conv2d(conv_dim, mask_dim, kernel_size=1)
        self.num_fpn_levels = int(math.log2(min(t_strides)) - math.log2(common_stride))
        self.lateral_names: list[str] = []
        self.output_names: list[str] = []
        for idx, cin in enumerate(channels[: self.num_fpn_levels]):
            self.add_module(f"adapter_{idx + 1}", Conv2d(cin, conv_dim, 1, bias=False,
                                                         norm=nn.GroupNorm(32, conv_dim)))
            self.add_module(f"layer_{idx + 1}", Conv2d(conv_dim, conv_dim, 3, padding=1, bias=False,
                                                       norm=nn.GroupNorm(32, conv_dim), activation=F.relu))
            self.lateral_names.insert(0, f"adapter_{idx + 1}")
            self.output_names.insert(0, f"layer_{idx + 1}")

    def forward(self, features: dict[str, Tensor]) -> tuple[Tensor, list[Tensor]]:
        srcs, pos = [], []
        half = self.conv_dim // 2
        for idx, f in enumerate(self.transformer_in_features[::-1]):
            x = features[f].float()
            srcs.append(self.input_proj[idx](x))
            pos.append(sine_position_embedding(x.shape[2], x.shape[3], half, device=x.device).to(x.dtype))
        y, shapes = self.transformer(srcs, pos)
        bs = y.shape[0]
        out = [z.transpose(1, 2).reshape(bs, -1, h, w)
               for z, (h, w) in zip(y.split([h * w for h, w in shapes], dim=1), shapes, strict=False)]
        for idx, f in enumerate(self.in_features[: self.num_fpn_levels][::-1]):
            cur = getattr(self, self.lateral_names[idx])(features[f].float())
            cur = cur + F.interpolate(out[-1], size=cur.shape[-2:], mode="bilinear", align_corners=False)
            out.append(getattr(self, self.output_names[idx])(cur))
        return self.mask_features(out[-1]), out[:3]


# ----------------------------------------------------------------------------------- transformer decoder
class SelfAttentionLayer(nn.Module):
    # need_weights=True is ModelScope's call; it also selects the same (slower) kernel, which keeps the
    # reference path bit-identical to theirs. The fast path turns it off (fused attention).
    need_weights = True

    def __init__(self, d_model: int, nhead: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=0.0)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, tgt: Tensor, query_pos: Tensor) -> Tensor:
        q = k = tgt + query_pos
        out: Tensor = self.norm(tgt + self.self_attn(q, k, value=tgt, need_weights=self.need_weights)[0])
        return out


class CrossAttentionLayer(nn.Module):
    need_weights = True  # see SelfAttentionLayer

    def __init__(self, d_model: int, nhead: int) -> None:
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=0.0)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, tgt: Tensor, memory: Tensor, memory_mask: Tensor, pos: Tensor, query_pos: Tensor) -> Tensor:
        out = self.multihead_attn(query=tgt + query_pos, key=memory + pos, value=memory,
                                  attn_mask=memory_mask, need_weights=self.need_weights)[0]
        res: Tensor = self.norm(tgt + out)
        return res


class FFNLayer(nn.Module):
    def __init__(self, d_model: int, dim_ff: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_ff)
        self.linear2 = nn.Linear(dim_ff, d_model)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, tgt: Tensor) -> Tensor:
        out: Tensor = self.norm(tgt + self.linear2(F.relu(self.linear1(tgt))))
        return out


class MLP(nn.Module):
    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        h = [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip([input_dim] + h, h + [output_dim], strict=False))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x)) if i < len(self.layers) - 1 else layer(x)
        return x


class MaskedTransformerDecoder(nn.Module):
    """Mask2Former decoder. Returns class logits (N, Q, C+1) and mask logits (N, Q, H/4, W/4)."""

    num_feature_levels = 3

    def __init__(self, in_channels: int, *, num_classes: int, hidden_dim: int, num_queries: int, nheads: int,
                 dim_feedforward: int, dec_layers: int, pre_norm: bool, mask_dim: int,
                 enforce_input_project: bool) -> None:
        super().__init__()
        if pre_norm:
            raise ValueError("pre_norm=True M2FP checkpoints are not supported")
        self.num_heads, self.num_layers, self.num_classes = nheads, dec_layers, num_classes
        self.hidden_dim = hidden_dim
        self.transformer_self_attention_layers = nn.ModuleList(
            SelfAttentionLayer(hidden_dim, nheads) for _ in range(dec_layers))
        self.transformer_cross_attention_layers = nn.ModuleList(
            CrossAttentionLayer(hidden_dim, nheads) for _ in range(dec_layers))
        self.transformer_ffn_layers = nn.ModuleList(FFNLayer(hidden_dim, dim_feedforward) for _ in range(dec_layers))
        for layers in (self.transformer_self_attention_layers, self.transformer_cross_attention_layers,
                       self.transformer_ffn_layers):
            for p in layers.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.num_queries = num_queries
        self.query_feat = nn.Embedding(num_queries, hidden_dim)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.level_embed = nn.Embedding(self.num_feature_levels, hidden_dim)
        self.input_proj = nn.ModuleList(
            Conv2d(in_channels, hidden_dim, kernel_size=1) if (in_channels != hidden_dim or enforce_input_project)
            else nn.Sequential() for _ in range(self.num_feature_levels))
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)
        self.shrink_mask_features = False  # fast path: see _heads

    def _heads(self, output: Tensor, mask_features: Tensor, target: tuple[int, int],
               need_class: bool, small: dict[tuple[int, int], Tensor] | None = None) -> tuple[Tensor | None, Tensor, Tensor]:
        dec = self.decoder_norm(output).transpose(0, 1)  # (N, Q, C)
        cls = self.class_embed(dec) if need_class else None
        emb = self.mask_embed(dec)
        if small is not None:
            # Fast path. Bilinear resizing is linear, so resize(emb·F) == emb·resize(F): the attention mask
            # comes from mask features pre-shrunk to the target size, and sigmoid(x) < 0.5 is x < 0. With one
            # image the mask is the same for every head, so it is passed once (L, S) instead of repeated.
            masks = (torch.einsum("bqc,bchw->bqhw", emb, mask_features) if need_class else torch.empty(0))
            small_logits = torch.einsum("bqc,bchw->bqhw", emb, small[target])
            if small_logits.shape[0] == 1:
                return cls, masks, (small_logits[0].flatten(1) < 0).detach()
            attn = small_logits.flatten(2).unsqueeze(1).repeat(1, self.num_heads, 1, 1).flatten(0, 1) < 0
            return cls, masks, attn.detach()
        masks = torch.einsum("bqc,bchw->bqhw", emb, mask_features)
        attn = F.interpolate(masks, size=target, mode="bilinear", align_corners=False)
        attn = (attn.sigmoid().flatten(2).unsqueeze(1).repeat(1, self.num_heads, 1, 1).flatten(0, 1) < 0.5)
        return cls, masks, attn.detach()

    def forward(self, x: Sequence[Tensor], mask_features: Tensor) -> tuple[Tensor, Tensor]:
        src, pos, sizes = [], [], []
        for i in range(self.num_feature_levels):
            h, w = int(x[i].shape[-2]), int(x[i].shape[-1])
            sizes.append((h, w))
            pe = sine_position_embedding(h, w, self.hidden_dim // 2, device=x[i].device).to(x[i].dtype)
            pos.append(pe.flatten(2).permute(2, 0, 1).expand(-1, x[i].shape[0], -1))
            src.append((self.input_proj[i](x[i]).flatten(2) + self.level_embed.weight[i][None, :, None])
                       .permute(2, 0, 1))
        bs = src[0].shape[1]
        query_embed = self.query_embed.weight.unsqueeze(1).repeat(1, bs, 1)
        output = self.query_feat.weight.unsqueeze(1).repeat(1, bs, 1)
        small = ({sz: F.interpolate(mask_features, size=sz, mode="bilinear", align_corners=False)
                  for sz in dict.fromkeys(sizes)} if self.shrink_mask_features else None)
        _, masks, attn = self._heads(output, mask_features, sizes[0], need_class=False, small=small)
        cls: Tensor | None = None
        for i in range(self.num_layers):
            lvl = i % self.num_feature_levels
            # A query whose mask covers nothing may attend everywhere (Mask2Former's rule).
            attn[torch.where(attn.sum(-1) == attn.shape[-1])] = False
            output = self.transformer_cross_attention_layers[i](output, src[lvl], attn, pos[lvl], query_embed)
            output = self.transformer_self_attention_layers[i](output, query_embed)
            output = self.transformer_ffn_layers[i](output)
            last = i == self.num_layers - 1
            cls, masks, attn = self._heads(output, mask_features, sizes[(i + 1) % self.num_feature_levels],
                                           need_class=last, small=small)
        assert cls is not None
        return cls, masks


class M2FPHead(nn.Module):
    def __init__(self, pixel_decoder: MSDeformAttnPixelDecoder, predictor: MaskedTransformerDecoder) -> None:
        super().__init__()
        self.pixel_decoder = pixel_decoder
        self.predictor = predictor


class M2FPNet(nn.Module):
    """Input: normalised image batch (N, 3, H, W) float32 with H, W multiples of 32.
    Output: class logits (N, Q, num_classes+1) and mask logits (N, Q, H/4, W/4)."""

    def __init__(self, backbone: dict[str, Any], encoder: dict[str, Any], decoder: dict[str, Any]) -> None:
        super().__init__()
        self.backbone = DeepLabResNet(**backbone)
        enc = dict(encoder)
        in_features = enc.pop("in_features")
        shapes = {k: v for k, v in self.backbone.output_shape().items() if k in in_features}
        pixel_decoder = MSDeformAttnPixelDecoder(shapes, **enc)
        predictor = MaskedTransformerDecoder(pixel_decoder.conv_dim, **decoder)
        self.sem_seg_head = M2FPHead(pixel_decoder, predictor)

    channels_last = False

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        features = self.backbone(images)
        mask_features, multi_scale = self.sem_seg_head.pixel_decoder(features)
        cls, masks = self.sem_seg_head.predictor(multi_scale, mask_features)
        return cls, masks
