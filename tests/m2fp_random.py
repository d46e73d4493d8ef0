"""Make an M2FP model folder with random weights: ModelScope's exact layout (``configuration.json`` +
``pytorch_model.pt`` holding ``{"model": state_dict}``) and the real architecture from the configuration.

A test and bench helper, not shipped in the package (benches reach it through ``bench/_common.py``).
Trained weights cannot be fetched in CI, so tests, benchmarks and the parity check load this through the same
code path a user's downloaded folder takes. The class head is scaled so the softmax is peaked: with plain
random init every class probability is ~1/22, nothing passes the 0.3 paste threshold, and the label map would
be all background — a parity check on that proves nothing.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from humanparse.engine.m2fp.modeling import M2FPNet
from humanparse.pipeline.labels import CIHP_LABELS

# ModelScope's configuration lists the 20 CIHP parts and then the person class
CIHP_CLASSES = [*CIHP_LABELS, "Human"]

M2FP_CONFIGURATION: dict[str, Any] = {
    "framework": "pytorch",
    "task": "image-segmentation",
    "pipeline": {"type": "m2fp-image-human-parsing"},
    "model": {
        "type": "m2fp",
        "pretrained": False,
        "backbone": {"out_features": ["res2", "res3", "res4", "res5"], "depth": 101, "num_groups": 1,
                     "width_per_group": 64, "norm": "BN", "stem_out_channels": 128, "res2_out_channels": 256,
                     "stride_in_1x1": False, "res4_dilation": 1, "res5_dilation": 1,
                     "res5_multi_grid": [1, 1, 1]},
        "encoder": {"in_features": ["res2", "res3", "res4", "res5"],
                    "transformer_in_features": ["res3", "res4", "res5"], "transformer_dropout": 0.0,
                    "transformer_nheads": 8, "transformer_dim_feedforward": 1024, "transformer_enc_layers": 6,
                    "conv_dim": 256, "mask_dim": 256, "common_stride": 4},
        "decoder": {"num_classes": 21, "hidden_dim": 256, "num_queries": 100, "nheads": 8,
                    "dim_feedforward": 2048, "dec_layers": 9, "pre_norm": False, "mask_dim": 256,
                    "enforce_input_project": False},
        "classes": CIHP_CLASSES,
        "num_parsing": 20,
        "single_human": False,
        "parsing_ins_score_thr": 0.3,
        "parsing_on": True,
        "semantic_on": False,
        "sem_seg_postprocess_before_inference": True,
    },
}


def _calibration_image(seed: int) -> torch.Tensor:
    """A smooth random 'photo' (1, 3, 512, 384), normalised the way the pipeline normalises."""
    g = torch.Generator().manual_seed(seed + 7)
    small = torch.rand(1, 3, 8, 6, generator=g) * 255.0
    img = torch.nn.functional.interpolate(small, size=(512, 384), mode="bicubic", align_corners=False)
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    return (img.clamp(0, 255) - mean) / std


def _calibrate(net: M2FPNet, *, seed: int, class_logit_scale: float) -> None:
    """Make the random network's decisions non-degenerate: centred mask features, mask logits with spatial
    contrast (std ~4), and a class head that reads the directions in which queries differ."""
    net.eval()
    x = _calibration_image(seed)
    pred = net.sem_seg_head.predictor
    pix = net.sem_seg_head.pixel_decoder
    captured: dict[str, torch.Tensor] = {}
    hooks = [pix.mask_features.register_forward_hook(lambda m, i, o: captured.__setitem__("mf", o)),
             pred.decoder_norm.register_forward_hook(lambda m, i, o: captured.__setitem__("dec", o))]
    g = torch.Generator().manual_seed(seed + 3)
    with torch.no_grad():
        for _ in range(2):
            net(x)
            mf = captured["mf"]
            assert pix.mask_features.bias is not None
            pix.mask_features.bias.sub_(mf.mean(dim=(0, 2, 3)))
            _, masks = net(x)
            last = pred.mask_embed.layers[-1]
            assert isinstance(last, torch.nn.Linear)
            factor = 4.0 / float(masks.std().clamp_min(1e-6))
            last.weight.mul_(factor)
            last.bias.mul_(factor)
        # Class head: read only the directions in which queries differ within an image (top principal
        # components), orthogonal to how the mean query shifts between images; otherwise every query of a
        # new image lands on the same class.
        decs = []
        for k in range(4):
            net(_calibration_image(seed + 11 * k))
            decs.append(captured["dec"].reshape(-1, captured["dec"].shape[-1]))
        means = torch.stack([d.mean(0) for d in decs])
        within = torch.cat([d - d.mean(0, keepdim=True) for d in decs])
        shift = torch.linalg.qr((means - means.mean(0, keepdim=True)).t()).Q  # (C, 4)
        within = within - (within @ shift) @ shift.t()
        _, _, vh = torch.linalg.svd(within, full_matrices=False)
        basis = vh[:16]  # (16, C)
        basis = basis - (basis @ shift) @ shift.t()
        w = torch.randn(pred.class_embed.weight.shape[0], basis.shape[0], generator=g) @ basis
        s = class_logit_scale / float((within @ w.t()).std().clamp_min(1e-6))
        pred.class_embed.weight.copy_(w * s)
        pred.class_embed.bias.copy_(-(means.mean(0) @ w.t()) * s)
    for h in hooks:
        h.remove()


def make_random_m2fp_folder(path: str | Path, *, seed: int = 0, class_logit_scale: float = 12.0,
                            depth: int = 101) -> Path:
    """Write ``configuration.json`` and ``pytorch_model.pt`` under ``path``; returns the folder."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    cfg = copy.deepcopy(M2FP_CONFIGURATION)
    cfg["model"]["backbone"]["depth"] = depth
    torch.manual_seed(seed)
    m = cfg["model"]
    net = M2FPNet(m["backbone"], m["encoder"], m["decoder"])
    with torch.no_grad():
        # Give BN layers non-trivial statistics so loading them is actually tested.
        g = torch.Generator().manual_seed(seed + 1)
        for mod in net.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                n = mod.num_features
                assert mod.running_mean is not None and mod.running_var is not None
                mod.running_mean.copy_(torch.randn(n, generator=g) * 0.05)
                mod.running_var.copy_(1.0 + torch.rand(n, generator=g) * 0.5)
                mod.weight.copy_(0.7 + torch.rand(n, generator=g) * 0.2)
                mod.bias.copy_(torch.randn(n, generator=g) * 0.02)
    _calibrate(net, seed=seed, class_logit_scale=class_logit_scale)
    (root / "configuration.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    torch.save({"model": net.state_dict()}, root / "pytorch_model.pt")
    return root


if __name__ == "__main__":  # pragma: no cover - convenience
    import sys

    print(make_random_m2fp_folder(sys.argv[1] if len(sys.argv) > 1 else "m2fp-random"))
