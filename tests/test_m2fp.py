"""M2FP engine: folder layout and loading, ModelScope's resize rule, and the optimised post-processing
against a line-by-line restatement of ModelScope's algorithm on random tensors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import SHARED
from humanparse.engine.m2fp.modeling import M2FPNet
from humanparse.engine.m2fp.postprocess import m2fp_postprocess
from humanparse.engine.m2fp.predictor import (
    CheckpointError,
    build_m2fp,
    build_m2fp_net,
    load_weights,
    preprocess,
    preprocess_shape,
    read_checkpoint,
)
from humanparse.exceptions import ModelNotFound


def test_architecture_matches_published_configuration() -> None:
    cfg_path = SHARED / "m2fp-configuration.json"
    if not cfg_path.is_file():
        pytest.skip("no ../shared/m2fp-configuration.json")
    m = json.loads(cfg_path.read_text())["model"]
    net = M2FPNet(m["backbone"], m["encoder"], m["decoder"])
    n = sum(p.numel() for p in net.parameters())
    assert 62.5e6 < n < 63.5e6  # the published model has 63.0 M parameters
    keys = set(net.state_dict())
    for k in ("backbone.stem.conv1.norm.running_var", "backbone.res4.22.conv3.weight",
              "sem_seg_head.pixel_decoder.transformer.encoder.layers.5.self_attn.sampling_offsets.weight",
              "sem_seg_head.pixel_decoder.adapter_1.norm.weight", "sem_seg_head.pixel_decoder.layer_1.weight",
              "sem_seg_head.predictor.transformer_cross_attention_layers.8.multihead_attn.in_proj_weight",
              "sem_seg_head.predictor.class_embed.weight", "sem_seg_head.predictor.mask_embed.layers.2.bias"):
        assert k in keys, k
    assert net.sem_seg_head.predictor.class_embed.out_features == 22


@pytest.mark.parametrize("hw,expected", [((200, 300), (640, 960)), ((313, 576), (640, 1178)),
                                         ((1000, 100), (1333, 133)), ((768, 1024), (640, 853))])
def test_resize_rule(hw: tuple[int, int], expected: tuple[int, int]) -> None:
    assert preprocess_shape(*hw) == expected


def test_preprocess_pads_to_32_with_zero() -> None:
    x, (h, w) = preprocess(np.full((200, 300, 3), 128, dtype=np.uint8))
    assert (h, w) == (640, 960) and x.shape == (1, 3, 640, 960)
    x, (h, w) = preprocess(np.full((313, 576, 3), 128, dtype=np.uint8))
    assert x.shape == (1, 3, 640, 1184) and (h, w) == (640, 1178)
    assert float(x[0, :, :, 1178:].abs().max()) == 0.0


def test_loading_errors(tmp_path: Path, m2fp_dir: Path) -> None:
    with pytest.raises(ModelNotFound):
        build_m2fp(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "configuration.json").write_text((m2fp_dir / "configuration.json").read_text())
    torch.save({"model": {"backbone.stem.conv1.weight": torch.zeros(1)}}, bad / "pytorch_model.pt")
    with pytest.raises(CheckpointError, match="does not match configuration.json: missing .* keys"):
        build_m2fp(bad)
    (bad / "pytorch_model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a PyTorch checkpoint"):
        build_m2fp(bad)


@pytest.fixture(scope="module")
def small_net() -> M2FPNet:
    """A depth-50 network: same key kinds as ResNet-101 at a third of the build time."""
    from m2fp_random import M2FP_CONFIGURATION

    m = M2FP_CONFIGURATION["model"]
    return M2FPNet({**m["backbone"], "depth": 50}, dict(m["encoder"]), dict(m["decoder"]))


def test_unexpected_keys_warn_and_load(small_net: M2FPNet, caplog: pytest.LogCaptureFixture) -> None:
    """As ModelScope: extra keys (loss buffers, modules the code no longer has) are named in a warning and skipped;
    an absent BatchNorm ``num_batches_tracked`` is no error (inference never reads it)."""
    state = {k: v.clone() + 1 if v.is_floating_point() else v.clone() for k, v in small_net.state_dict().items()}
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    state["criterion.empty_weight"] = torch.ones(21)
    state["sem_seg_head.old_aux_head.weight"] = torch.zeros(3)
    # our loggers leave through the JSON handler only (observability: no propagation to the root's caplog)
    owner = logging.getLogger("humanparse")
    owner.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger="humanparse.engine.m2fp.predictor"):
            unexpected = load_weights(small_net, state, "ckpt.pt")
    finally:
        owner.removeHandler(caplog.handler)
    assert unexpected == ["criterion.empty_weight", "sem_seg_head.old_aux_head.weight"]
    assert "criterion.empty_weight" in caplog.text and "old_aux_head" in caplog.text
    k = "sem_seg_head.predictor.class_embed.weight"
    assert torch.equal(small_net.state_dict()[k], state[k])  # the weights really loaded


def test_folder_with_training_bookkeeping_builds_from_the_file(tmp_path: Path, small_net: M2FPNet) -> None:
    """A folder as training leaves it (loss buffers, BatchNorm counters absent, an fp16 tensor, training state
    beside the weights) builds: every weight as in the file (in the network's dtype), counters 0."""
    from m2fp_random import M2FP_CONFIGURATION

    cfg = json.loads(json.dumps(M2FP_CONFIGURATION))
    cfg["model"]["backbone"]["depth"] = 50
    state = {k: v.clone() + 1 if v.is_floating_point() else v.clone() for k, v in small_net.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    k16 = "sem_seg_head.predictor.class_embed.bias"
    state[k16] = state[k16].half()
    state["criterion.empty_weight"] = torch.ones(21)
    (tmp_path / "configuration.json").write_text(json.dumps(cfg))
    torch.save({"model": state, "iteration": 89999}, tmp_path / "pytorch_model.pt")
    net, _ = build_m2fp_net(tmp_path)
    loaded = net.state_dict()
    assert not [k for k, v in loaded.items() if v.is_meta]
    counters = [v for k, v in loaded.items() if k.endswith("num_batches_tracked")]
    assert counters and all(int(v) == 0 for v in counters)
    assert loaded[k16].dtype == torch.float32 and torch.equal(loaded[k16], state[k16].float())
    k = "backbone.stem.conv1.weight"
    assert torch.equal(loaded[k], state[k]) and not any(p.requires_grad for p in net.parameters())


def test_missing_and_misshaped_keys_are_named(small_net: M2FPNet) -> None:
    state = dict(small_net.state_dict())
    del state["sem_seg_head.predictor.class_embed.bias"]
    with pytest.raises(CheckpointError, match=r"missing 1 keys: sem_seg_head\.predictor\.class_embed\.bias"):
        load_weights(small_net, state, "ckpt.pt")
    state = dict(small_net.state_dict())
    state["sem_seg_head.predictor.class_embed.weight"] = torch.zeros(21, 256)  # a 20-class head
    with pytest.raises(CheckpointError, match=r"wrong shape: sem_seg_head\.predictor\.class_embed\.weight "
                                              r"\(21, 256\) \(expected \(22, 256\)\)"):
        load_weights(small_net, state, "ckpt.pt")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"PK\x03\x04broken zip", b"\x80\x04K\x01."])
