"""Pick and build the parser a deployment serves, from a ``ModelSpec``: which kind (``engine/registry.py``), the
ordered places to look, threads, precision. Only reads local folders (downloading is ``humanparse.models.download``,
an explicit step); knows no settings, buckets or commands — the entry points build the spec
(``Settings.model_spec``) and add their own hints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from humanparse.engine.registry import ModelSpec, choose, where
from humanparse.engine.types import Parser
from humanparse.exceptions import ModelError, ModelNotFound

__all__ = ["HasModelSpec", "LoadedParser", "ModelSpec", "load_parser"]


class HasModelSpec(Protocol):
    """Anything that can describe the model to load (``Settings`` does)."""

    def model_spec(self, threads: int | None = None) -> ModelSpec: ...


@dataclass
class LoadedParser:
    parser: Parser
    notice: str  # one line telling a person which model is serving


def load_parser(spec: ModelSpec | HasModelSpec, threads: int | None = None) -> LoadedParser:
    """Build the parser ``spec`` names. ``spec`` may also be a settings object (``.model_spec(threads)``)."""
    if not isinstance(spec, ModelSpec):
        spec = spec.model_spec(threads)
    choice = choose(spec.kind, spec.places)
    kind, folder = choice.kind, choice.folder
    if folder is None:
        raise ModelNotFound(f"no {kind.short} model folder ({' + '.join(kind.files)}) in "
                            + where(spec.dirs(kind.name)) + "".join(f"; {why}" for why in choice.passed_over))
    missing = kind.missing_module()
    if missing is not None:
        raise ModelError(f"{kind.short} ({folder}) needs {kind.requires_note or missing}, which is not installed"
                         + kind.requires_hint)
    parser = kind.build(folder, spec)
    return LoadedParser(parser, "; ".join([kind.notice(folder, parser), *choice.passed_over]))
