"""The fast CPU path: the same network and weights, rearranged arithmetic.

- BatchNorm folded into the preceding convolution (inference statistics are constants);
- the decoder's per-layer attention masks computed at their own small size (linearity of bilinear resize);
- channels-last memory format for the convolutions (oneDNN's preferred layout on CPU), with the backbone's
  ReLUs and residual sums as oneDNN post-ops of the convolution before them (``Conv2d.fuse``);
- multi-scale deformable attention as one weighted gather over zero-bordered value maps, its (row, weight)
  pairs built in int32 with per-shape constants (``modeling.sparse_sample``);
- one shared 2-D decoder attention mask for all heads;
- where two exact formulations exist, the faster on this CPU, measured at load (``autotune``): the pixel
  decoder's linears as MKL ``Linear`` or as oneDNN 1x1 convolutions (``modeling.OneDnnLinear``), deformable sampling
  as ``embedding_bag``, a CSR product or ``grid_sample``, decoder attention fused or plain.

Every step is exact in real arithmetic; only float rounding order changes. ``tests/test_fast_path.py`` and
``bench/speed.py`` hold it to the reference path's label map.
"""

from __future__ import annotations

import torch
from torch import nn

from humanparse.engine.m2fp.autotune import DEFAULTS, apply_kernels
from humanparse.engine.m2fp.modeling import Conv2d, M2FPNet


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


def make_fast(net: M2FPNet) -> M2FPNet:
    """Switch ``net`` (in place) to the fast path and return it."""
    fold_batchnorm(net)
    net.sem_seg_head.predictor.shrink_mask_features = True
    apply_kernels(net, DEFAULTS)  # until ``autotune.choose_kernels`` measures this CPU (backbone: fused)
    for conv in net.backbone.modules():
        if isinstance(conv, nn.Conv2d):
            conv.weight.data = conv.weight.data.contiguous(memory_format=torch.channels_last)
    net.channels_last = True
    return net