def test_read_checkpoint_names_a_file_that_is_not_one(tmp_path: Path, content: bytes) -> None:
    f = tmp_path / "pytorch_model.pt"
    f.write_bytes(content)
    with pytest.raises(CheckpointError, match="pytorch_model.pt"):
        read_checkpoint(f)


def test_read_checkpoint_takes_model_entry_beside_training_state(tmp_path: Path) -> None:
    f = tmp_path / "pytorch_model.pt"
    w = torch.arange(3.0)
    torch.save({"model": {"a.weight": w}, "optimizer": {"state": {}, "param_groups": []}, "iteration": 89999}, f)
    assert torch.equal(read_checkpoint(f)["a.weight"], w)
    torch.save({"model": {"a.weight": "not a tensor"}}, f)
    with pytest.raises(CheckpointError, match="not tensors: a.weight"):
        read_checkpoint(f)


def test_model_id_under_damo_and_iic(tmp_path: Path) -> None:
    from humanparse.config import Settings

    name = "cv_resnet101_image-multiple-human-parsing"
    for asked in (f"damo/{name}", f"iic/{name}"):
        spec = Settings(model_id=asked, model_cache_dir=tmp_path).model_spec(2)
        assert [p.name for p in spec.dirs("m2fp")] == [asked.replace("/", "--"),
                                                    ("iic/" if asked.startswith("damo") else "damo/").replace("/", "--")
                                                    + name]


