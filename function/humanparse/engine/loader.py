"""Pick and build the parser a deployment serves. Only reads local folders; downloading is
``humanparse.download`` (an explicit CLI step or the Docker build)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from ..exceptions import ModelNotFound
from .types import Parser

REPO_ROOT = Path(__file__).resolve().parents[3]


def m2fp_cache_path(settings: Settings) -> Path:
    return settings.model_cache_dir / "m2fp" / re.sub(r"[^A-Za-z0-9_.-]+", "--", settings.model_id)


def lite_search_dirs(settings: Settings) -> list[Path]:
    dirs = [settings.lite_model_dir] if settings.lite_model_dir else []
    # ../shared/models beside a checkout: the project's test data, present in CI and dev machines
    return dirs + [settings.model_cache_dir / "lite", REPO_ROOT.parent / "shared" / "models"]


def find_m2fp_dir(settings: Settings) -> Path | None:
    for cand in ([settings.model_dir] if settings.model_dir else []) + [m2fp_cache_path(settings)]:
        if (cand / "configuration.json").is_file() and (cand / "pytorch_model.pt").is_file():
            return cand
    return None


@dataclass
class LoadedParser:
    parser: Parser
    notice: str  # one line telling a person which model is serving


def load_parser(settings: Settings, threads: int = 2) -> LoadedParser:
    kind = settings.model_kind
    m2fp_dir = find_m2fp_dir(settings) if kind in ("auto", "m2fp") else None
    if kind == "m2fp" and m2fp_dir is None:
        where = settings.model_dir or m2fp_cache_path(settings)
        raise ModelNotFound(f"no M2FP model folder at {where}; run `python local_runner.py download m2fp` "
                            "(needs a network) or set the model folder")
    if m2fp_dir is not None:
        from .m2fp import build_m2fp

        parser = build_m2fp(m2fp_dir, model_id=settings.model_id if settings.model_dir is None else m2fp_dir.name,
                            precision=settings.precision)
        parser.person_score_thr = settings.person_score_thr
        return LoadedParser(parser, f"serving M2FP from {m2fp_dir} ({parser.precision} fast path)")
    from .lite import LiteParser, find_lite_models

    bp, pan = find_lite_models(lite_search_dirs(settings))
    notice = (f"serving the LITE model (BodyPix + PAN from {bp.parent}); for M2FP run "
              "`python local_runner.py download m2fp` (needs a network)")
    return LoadedParser(LiteParser(bp, pan, threads=threads), notice)
