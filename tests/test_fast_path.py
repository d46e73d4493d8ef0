"""The fast path must give the reference path's answers: each rearrangement on its own, then end to end."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from humanparse.engine import cpu
from humanparse.engine.m2fp.fast import fold_batchnorm
from humanparse.engine.m2fp.modeling import Conv2d, ms_deform_attn_core, ms_deform_attn_sparse
from humanparse.engine.m2fp.precision import VERDICT_FILE, choose_precision, weights_stamp
from torch import nn


@pytest.mark.parametrize("kernel", ["bag", "csr"])
@pytest.mark.parametrize("seed", [0, 1])
def test_sparse_deformable_attention_equals_grid_sample(seed: int, kernel: str) -> None:
    g = torch.Generator().manual_seed(seed)
    shapes = [(5, 7), (10, 13), (20, 27)]
    s = sum(h * w for h, w in shapes)
    value = torch.randn(1, s, 8, 32, generator=g)
    # include locations outside [0, 1]: both paths must read zeros there
    loc = torch.rand(1, 300, 8, 3, 4, 2, generator=g) * 1.6 - 0.3
    attn = torch.softmax(torch.randn(1, 300, 8, 12, generator=g), -1).view(1, 300, 8, 3, 4)
    ref = ms_deform_attn_core(value, shapes, loc, attn)
    got = ms_deform_attn_sparse(value, shapes, loc, attn, kernel)
    assert got.shape == ref.shape == (1, 300, 256)
    assert float((ref - got).abs().max()) < 1e-5


@pytest.mark.parametrize("sampling", ["bag", "csr"])
def test_deformable_attention_module_sparse_equals_grid(sampling: str) -> None:
    """The module's sparse path (pixel coordinates = reference * size + offset, computed once per forward or
    per call) gives the grid_sample reference's answer, offsets reaching outside the maps included."""
    from humanparse.engine.m2fp.modeling import DeformTransformerEncoderOnly, MSDeformAttn, pixel_reference

    torch.manual_seed(0)
    shapes = [(4, 6), (8, 11), (15, 21)]
    attn = MSDeformAttn(64, 3, 4, 4).eval()
    with torch.no_grad():
        attn.sampling_offsets.weight.normal_(0, 2.0)  # offsets of several pixels, some beyond the border
        attn.attention_weights.weight.normal_(0, 0.5)
    s = sum(h * w for h, w in shapes)
    x = torch.randn(1, s, 64)
    ref_pts = DeformTransformerEncoderOnly.reference_points(shapes, 3, x.device)
    with torch.no_grad():
        want = attn(x, ref_pts, x, shapes)
        attn.sampling = sampling
        got_per_call = attn(x, ref_pts, x, shapes)
        got_once = attn(x, ref_pts, x, shapes, pixel_reference(ref_pts[0], shapes, 4, 4))
    assert float((want - got_per_call).abs().max()) < 1e-5
    assert torch.equal(got_per_call, got_once)


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


def test_precision_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a passing calibration verdict, ``auto`` is bf16 on AMX CPUs only, whatever else the CPU has."""
    (tmp_path / "pytorch_model.pt").write_bytes(b"weights")
    (tmp_path / VERDICT_FILE).write_text(json.dumps({"agreement": 0.999, "weights": weights_stamp(tmp_path)}))

    def choice(requested: str, flags: set[str]) -> str:
        monkeypatch.setattr(cpu, "cpu_flags", lambda: flags)
        return choose_precision(requested, tmp_path).precision

    assert choice("auto", {"avx2", "amx_bf16", "avx512_bf16"}) == "bf16"
    assert choice("auto", {"avx2", "avx512_bf16"}) == "fp32"
    assert choice("auto", set()) == "fp32"
    assert choice("bf16", set()) == "bf16"


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
    from humanparse.engine.m2fp.modeling import OneDnnLinear

    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 96)
    fast = OneDnnLinear(lin)
    for x in (torch.randn(2, 50, 64), torch.randn(64, 3, 40).transpose(0, 2), torch.randn(7, 64)):
        with torch.no_grad():
            want, got, back = lin(x), fast(x), fast.to_linear()(x)
        assert got.shape == want.shape
        assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)
        assert torch.equal(fast.to_linear().weight, lin.weight)  # the way back to MKL is the same layer
        assert torch.allclose(back, want, atol=1e-6, rtol=1e-6)


def _kernel_configs() -> list[dict[str, str]]:
    """Three choices per group that together run every formulation of every group at least once."""
    from humanparse.engine.m2fp.autotune import GROUPS

    return [{g: forms[i % len(forms)] for g, forms in GROUPS.items()} for i in range(3)]


@pytest.mark.slow
def test_every_autotuner_choice_matches_reference(m2fp_dir: Any, photo: np.ndarray) -> None:
    """Whatever the autotuner picks on a given CPU, each formulation of each group is forced here and held to the
    reference path's label map (same bar as the end-to-end test above)."""
    from humanparse.engine.m2fp import build_m2fp
    from humanparse.engine.m2fp.autotune import apply_kernels
    from humanparse.engine.m2fp.modeling import OneDnnLinear

    ref = build_m2fp(m2fp_dir, fast=False).parse(photo)
    parser = build_m2fp(m2fp_dir, fast=True, precision="fp32", kernels="default")
    layer = parser.net.sem_seg_head.pixel_decoder.transformer.encoder.layers[0]
    for kernels in _kernel_configs():
        apply_kernels(parser.net, kernels)
        # the switch took effect: the module types and flags are those of the forced formulation
        assert isinstance(layer.linear1, OneDnnLinear) == (kernels["encoder_ffn_linear"] == "onednn")
        assert isinstance(layer.self_attn.value_proj, OneDnnLinear) == (kernels["encoder_proj_linear"] == "onednn")
        assert layer.self_attn.sampling == kernels["deform_sampling"]
        got = parser.parse(photo)
        assert (ref.label_map == got.label_map).mean() >= 0.995, kernels


def test_fused_conv_relu_and_residual_match_unfused() -> None:
    """The backbone's oneDNN post-ops (ReLU; residual sum + ReLU) give the separate ops' answer; the fused
    residual form may overwrite the residual, which is why Bottleneck passes it last."""
    torch.manual_seed(0)
    for k, stride in ((1, 1), (3, 1), (3, 2)):
        conv = Conv2d(16, 24, k, stride=stride, padding=k // 2, bias=True).eval()
        conv.weight.data = conv.weight.data.contiguous(memory_format=torch.channels_last)
        x = torch.randn(1, 16, 20, 26).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            want = torch.relu(conv(x))
            res = torch.randn(want.shape).contiguous(memory_format=torch.channels_last)
            want_sum = torch.relu(conv(x) + res)
            conv.fuse = True
            got = conv.conv_relu(x)
            got_sum = conv.conv_add_relu(x, res.clone())
        assert torch.allclose(got, want, atol=1e-5) and torch.allclose(got_sum, want_sum, atol=1e-5)
