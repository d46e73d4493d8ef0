"""The fast path must give the reference path's answers: each rearrangement on its own, then end to end."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
from humanparse.engine.m2fp.fast import choose_precision, fold_batchnorm
from humanparse.engine.m2fp.modeling import Conv2d, ms_deform_attn_core, ms_deform_attn_sparse
from torch import nn


@pytest.mark.parametrize("seed", [0, 1])
def test_sparse_deformable_attention_equals_grid_sample(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    shapes = [(5, 7), (10, 13), (20, 27)]
    s = sum(h * w for h, w in shapes)
    value = torch.randn(1, s, 8, 32, generator=g)
    # include locations outside [0, 1]: both paths must read zeros there
    loc = torch.rand(1, 300, 8, 3, 4, 2, generator=g) * 1.6 - 0.3
    attn = torch.softmax(torch.randn(1, 300, 8, 12, generator=g), -1).view(1, 300, 8, 3, 4)
    ref = ms_deform_attn_core(value, shapes, loc, attn)
    got = ms_deform_attn_sparse(value, shapes, loc, attn)
    assert got.shape == ref.shape == (1, 300, 256)
    assert float((ref - got).abs().max()) < 1e-5


def test_batchnorm_folding_is_exact() -> None:
    torch.manual_seed(0)
    conv = Conv2d(8, 16, 3, padding=1, bias=False, norm=nn.BatchNorm2d(16)).eval()
    with torch.no_grad():
        conv.norm.running_mean.uniform_(-1, 1)  # type: ignore[union-attr]
        conv.norm.running_var.uniform_(0.5, 2)  # type: ignore[union-attr]
        conv.norm.weight.uniform_(0.5, 1.5)  # type: ignore[union-attr]
        conv.norm.bias.uniform_(-1, 1)  # type: ignore[union-attr]
    x = torch.randn(2, 8, 9, 11)
    with torch.no_grad():
        ref = conv(x)
        folded = copy.deepcopy(conv)
        assert fold_batchnorm(folded) == 1 and folded.norm is None
        assert float((folded(x) - ref).abs().max()) < 1e-5


def test_precision_choice() -> None:
    assert choose_precision("auto", {"avx2", "amx_bf16", "avx512_bf16"}) == "bf16"
    assert choose_precision("auto", {"avx2", "avx512_bf16"}) == "fp32"
    assert choose_precision("auto", set()) == "fp32"
    assert choose_precision("bf16", set()) == "bf16"


@pytest.mark.slow
def test_fast_path_label_map_matches_reference(m2fp_dir: Any, photo: np.ndarray) -> None:
    from humanparse.engine.m2fp import build_m2fp

    ref = build_m2fp(m2fp_dir, fast=False).parse(photo)
    fast = build_m2fp(m2fp_dir, fast=True, precision="fp32").parse(photo)
    assert len(np.unique(ref.label_map)) > 2
    assert (ref.label_map == fast.label_map).mean() >= 0.995


def test_onednn_linear_matches_linear() -> None:
    """The 1x1-convolution linear gives nn.Linear's answer for any leading shape, contiguous or not."""
    import torch
    from humanparse.engine.m2fp.fast import OneDnnLinear

    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 96)
    fast = OneDnnLinear(lin)
    for x in (torch.randn(2, 50, 64), torch.randn(64, 3, 40).transpose(0, 2), torch.randn(7, 64)):
        with torch.no_grad():
            want, got = lin(x), fast(x)
        assert got.shape == want.shape
        assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)
