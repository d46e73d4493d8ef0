"""Pick and build the parser a deployment serves, from a ``ModelSpec``: which model, the ordered places to look,
threads, precision. Only reads local folders (downloading is ``humanparse.models.download``, an explicit step); knows no
settings, buckets or commands — the entry points build the spec (``Settings.model_spec``) and add their own hints."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from humanparse.engine.types import Parser
from humanparse.exceptions import ModelError, ModelNotFound

M2FP_MODEL_NAME = "cv_resnet101_image-multiple-human-parsing"
# ModelScope moved the model from the `damo` namespace to `iic`; both ids name the same files.
M2FP_NAMESPACES = ("damo", "iic")
DEFAULT_M2FP_ID = f"damo/{M2FP_MODEL_NAME}"


@dataclass(frozen=True)
class ModelSpec:
    """What to load and where from. Places are tried in order; the first holding the files wins."""

    kind: Literal["auto", "m2fp", "lite"] = "auto"
    m2fp_dirs: tuple[Path, ...] = ()  # candidate M2FP folders (configuration.json + pytorch_model.pt)
    lite_dirs: tuple[Path, ...] = ()  # candidate folders of the two lite ONNX files (sha256-pinned)
    threads: int = 2
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    model_id: str = DEFAULT_M2FP_ID  # reported in results when the folder came from the cache
    person_score_thr: float = 0.3
    kernels: str = "auto"  # M2FP fast path formulations: auto | default | group=formulation,... (m2fp/autotune.py)
    kernel_cache_dir: Path | None = None  # where the measured choice is cached (None: user cache dir, else /tmp)


class HasModelSpec(Protocol):
    """Anything that can describe the model to load (``Settings`` does)."""

    def model_spec(self, threads: int | None = None) -> ModelSpec: ...


def model_id_aliases(model_id: str) -> list[str]:
    """``model_id`` first, then the same model under ModelScope's other namespace (damo/ ↔ iic/)."""
    ns, _, name = model_id.partition("/")
    if ns in M2FP_NAMESPACES and name:
        return [model_id] + [f"{other}/{name}" for other in M2FP_NAMESPACES if other != ns]
    return [model_id]


def m2fp_cache_path(cache_dir: Path, model_id: str) -> Path:
    """Where ``download m2fp`` puts ``model_id`` under the model cache."""
    return cache_dir / "m2fp" / re.sub(r"[^A-Za-z0-9_.-]+", "--", model_id)


def m2fp_cache_candidates(cache_dir: Path, model_id: str) -> list[Path]:
    return [m2fp_cache_path(cache_dir, mid) for mid in model_id_aliases(model_id)]


def find_m2fp_dir(places: tuple[Path, ...] | list[Path]) -> Path | None:
    for cand in places:
        if (cand / "configuration.json").is_file() and (cand / "pytorch_model.pt").is_file():
            return cand
    return None


@dataclass
class LoadedParser:
    parser: Parser
    notice: str  # one line telling a person which model is serving


def load_parser(spec: ModelSpec | HasModelSpec, threads: int | None = None) -> LoadedParser:
    """Build the parser ``spec`` names. ``spec`` may also be a settings object (``.model_spec(threads)``)."""
    if not isinstance(spec, ModelSpec):
        spec = spec.model_spec(threads)
    m2fp_dir = find_m2fp_dir(spec.m2fp_dirs) if spec.kind in ("auto", "m2fp") else None
    if spec.kind == "m2fp" and m2fp_dir is None:
        raise ModelNotFound("no M2FP model folder (configuration.json + pytorch_model.pt) in "
                            + (", ".join(str(d) for d in spec.m2fp_dirs) or "any configured place"))
    no_torch = m2fp_dir is not None and not _has_torch()
    if no_torch and spec.kind == "m2fp":
        raise ModelError(f"M2FP ({m2fp_dir}) needs PyTorch, which is not installed (a lite-only install, e.g. on "
                         "an Intel Mac where torch has no wheel); the lite model runs without it (--model lite)")
    if m2fp_dir is not None and not no_torch:
        from humanparse.engine.m2fp import (
            build_m2fp,  # here, not at the top: it imports torch (~1 s), which the lite tier never needs
        )

        cached = m2fp_dir in m2fp_cache_candidates(m2fp_dir.parent.parent, spec.model_id)
        parser = build_m2fp(m2fp_dir, model_id=spec.model_id if cached else m2fp_dir.name,
                            precision=spec.precision, kernels=spec.kernels, kernel_cache_dir=spec.kernel_cache_dir)
        parser.person_score_thr = spec.person_score_thr
        return LoadedParser(parser, f"serving M2FP from {m2fp_dir} ({parser.precision}: {parser.precision_reason})")
    from humanparse.engine.lite import LiteParser, find_lite_models  # here: only one of the two engines is ever loaded

    bp, pan = find_lite_models(list(spec.lite_dirs))
    notice = (f"serving the LITE model (BodyPix + PAN from {bp.parent}); "
              + (f"the M2FP folder {m2fp_dir} needs PyTorch, which is not installed" if no_torch else
                 "no M2FP folder in " + (", ".join(str(d) for d in spec.m2fp_dirs) or "any configured place")))
    return LoadedParser(LiteParser(bp, pan, threads=spec.threads), notice)


def _has_torch() -> bool:
    """PyTorch importable (M2FP needs it; a lite-only install has none)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True