def _modelscope_reference(cls: torch.Tensor, masks: torch.Tensor, padded: tuple[int, int], image: tuple[int, int],
                          out: tuple[int, int], num_parsing: int = 20, thr: float = 0.3) -> np.ndarray:
    """ModelScope's M2FP post-processing restated literally: upsample all queries, top-100, paste, argmax."""
    m = F.interpolate(masks[None], size=padded, mode="bilinear", align_corners=False)[0]
    m = F.interpolate(m[None, :, : image[0], : image[1]], size=out, mode="bilinear", align_corners=False)[0]
    scores = F.softmax(cls, dim=-1)[:, :-1]
    nq, nc = scores.shape
    labels = torch.arange(nc).unsqueeze(0).repeat(nq, 1).flatten(0, 1)
    s, idx = scores.flatten(0, 1).topk(100, sorted=False)
    lab = labels[idx]
    mp = m[idx // nc]
    binary = (mp > 0).float()
    ms = (mp.sigmoid().flatten(1) * binary.flatten(1)).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    ps = s * ms
    keep = torch.where(lab != num_parsing)[0]
    lab, ps, mp = lab[keep], ps[keep], mp[keep]
    sem = []
    for c in range(num_parsing):
        ci = torch.where(lab == c)[0]
        cs, cm = ps[ci], mp[ci].sigmoid()
        acc = torch.zeros(out)
        times = torch.zeros(out)
        for k in cs.argsort():
            if cs[k] < thr:
                continue
            p = cm[k] * cs[k]
            acc = torch.where(p > 0.5, p + acc, acc)
            times += torch.where(p > 0.5, 1, 0)
        times = torch.where(times == 0, times + 1, times)
        sem.append(acc / times)
    return torch.stack(sem).argmax(0).numpy().astype(np.uint8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_postprocess_equals_modelscope_algorithm(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    q, h4, w4 = 100, 40, 56
    cls = torch.randn(q, 22, generator=g) * 6
    masks = torch.randn(q, h4, w4, generator=g) * 3 + torch.linspace(-4, 4, w4)
    padded, image, out = (160, 224), (150, 210), (300, 421)
    ref = _modelscope_reference(cls, masks, padded, image, out)
    got = m2fp_postprocess(cls, masks, padded_hw=padded, image_hw=image, out_hw=out, num_parsing=20,
                           ins_score_thr=0.3, full_resolution=True)
    assert got.label_map.shape == out and got.label_map.dtype == np.uint8
    assert len(np.unique(ref)) > 2  # a non-trivial case
    assert (got.label_map == ref).mean() >= 0.9999
    # decided at the working size (150x210) and brought to 300x421 once, edges re-decided: close agreement
    work = m2fp_postprocess(cls, masks, padded_hw=padded, image_hw=image, out_hw=out, num_parsing=20,
                            ins_score_thr=0.3)
    assert work.work_label_map.shape == image and work.label_map.shape == out
    assert (work.label_map == ref).mean() >= 0.985  # pure-noise masks: the worst case (measured 0.992)


def _random_logits(seed: int, q: int = 100, h4: int = 40, w4: int = 56) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    cls = torch.randn(q, 22, generator=g) * 6
    # blobs, as a trained head gives: most queries negative almost everywhere, positive in a region
    yy, xx = torch.meshgrid(torch.arange(h4), torch.arange(w4), indexing="ij")
    cy, cx = torch.rand(q, 1, 1, generator=g) * h4, torch.rand(q, 1, 1, generator=g) * w4
    r = 3 + torch.rand(q, 1, 1, generator=g) * 10
    masks = 4 * (1 - ((yy - cy) ** 2 + (xx - cx) ** 2).sqrt() / r) + torch.randn(q, h4, w4, generator=g) * 0.5
    return cls, masks


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("out", [(150, 210), (120, 168), (180, 252)])
def test_box_bounded_postprocess_identical_to_full_planes(seed: int, out: tuple[int, int]) -> None:
    """upsampling inside each candidate's box, skipping candidates that cannot paste or matter, gives the
    label map of the previous full-plane implementation exactly (at the working size, below it, and above it by
    less than 2x the pixels: the second resize stage)."""
    from postprocess_v1 import m2fp_postprocess as full_planes

    cls, masks = _random_logits(seed)
    kw = dict(padded_hw=(160, 224), image_hw=(150, 210), out_hw=out, num_parsing=20, ins_score_thr=0.3)
    ref = full_planes(cls, masks, **kw)  # type: ignore[arg-type]
    got = m2fp_postprocess(cls, masks, **kw)  # type: ignore[arg-type]
    assert len(np.unique(ref.label_map)) > 3
    assert np.array_equal(got.label_map, ref.label_map)
    assert got.part_scores == pytest.approx(ref.part_scores, rel=1e-5)
    assert [h.score for h in got.humans] == pytest.approx(ref.human_scores, rel=1e-5)
    for h, m in zip(got.humans, ref.human_masks, strict=True):
        y0, y1, x0, x1 = h.box
        assert np.array_equal(h.mask, m[y0:y1, x0:x1]) and m.sum() == h.mask.sum()


@pytest.mark.parametrize("size", [((40, 56), (160, 224)), ((160, 216), (640, 864)), ((150, 210), (180, 252)),
                                  ((640, 853), (3024, 4032)), ((150, 210), (120, 168))])
def test_separable_upsample_gives_interpolates_floats(size: tuple[tuple[int, int], tuple[int, int]]) -> None:
    """``upsample_exact`` (two separable passes with addcmul as the fma) returns F.interpolate's floats bit for
    bit, on the whole output and on a box of it; ``_exact_upsample_ok`` holds on this CPU (else the code falls back
    to F.interpolate, and this test says the fast path is off here)."""
    from humanparse.engine.m2fp.postprocess import _exact_upsample_ok, _linear_coords, upsample_exact

    (h, w), (oh, ow) = size
    low = torch.randn(h, w, generator=torch.Generator().manual_seed(oh)) * 6
    ref = F.interpolate(low[None, None], size=(oh, ow), mode="bilinear", align_corners=False)[0, 0]
    rows, cols = _linear_coords(h, oh), _linear_coords(w, ow)
    assert _exact_upsample_ok()
    assert torch.equal(upsample_exact(low, rows, cols), ref)
    y0, y1, x0, x1 = oh // 5, oh - oh // 7, ow // 3, ow - 1
    box = upsample_exact(low, tuple(t[y0:y1] for t in rows), tuple(t[x0:x1] for t in cols))  # type: ignore[arg-type]
    assert box.is_contiguous() and torch.equal(box, ref[y0:y1, x0:x1])


def test_dominated_candidates_are_not_upsampled() -> None:
    """a part candidate whose best possible score is ≤ 0.5 (never pastes) and below a score its label already
    has is skipped before upsampling; one that could still be its label's best is not."""
    from humanparse.engine.m2fp.postprocess import Candidate, _dominated

    peak = 2.0  # the largest low-resolution logit: sigmoid(2) = 0.881, bound = class score x 0.881
    assert _dominated(Candidate(0, 3, 0.5), peak, best=0.6)
    assert not _dominated(Candidate(0, 3, 0.5), peak, best=0.4)  # could be its label's best
    assert not _dominated(Candidate(0, 3, 0.7), peak, best=0.9)  # bound 0.62 > 0.5: could paste


@pytest.mark.parametrize("seed", [5, 7])
def test_upscaled_decision_agrees_with_full_resolution(seed: int) -> None:
    """a photo 4.8x the working size (as 12 MP is to the 853x640 canvas): ≥ 99.5 % of pixels against deciding
    every photo pixel (measured 99.90 / 99.91 %) and per-class IoU ≥ 0.98 (measured 0.984 / 0.983; 0.955 when
    mask scores were sampled on a grid as coarse as the upscale factor)."""
    from postprocess_v1 import m2fp_postprocess as full_planes

    cls, masks = _random_logits(seed)
    kw = dict(padded_hw=(160, 224), image_hw=(150, 210), out_hw=(720, 1008), num_parsing=20, ins_score_thr=0.3)
    ref = full_planes(cls, masks, **kw).label_map  # type: ignore[arg-type]
    got = m2fp_postprocess(cls, masks, **kw).label_map  # type: ignore[arg-type]
    assert (got == ref).mean() >= 0.995
    for c in np.unique(ref):
        inter, union = ((got == c) & (ref == c)).sum(), ((got == c) | (ref == c)).sum()
        if union > 2000:
            assert inter / union >= 0.98, c


@pytest.mark.slow
def test_parse_random_weight_folder(m2fp_parser, photo: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    res = m2fp_parser.parse(photo)
    assert res.label_map.shape == photo.shape[:2] and res.label_map.dtype == np.uint8
    assert res.label_map.max() < 20
    assert len(np.unique(res.label_map)) >= 2  # the calibrated random head makes real decisions
    assert res.person_map.shape == photo.shape[:2]
    doc = res.summary()
    assert doc["model"]["kind"] == "m2fp" and "forward" in doc["timings_ms"]
    for p in res.persons:
        x0, y0, x1, y1 = p.bbox
        assert p.area == int((res.person_map == p.id).sum()) and (res.person_map[y0:y1, x0:x1] == p.id).any()


@pytest.mark.slow
def test_parse_time_budget(m2fp_parser, photo: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    import time

    from humanparse.exceptions import ParseTimeout

    with pytest.raises(ParseTimeout) as info:
        m2fp_parser.parse(photo, deadline=time.monotonic() - 1)
    assert info.value.code == "parse_timeout" and 400 <= info.value.http_status < 500


@pytest.mark.parametrize("seed,blobs", [(5, True), (6, True), (1, False)])
def test_row_slice_refine_band_identical_to_gathering_each_box(seed: int, blobs: bool,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``refine_band`` reading one row slice of the band per candidate from a _FLOOR plane gives exactly the
    label map of gathering only the band pixels inside each candidate's box (tests/refine_band_v1.py), with small
    boxes (blobs) and boxes covering the image (noise, as the random-weight head gives)."""
    from humanparse.engine.m2fp import postprocess as pp
    from refine_band_v1 import refine_band_v1

    if blobs:
        cls, masks = _random_logits(seed)
    else:
        g = torch.Generator().manual_seed(seed)
        cls = torch.randn(100, 22, generator=g) * 6
        masks = torch.randn(100, 40, 56, generator=g) * 3 + torch.linspace(-4, 4, 56)
    kw = dict(padded_hw=(160, 224), image_hw=(150, 210), out_hw=(720, 1008), num_parsing=20, ins_score_thr=0.3)
    got = m2fp_postprocess(cls, masks, **kw)  # type: ignore[arg-type]
    monkeypatch.setattr(pp, "refine_band", refine_band_v1)
    ref = m2fp_postprocess(cls, masks, **kw)  # type: ignore[arg-type]
    assert np.array_equal(got.work_label_map, ref.work_label_map)
    changed = (got.label_map != cv2_nearest(got.work_label_map, (720, 1008))).mean()
    assert changed > 0.001  # the refinement did decide something here
    assert np.array_equal(got.label_map, ref.label_map)


def cv2_nearest(label: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    import cv2

    return np.asarray(cv2.resize(label, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST))


def _photo_samples_written_out(hit: tuple[tuple[int, int, int, int], torch.Tensor], work_hw: tuple[int, int],
                               photo_hw: tuple[int, int], k: int) -> torch.Tensor:
    """The score's photo-pixel grid as first written: index_select gathers and out-of-place lerps."""
    from humanparse.engine.m2fp import postprocess as pp

    (y0, y1, x0, x1), m = hit
    plane = torch.full((y1 - y0 + 2, x1 - x0 + 2), pp._FLOOR)
    plane[1:-1, 1:-1] = m
    iy0, iy1, _, wy1 = (t[::k] for t in pp._linear_coords(work_hw[0], photo_hw[0]))
    ix0, ix1, _, wx1 = (t[::k] for t in pp._linear_coords(work_hw[1], photo_hw[1]))
    ry = torch.nonzero((iy1 >= y0) & (iy0 < y1)).flatten()
    rx = torch.nonzero((ix1 >= x0) & (ix0 < x1)).flatten()
    a0, a1 = (torch.clamp(i[ry] - y0 + 1, 0, y1 - y0 + 1) for i in (iy0, iy1))
    b0, b1 = (torch.clamp(i[rx] - x0 + 1, 0, x1 - x0 + 1) for i in (ix0, ix1))
    cols = torch.lerp(plane.index_select(1, b0), plane.index_select(1, b1), wx1[rx])
    return torch.lerp(cols.index_select(0, a0), cols.index_select(0, a1), wy1[ry, None])


def test_photo_samples_are_the_written_out_gathers_and_lerps() -> None:
    """``_photo_samples`` (cached grid coordinates, column gathers, lerps into their first operand) gives the floats
    of the formulation it replaced, bit for bit, and so the same mask scores: boxes in the middle, at each edge,
    one row or column wide, the whole canvas; grids every 1, 2 and 3 photo pixels, at two upscale ratios."""
    from humanparse.engine.m2fp import postprocess as pp

    g = torch.Generator().manual_seed(7)
    for work_hw, photo_hw in (((40, 53), (189, 250)), ((64, 48), (303, 229))):
        h, w = work_hw
        logits = torch.randn(h, w, generator=g) * 4
        boxes = [(0, h, 0, w), (5, 17, 9, 30), (0, 1, 0, w), (h - 3, h, w - 1, w), (11, 12, 20, 21), (3, h, 0, 7)]
        for (y0, y1, x0, x1) in boxes:
            hit = ((y0, y1, x0, x1), logits[y0:y1, x0:x1].contiguous())
            for k in (1, 2, 3):
                got = pp._photo_samples(hit, work_hw, photo_hw, k)
                want = _photo_samples_written_out(hit, work_hw, photo_hw, k)
                assert got.shape == want.shape and torch.equal(got, want), (work_hw, (y0, y1, x0, x1), k)
                assert got.numel() > 0
                assert pp._sampled_mask_score(got.clone()) == pp._sampled_mask_score(want.clone())


def test_sampled_mask_score_is_the_same_at_any_thread_count() -> None:
    """A 12 MP photo's mask score (a 1512x2016 sample) is the same float at 1, 2 and 3 threads — a whole-tensor
    sum is split among the threads, and the label map then differed in a few pixels between Lambda sizes — and
    within 1e-7 of the exact mean over the sample (``math.fsum``)."""
    import math

    from humanparse.engine.m2fp import postprocess as pp

    before = torch.get_num_threads()
    for seed in (0, 1):  # (the whole-tensor sum gave a different float at 1 thread for seed 0)
        sample = torch.randn(1512, 2016, generator=torch.Generator().manual_seed(seed)) * 3
        kept = [v for v in torch.sigmoid(sample).flatten().tolist() if v > 0.5]
        exact = math.fsum(kept) / len(kept)
        try:
            scores = set()
            for n in (1, 2, 3):
                torch.set_num_threads(n)
                scores.add(pp._sampled_mask_score(sample.clone()))
        finally:
            torch.set_num_threads(before)
        assert len(scores) == 1, (seed, scores)
        assert abs(scores.pop() - exact) < 1e-7


def test_band_paste_in_place_gives_the_written_out_expressions_floats() -> None:
    """``_band_paste`` computes its bilinear values in place; each is the float of the expression written out
    (``(a*wx0 + b*wx1)*wy0 + (c*wx0 + d*wx1)*wy1``, then sigmoid, score, threshold, mean), bit for bit."""
    import torch.nn.functional as F
    from humanparse.engine.m2fp import postprocess as pp

    g = torch.Generator().manual_seed(4)
    h, w, out_hw = 30, 41, (97, 131)
    logits = torch.randn(h, w, generator=g) * 5
    ys, xs = (a.ravel() for a in np.mgrid[: out_hw[0], : out_hw[1]])
    keep = np.random.default_rng(4).random(ys.size) < 0.3
    taps = pp._band_taps(ys[keep], xs[keep], (h, w), out_hw)

    class Up:
        def stage1(self, q: int) -> tuple[tuple[int, int, int, int], torch.Tensor]:
            return (0, h, 0, w), logits * (1 + q)

    cands = [pp.Candidate(query=q, label=1, class_score=0.9, score=s) for q, s in ((0, 0.9), (1, 0.7))]
    plane = torch.full((h, w), pp._FLOOR)
    got = pp._band_paste(cands, Up(), taps, plane)  # type: ignore[arg-type]
    acc, times = torch.zeros(ys[keep].size), torch.zeros(ys[keep].size)
    for c in cands:
        flat = (logits * (1 + c.query)).reshape(-1)
        v = ((flat[taps.i00] * taps.wx0 + flat[taps.i01] * taps.wx1) * taps.wy0
             + (flat[taps.i10] * taps.wx0 + flat[taps.i11] * taps.wx1) * taps.wy1)
        p = F.threshold(v.sigmoid() * c.score, 0.5, 0.0)
        acc, times = acc + p, times + p.sign()
    assert torch.equal(got, acc / times.clamp_min(1.0)) and bool((times > 0).any())
    assert torch.equal(plane, torch.full((h, w), pp._FLOOR))  # the borrowed plane is given back unchanged
