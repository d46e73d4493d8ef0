"""The fast CPU path: the same network and weights, rearranged arithmetic.

- BatchNorm folded into the preceding convolution (inference statistics are constants);
- the decoder's per-layer attention masks computed at their own small size (linearity of bilinear resize);
- channels-last memory format for the convolutions (oneDNN's preferred layout on CPU), with the backbone's
  ReLUs and residual sums as oneDNN post-ops of the convolution before them (``Conv2d.fuse``);
- multi-scale deformable attention as one weighted gather over zero-bordered value maps, its (row, weight)
  pairs built in int32 with per-shape constants (``modeling.sparse_sample``);
- one shared 2-D decoder attention mask for all heads;
- where two exact formulations exist, the faster on this CPU, measured at load (``autotune``): the pixel
  decoder's linears as MKL ``Linear`` or as oneDNN 1x1 convolutions (``OneDnnLinear``), deformable sampling
  as ``embedding_bag``, a CSR product or ``grid_sample``, decoder attention fused or plain.

Every step is exact in real arithmetic; only float rounding order changes. ``tests/test_fast_path.py`` and
``bench/speed.py`` hold it to the reference path's label map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .modeling import HAS_MKLDNN, Conv2d, M2FPNet


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
    result up to float rounding order. Called through oneDNN's own op: ``F.conv2d`` sends a 1x1 convolution
    to the im2col + MKL path when torch runs one thread. ``forward_relu`` fuses the ReLU that follows (one pass
    less over the output: 1 thread, 11340x1024: 124 ms vs 145 ms for MKL's GEMM + ReLU)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        w = linear.weight.detach().reshape(self.out_features, self.in_features, 1, 1)
        self.weight = nn.Parameter(w.contiguous(memory_format=torch.channels_last), requires_grad=False)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def _run(self, x: torch.Tensor, attr: str) -> torch.Tensor:
        lead = x.shape[:-1]
        tokens = x.reshape(-1, self.in_features)
        img = tokens.view(1, tokens.shape[0], 1, self.in_features).permute(0, 3, 1, 2)
        out: torch.Tensor
        if HAS_MKLDNN and img.dtype == torch.float32 and not torch.is_autocast_enabled("cpu"):
            out = torch.ops.mkldnn._convolution_pointwise(img, self.weight, self.bias, [0, 0], [1, 1], [1, 1], 1,
                                                          attr, [], "")
        else:
            out = F.conv2d(img, self.weight, self.bias)  # channels-last in → channels-last out
            out = F.relu_(out) if attr == "relu" else out
        return out.permute(0, 2, 3, 1).reshape(*lead, self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, "none")

    def forward_relu(self, x: torch.Tensor) -> torch.Tensor:
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


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    """This CPU's instruction-set flags, from what its platform offers (``engine.cpu``)."""
    from ..cpu import cpu_flags as flags

    return flags(path)


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
    from .autotune import DEFAULTS, apply_kernels

    fold_batchnorm(net)
    net.sem_seg_head.predictor.shrink_mask_features = True
    apply_kernels(net, DEFAULTS)  # until ``autotune.choose_kernels`` measures this CPU (backbone: fused)
    for conv in net.backbone.modules():
        if isinstance(conv, nn.Conv2d):
            conv.weight.data = conv.weight.data.contiguous(memory_format=torch.channels_last)
    net.channels_last = True
    return net
