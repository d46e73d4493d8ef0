"""Runs ModelScope's own M2FP model class and pipeline pre/post-processing on one image; writes an .npz.

Executed inside the reference venv (bench/setup_parity_env.sh), never imported by the project.
ModelScope hard-imports ``mmcv.ops.multi_scale_deform_attn`` and falls back to the pure-PyTorch function on
CPU. mmcv has no wheel for this Python, so the stub below provides that fallback from an independent
implementation (Hugging Face transformers' Deformable-DETR module), not from our code.
"""

from __future__ import annotations

import json
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch


def _install_mmcv_stub() -> None:
    from transformers.models.deformable_detr.modeling_deformable_detr import MultiScaleDeformableAttention

    hf = MultiScaleDeformableAttention()

    def multi_scale_deformable_attn_pytorch(value, spatial_shapes, sampling_locations, attention_weights):
        shapes = [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
        return hf(value, spatial_shapes, shapes, None, sampling_locations, attention_weights, 64)

    class MultiScaleDeformableAttnFunction:
        @staticmethod
        def apply(*args, **kwargs):
            raise RuntimeError("no compiled mmcv kernel on CPU")  # ModelScope catches this and falls back

    mmcv = types.ModuleType("mmcv")
    ops = types.ModuleType("mmcv.ops")
    msda = types.ModuleType("mmcv.ops.multi_scale_deform_attn")
    msda.multi_scale_deformable_attn_pytorch = multi_scale_deformable_attn_pytorch
    msda.MultiScaleDeformableAttnFunction = MultiScaleDeformableAttnFunction
    mmcv.ops = ops
    ops.multi_scale_deform_attn = msda
    sys.modules.update({"mmcv": mmcv, "mmcv.ops": ops, "mmcv.ops.multi_scale_deform_attn": msda})


def load_modelscope(model_dir: str) -> tuple[object, object]:
    """ModelScope's M2FP model class and its pipeline (pre-processing as is), loaded once."""
    _install_mmcv_stub()
    from modelscope.models.cv.image_human_parsing.m2fp_net import M2FP
    from modelscope.pipelines.cv.image_human_parsing_pipeline import ImageHumanParsingPipeline

    cfg = json.loads((Path(model_dir) / "configuration.json").read_text())["model"]
    kwargs = {k: v for k, v in cfg.items() if k != "type"}
    kwargs["pretrained"] = True
    model = M2FP(model_dir, **kwargs).eval()
    pipe = object.__new__(ImageHumanParsingPipeline)  # skip hub/registry set-up; use its preprocess as is
    pipe.model = model
    return pipe, model


def parse_once(pipe, model, image_path: str) -> dict[str, object]:
    """One image: ModelScope's pipeline preprocess → M2FP.forward → M2FP.postprocess; label map = argmax of its
    ``semantic_outputs`` (the per-class pasted probabilities)."""
    inp = pipe.preprocess(image_path)
    with torch.no_grad():
        fwd = model.forward(inp)
        logits = fwd["outputs"]["pred_logits"][0].clone()
        masks = fwd["outputs"]["pred_masks"][0].clone()
        post = model.postprocess(fwd)
    parsing = post["eval_result"][0]["parsing"]
    return {"logits": logits, "masks": masks, "parsing": parsing,
            "label_map": parsing["semantic_outputs"].argmax(0).to(torch.uint8).numpy()}


def run_modelscope(model_dir: str, image_path: str, runs: int = 1) -> dict[str, np.ndarray]:
    pipe, model = load_modelscope(model_dir)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = parse_once(pipe, model, image_path)
        times.append(time.perf_counter() - t0)
    humans = [float(h["score"]) for h in out["parsing"]["human_outputs"]]
    return dict(logits=out["logits"].numpy(), masks=out["masks"].numpy(), label_map=out["label_map"],
                human_scores=np.asarray(humans, dtype=np.float64), times=np.asarray(times))


def serve(model_dir: str, image_path: str, out_path: str) -> None:
    """bench/speed.py's interleaved mode: load once, print ``ready``; each ``run`` line on stdin → one parse,
    its seconds printed; ``done`` → the label map and times saved to ``out_path``."""
    pipe, model = load_modelscope(model_dir)
    print("ready", flush=True)
    times, label_map = [], None
    for line in sys.stdin:
        if line.strip() != "run":
            break
        t0 = time.perf_counter()
        label_map = parse_once(pipe, model, image_path)["label_map"]
        times.append(time.perf_counter() - t0)
        print(times[-1], flush=True)
    np.savez_compressed(out_path, label_map=label_map, times=np.asarray(times))


def main() -> None:
    """argv: model_dir image out.npz threads runs. Also runs our parser in this same process (same torch)
    and stores its outputs beside ModelScope's, so differences are the implementation's alone."""
    if sys.argv[1] == "serve":
        torch.set_num_threads(int(sys.argv[5]))
        if len(sys.argv) > 6 and sys.argv[6] == "kept":  # bench/speed.py --modelscope-malloc kept
            import importlib.util

            path = Path(__file__).resolve().parents[1] / "function" / "humanparse" / "runtime.py"
            spec = importlib.util.spec_from_file_location("hp_runtime", path)
            assert spec is not None and spec.loader is not None
            runtime = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(runtime)
            runtime.keep_freed_memory()  # our process set-up's allocator setting, for a like-for-like baseline
        serve(*sys.argv[2:5])
        return
    model_dir, image_path, out_path, threads, runs = sys.argv[1:6]
    torch.set_num_threads(int(threads))
    ref = run_modelscope(model_dir, image_path, int(runs))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "function"))
    from humanparse.engine.m2fp import build_m2fp, preprocess
    from humanparse.pipeline.imageio import decode_image

    parser = build_m2fp(model_dir, fast=False)  # the reference arithmetic: compared bit for bit
    rgb = decode_image(open(image_path, "rb").read()).rgb
    x, _ = preprocess(rgb)
    cls, masks = parser.forward(x)
    ours = parser.parse(rgb)
    np.savez_compressed(out_path, **ref, our_logits=cls.numpy(), our_masks=masks.numpy(),
                        our_label_map=ours.label_map)


if __name__ == "__main__":
    main()
