"""The model kinds: one table saying, for each kind of parser, how its folder is found, how it is built, how its
weights are identified and what it supports. Everything that names a kind reads it here: ``Settings`` checks
``model_kind`` against it and builds each kind's places from it, the command line offers its names as ``--model``,
the result cache keys on its weights fingerprint, video budgets on its seconds per frame, the kernel verdict is
shared only for a kind with the fast path, and ``/healthz`` / ``/config`` (and so the page) report its facts.

A new model is one ``register(ModelKind(...))`` (docs/models.md: model kinds). Like the rest of the engine this
knows no settings object, bucket or request: a kind only *names* the ``Settings`` field that points at its folder
(``dir_setting``; the environment variable is ``HUMANPARSE_`` + that name in capitals). Builders read local
folders and never download (``humanparse.models.download`` is the explicit step)."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from humanparse.engine.lite import BODYPIX_FILE, PAN_FILE, SUPPORTED, LiteParser, find_lite_models
from humanparse.engine.types import Parser
from humanparse.exceptions import ModelError
from humanparse.models import LITE_SHA256, packaged_lite_dir
from humanparse.pipeline.labels import CIHP_LABELS

M2FP_MODEL_NAME = "cv_resnet101_image-multiple-human-parsing"
# ModelScope moved the model from the `damo` namespace to `iic`; both ids name the same files.
M2FP_NAMESPACES = ("damo", "iic")
DEFAULT_M2FP_ID = f"damo/{M2FP_MODEL_NAME}"
M2FP_FILES = ("configuration.json", "pytorch_model.pt")  # = predictor.CONFIG_FILE, precision.WEIGHTS_FILE (torch)
ALL_LABELS = tuple(range(len(CIHP_LABELS)))


@dataclass(frozen=True)
class ModelSpec:
    """What to load and where from: ``kind`` ("auto" or a registered name) and, per kind, its candidate
    folders in order (the first holding the kind's files wins)."""

    kind: str = "auto"
    places: Mapping[str, tuple[Path, ...]] = field(default_factory=dict)  # kind name → candidate folders
    threads: int = 2
    precision: str = "auto"  # "auto" | "fp32" | "bf16" (a kind offers ``ModelKind.precisions``)
    model_id: str = DEFAULT_M2FP_ID  # reported in results when the folder came from the cache
    person_score_thr: float = 0.3
    kernels: str = "auto"  # M2FP fast path formulations: auto | default | group=formulation,... (m2fp/autotune.py)
    kernel_cache_dir: Path | None = None  # where the measured choice is cached (None: user cache dir, else /tmp)

    def dirs(self, kind: str) -> tuple[Path, ...]:
        """The candidate folders of ``kind``, in order (none: empty)."""
        return tuple(self.places.get(kind, ()))


@dataclass(frozen=True)
class ModelKind:
    """One kind of parser. ``build(folder, spec)`` → a ``Parser`` from a folder holding ``files`` (reads, never
    downloads); ``fingerprint(folder)`` → a string that changes whenever the weights do (the result cache's
    identity of the model; cheap: read at start). Whether its kernel verdict is shared: ``fast_path``."""

    name: str  # what --model, HUMANPARSE_MODEL_KIND, ModelInfo.kind and results say
    title: str  # what the page and the notices call it
    files: tuple[str, ...]  # a folder of this kind holds all of these
    build: Callable[[Path, ModelSpec], Parser]
    fingerprint: Callable[[Path], str]
    labels: tuple[int, ...] = ALL_LABELS  # CIHP ids it can produce
    precisions: tuple[str, ...] = ("fp32",)  # arithmetic it can run in
    seconds_per_frame: float = 2.0  # one sampled video frame (decode + parse + PNGs), for chunk budgets
    pose_head: bool = False  # fills ParseResult.poses itself; else the lite tier's pose network runs beside it
    fast_path: bool = False  # measures its kernels at load (the verdict shared through S3: kernel_share)
    in_auto: bool = False  # "auto" takes the first kind, in table order, whose folder is found
    dir_setting: str | None = "model_dir"  # the Settings field naming its own folder (first place tried)
    packaged: Callable[[], Path] | None = None  # a folder shipped in the package (second place)
    cache_dirs: Callable[[str], tuple[str, ...]] | None = None  # under the model cache, by model id; None: (name,)
    requires: tuple[str, ...] = ()  # modules it imports to build (checked before, without importing)
    requires_note: str = ""  # how a person knows what is missing ("PyTorch")
    requires_hint: str = ""  # said after "needs <it>, which is not installed" when this kind was asked for
    describe: Callable[[Path, Any], str] | None = None  # the start-up notice; None: "serving <title> from <folder>"

    @property
    def short(self) -> str:
        """The title without its parenthesis ("M2FP"), for sentences."""
        return self.title.split(" (")[0]

    def find(self, places: Sequence[Path]) -> Path | None:
        """The first of ``places`` holding all of ``files``."""
        return next((Path(p) for p in places if all((Path(p) / f).is_file() for f in self.files)), None)

    def cache_subdirs(self, model_id: str) -> tuple[str, ...]:
        return self.cache_dirs(model_id) if self.cache_dirs else (self.name,)

    def missing_module(self) -> str | None:
        """The first required module that cannot be imported here, or None."""
        for module in self.requires:
            try:
                if importlib.util.find_spec(module) is None:
                    return module
            except (ImportError, ValueError):  # a module blocked in sys.modules (set to None) or half-installed
                return module
        return None

    def notice(self, folder: Path, parser: Parser) -> str:
        return self.describe(folder, parser) if self.describe else f"serving {self.title} from {folder}"

    def facts(self) -> dict[str, Any]:
        """JSON-ready: what ``/healthz`` and ``/config`` say of this kind."""
        return {"name": self.name, "title": self.title, "files": list(self.files),
                "labels": [CIHP_LABELS[i] for i in self.labels], "precisions": list(self.precisions),
                "seconds_per_frame": self.seconds_per_frame, "pose_head": self.pose_head,
                "fast_path": self.fast_path, "in_auto": self.in_auto,
                "env": f"HUMANPARSE_{self.dir_setting.upper()}" if self.dir_setting else None}


MODEL_KINDS: dict[str, ModelKind] = {}  # in "auto" order


def register(kind: ModelKind) -> ModelKind:
    """Add (or replace) a kind; "auto" tries kinds with ``in_auto`` in the order they were first registered."""
    if kind.name == "auto" or not re.fullmatch(r"[a-z][a-z0-9_-]*", kind.name):
        raise ValueError(f"a model kind is named in lower-case letters, digits, - and _ (not 'auto'): {kind.name!r}")
    MODEL_KINDS[kind.name] = kind
    return kind


def model_kinds() -> list[ModelKind]:
    return list(MODEL_KINDS.values())


def kind_names() -> list[str]:
    return list(MODEL_KINDS)


def lookup(name: str) -> ModelKind | None:
    return MODEL_KINDS.get(name)


def has_pose_head(name: str) -> bool:
    """The kind named ``name`` finds poses with its parse (lite); unknown kinds are taken to have none."""
    kind = MODEL_KINDS.get(name)
    return kind is not None and kind.pose_head


def get_kind(name: str) -> ModelKind:
    kind = MODEL_KINDS.get(name)
    if kind is None:
        raise ModelError(f"unknown model kind {name!r}: one of auto, {', '.join(MODEL_KINDS)}")
    return kind


def folder_kind() -> str:
    """The kind a bare ``--model-dir`` folder is taken as: the first "auto" kind found through ``model_dir``."""
    return next(k.name for k in MODEL_KINDS.values() if k.in_auto and k.dir_setting == "model_dir")


@dataclass(frozen=True)
class Choice:
    """The kind ``spec`` asks for and its folder (None: not found); ``passed_over``: why "auto" took no earlier
    kind, one clause each."""

    kind: ModelKind
    folder: Path | None
    passed_over: tuple[str, ...] = ()


def choose(kind: str, places: Mapping[str, Sequence[Path]]) -> Choice:
    """Which kind loads and from where, without building it: a named kind as asked; "auto" the first kind with
    ``in_auto`` whose folder is found and whose modules are installed (else the last such kind, not found)."""
    if kind != "auto":
        chosen = get_kind(kind)
        return Choice(chosen, chosen.find(places.get(chosen.name, ())))
    why: list[str] = []
    candidates = [k for k in MODEL_KINDS.values() if k.in_auto]
    for cand in candidates:
        folder = cand.find(places.get(cand.name, ()))
        missing = cand.missing_module() if folder is not None else None
        if folder is not None and missing is None:
            return Choice(cand, folder, tuple(why))
        why.append(f"the {cand.short} folder {folder} needs {cand.requires_note or missing}, which is not installed"
                   if folder is not None else f"no {cand.short} folder in {where(places.get(cand.name, ()))}")
    return Choice(candidates[-1], None, tuple(why))


def where(places: Sequence[Path]) -> str:
    return ", ".join(str(d) for d in places) or "any configured place"


# --------------------------------------------------------------------------------------------- M2FP
def model_id_aliases(model_id: str) -> list[str]:
    """``model_id`` first, then the same model under ModelScope's other namespace (damo/ ↔ iic/)."""
    ns, _, name = model_id.partition("/")
    if ns in M2FP_NAMESPACES and name:
        return [model_id] + [f"{other}/{name}" for other in M2FP_NAMESPACES if other != ns]
    return [model_id]


def _m2fp_subdir(model_id: str) -> str:
    return "m2fp/" + re.sub(r"[^A-Za-z0-9_.-]+", "--", model_id)


def m2fp_cache_path(cache_dir: Path, model_id: str) -> Path:
    """Where ``download m2fp`` puts ``model_id`` under the model cache."""
    return cache_dir / _m2fp_subdir(model_id)


def m2fp_cache_candidates(cache_dir: Path, model_id: str) -> list[Path]:
    return [m2fp_cache_path(cache_dir, mid) for mid in model_id_aliases(model_id)]


def _build_m2fp(folder: Path, spec: ModelSpec) -> Parser:
    from humanparse.engine.m2fp import (
        build_m2fp,  # here, not at the top: it imports torch (~1 s), which the lite tier never needs
    )

    cached = folder in m2fp_cache_candidates(folder.parent.parent, spec.model_id)
    parser = build_m2fp(folder, model_id=spec.model_id if cached else folder.name, precision=spec.precision,
                        kernels=spec.kernels, kernel_cache_dir=spec.kernel_cache_dir)
    parser.person_score_thr = spec.person_score_thr
    return parser


def _m2fp_fingerprint(folder: Path) -> str:
    """Path, size and mtime of the checkpoint (hashing 250 MB at every start would cost seconds)."""
    st = (folder / M2FP_FILES[1]).stat()
    return f"{folder.resolve()}:{st.st_size}:{st.st_mtime_ns}"


M2FP = register(ModelKind(
    name="m2fp", title="M2FP (ResNet-101)", files=M2FP_FILES, build=_build_m2fp, fingerprint=_m2fp_fingerprint,
    # ~2 s per sampled video frame on 6 vCPU
    precisions=("fp32", "bf16"), seconds_per_frame=2.0, fast_path=True, in_auto=True, dir_setting="model_dir",
    cache_dirs=lambda model_id: tuple(_m2fp_subdir(mid) for mid in model_id_aliases(model_id)),
    requires=("torch",), requires_note="PyTorch",
    requires_hint=" (a lite-only install, e.g. on an Intel Mac where torch has no wheel); the lite model runs "
                  "without it (--model lite)",
    describe=lambda folder, p: f"serving M2FP from {folder} ({p.precision}: {p.precision_reason})"))


# --------------------------------------------------------------------------------------------- lite
def _build_lite(folder: Path, spec: ModelSpec) -> Parser:
    bp, pan = find_lite_models([folder])  # checks each file against its pinned sha256
    return LiteParser(bp, pan, threads=spec.threads)


LITE = register(ModelKind(
    name="lite", title="lite (BodyPix + PAN)", files=(BODYPIX_FILE, PAN_FILE), build=_build_lite,
    # the pinned sha256s: the loader refuses files that do not match them
    fingerprint=lambda folder: ",".join(f"{k}={v}" for k, v in sorted(LITE_SHA256.items())),
    labels=SUPPORTED,  # no Hat, Glove, Sunglasses, Dress, Coat, Socks, Scarf, Skirt
    # ~0.2 s per frame at 640x360 on 2 shared cores (bench/video.py), with headroom
    seconds_per_frame=0.25, pose_head=True, in_auto=True, dir_setting="lite_model_dir", packaged=packaged_lite_dir,
    cache_dirs=lambda model_id: ("lite",),
    describe=lambda folder, p: f"serving the LITE model (BodyPix + PAN from {folder})"))

