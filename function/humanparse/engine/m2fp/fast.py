"""The fast CPU path: the same network and weights, rearranged arithmetic.

- multi-scale deformable attention as one sparse-dense product (``ms_deform_attn_sparse``);
- BatchNorm folded into the preceding convolution (inference statistics are constants);
- the decoder's per-layer attention masks computed at their own small size (linearity of bilinear resize);
- channels-last memory format for the convolutions (oneDNN's preferred layout on CPU);
- the fused attention kernel (no attention weights returned) and one shared 2-D mask for all heads;
- the pixel decoder's linear layers run as 1x1 convolutions on a channels-last view (``OneDnnLinear``):
  torch sends fp32 ``Linear`` to MKL, which on AMD CPUs measured 1.6-2.3x slower than oneDNN's kernels.

Every step is exact in real arithmetic; only float rounding order changes. ``tests/test_fast_path.py`` and
``bench/speed.py`` hold it to the reference path's label map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .modeling import Conv2d, CrossAttentionLayer, M2FPNet, MSDeformAttn, SelfAttentionLayer


def fold_batchnorm(net: nn.Module) -> int:
    """Fold every ``Conv2d.norm`` that is a BatchNorm2d into the conv's weight and bias. Returns how many."""
    n = 0
    for m in net.modules():
        if isinstance(m, Conv2d) and isinstance(m.norm, nn.BatchNorm2d):
            bn = m.norm
            assert bn.running_mean is not None and bn.running_var is not None
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            with torch.no_grad():
                m.weight.mul_(scale.view(-1, 1, 1, 1))
                bias = bn.bias - bn.running_mean * scale
                if m.bias is not None:
                    bias = bias + m.bias * scale
                m.bias = nn.Parameter(bias, requires_grad=False)
            m.norm = None
            n += 1
    return n


class OneDnnLinear(nn.Module):
    """``nn.Linear`` computed as a 1x1 convolution: (..., in) tokens are viewed, without a copy, as a
    channels-last (1, in, N, 1) image, which oneDNN multiplies with its own kernels. Same weights, same
    result up to float rounding order."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        w = linear.weight.detach().reshape(self.out_features, self.in_features, 1, 1)
        self.weight = nn.Parameter(w.contiguous(memory_format=torch.channels_last), requires_grad=False)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        tokens = x.reshape(-1, self.in_features)
        img = tokens.view(1, tokens.shape[0], 1, self.in_features).permute(0, 3, 1, 2)
        out = F.conv2d(img, self.weight, self.bias)  # channels-last in → channels-last out
        return out.permute(0, 2, 3, 1).reshape(*lead, self.out_features)


def use_onednn_linears(module: nn.Module) -> int:
    """Replace every ``nn.Linear`` under ``module`` with ``OneDnnLinear``. Returns how many."""
    n = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Linear):
            setattr(module, name, OneDnnLinear(child))
            n += 1
        else:
            n += use_onednn_linears(child)
    return n


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def choose_precision(requested: str, flags: set[str] | None = None) -> str:
    """``auto`` → ``bf16`` only on AMX hosts (where bf16 matmuls are native and the speed target was set);
    ``fp32`` elsewhere, including CPUs with AVX512-BF16 alone (faster there too, but bf16's agreement with
    fp32 could not be verified without trained weights — see the README)."""
    if requested in ("fp32", "bf16"):
        return requested
    f = cpu_flags() if flags is None else flags
    return "bf16" if "amx_bf16" in f else "fp32"


def make_fast(net: M2FPNet) -> M2FPNet:
    """Switch ``net`` (in place) to the fast path and return it."""
    fold_batchnorm(net)
    for m in net.modules():
        if isinstance(m, MSDeformAttn):
            m.sparse = True
        if isinstance(m, (SelfAttentionLayer, CrossAttentionLayer)):
            m.need_weights = False  # fused attention kernel
    net.sem_seg_head.predictor.shrink_mask_features = True
    use_onednn_linears(net.sem_seg_head.pixel_decoder)  # ~100 GFLOP of the forward's 390 at 864x640
    for conv in net.backbone.modules():
        if isinstance(conv, nn.Conv2d):
            conv.weight.data = conv.weight.data.contiguous(memory_format=torch.channels_last)
    net.channels_last = True
    return net
