"""``python local_runner.py [serve|parse|download|calibrate]`` (or the ``humanparse`` command) — see ``--help``."""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import logging
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from humanparse.config import Settings
from humanparse.exceptions import HumanParseError, ModelError, StorageUnavailable

if TYPE_CHECKING:
    from humanparse.entries.batch import Item
    from humanparse.entries.library import HumanParser
    from humanparse.pipeline.tryon_files import Extras

REPO_ROOT = Path(__file__).resolve().parents[3]
PACKAGED_FRONTEND = Path(__file__).resolve().parents[1] / "frontend"  # in a wheel (setup.py copies the page)


def frontend_dir() -> Path:
    """The page: the copy installed with the package, else ``frontend/`` of the checkout this runs from."""
    return PACKAGED_FRONTEND if (PACKAGED_FRONTEND / "index.html").is_file() else REPO_ROOT / "frontend"


FRONTEND_DIR = frontend_dir()
# a checkout keeps its data beside the code; an installed package in the folder it is started from
DATA_DIR = REPO_ROOT / ".humanparse-data" if (REPO_ROOT / "pyproject.toml").is_file() else Path(".humanparse-data")
log = logging.getLogger("humanparse.local")


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    kw: dict[str, Any] = {}
    if getattr(args, "model_dir", None):
        kw["model_dir"] = Path(args.model_dir)
        kw["model_kind"] = "m2fp"
    if getattr(args, "model", None) and args.model != "auto":
        kw["model_kind"] = args.model
    if getattr(args, "lite_dir", None):
        kw["lite_model_dir"] = Path(args.lite_dir)
    if getattr(args, "cache_dir", None):
        kw["model_cache_dir"] = Path(args.cache_dir)
    if getattr(args, "threads", None):
        kw["threads"] = args.threads
    if getattr(args, "precision", None):
        kw["precision"] = args.precision
    if getattr(args, "token", None):
        kw["api_token"] = args.token
    kw.update(extra)
    return Settings(**kw)


# ------------------------------------------------------------------------------------------------ parse
def _emit(args: argparse.Namespace, line: dict[str, Any]) -> None:
    """One JSON line per input on stdout for scripts (``--json``); the bar and the summary use stderr."""
    if getattr(args, "json", False):
        from tqdm import tqdm

        # UTF-8 whatever the locale: Windows writes a redirected stdout as cp1252, where a name outside it raises
        if isinstance(sys.stdout, io.TextIOWrapper) and sys.stdout.encoding.lower().replace("-", "") != "utf8":
            sys.stdout.reconfigure(encoding="utf-8")
        tqdm.write(json.dumps(line, ensure_ascii=False), file=sys.stdout)
        sys.stdout.flush()


def cmd_parse(args: argparse.Namespace) -> int:
    """Parse files, folders (recursive, images found by content) and globs into ``--out``, mirroring the input
    tree. Exit status 1 when any input failed (or none was found), 0 otherwise."""
    from tqdm import tqdm

    from humanparse.entries.batch import find_inputs
    from humanparse.entries.library import load

    out = Path(args.out)
    args.extras = _extras(args)  # a bad category or label set stops here, before the model loads
    found = find_inputs(args.images, out)
    parser = load(settings=_settings(args))
    print(parser.notice, file=sys.stderr)
    failures: list[tuple[str, HumanParseError]] = list(found.missing)
    for path, exc in found.missing:
        _emit(args, {"status": "failed", "input": path, **exc.to_dict()})
    for other in found.ignored:
        _emit(args, {"status": "ignored", "input": str(other), "detail": "not an image"})
    counts = {"parsed": 0, "skipped": 0}
    bar = tqdm(found.items, unit="img", file=sys.stderr, disable=args.quiet)
    try:
        for item in bar:
            bar.set_postfix_str(item.path.name[-30:])
            _parse_one(args, parser, item, out, failures, counts)
    except KeyboardInterrupt:  # results written so far are whole; say how to go on, skip the traceback
        bar.close()
        print(_summary(counts["parsed"], failures, counts["skipped"], found.ignored, out)
              + "\ninterrupted: run again with --skip-existing to go on", file=sys.stderr)
        return 130
    print(_summary(counts["parsed"], failures, counts["skipped"], found.ignored, out), file=sys.stderr)
    return 1 if failures or not (counts["parsed"] or counts["skipped"]) else 0


def _extras(args: argparse.Namespace) -> Extras:
    """The try-on files ``--tryon`` / ``--labels-as`` / ``--keypoints`` / ``--person`` ask for."""
    from humanparse.pipeline.tryon_files import Extras, categories_from, label_sets_from

    persons = tuple(args.person) if getattr(args, "person", None) else None
    if persons and any(p < 1 for p in persons):
        from humanparse.exceptions import UnknownPerson

        raise UnknownPerson("--person counts from 1 (people in result.json's order)")
    # one person named explicitly must show the category; over everyone, those who do not are passed over
    return Extras(categories=categories_from(getattr(args, "tryon", None) or []),
                  label_sets=label_sets_from(getattr(args, "labels_as", None) or []),
                  keypoints=bool(getattr(args, "keypoints", False)), persons=persons, strict=persons is not None)


def _parse_one(args: argparse.Namespace, parser: HumanParser, item: Item, out: Path,
               failures: list[tuple[str, HumanParseError]], counts: dict[str, int]) -> None:
    """Parse one input into ``out``; a failure is recorded (and reported) and the batch goes on."""
    from tqdm import tqdm

    from humanparse.entries.library import output_paths, write_outputs
    from humanparse.pipeline.tryon_files import expected_names, extra_files

    folder, stem = out / item.rel.parent, item.rel.name
    targets = [str(p) for p in output_paths(folder, stem).values()]
    # the try-on files whose names do not depend on the people found (keypoints, label sets) count too
    targets += [str(folder / f"{stem}.{name}") for name in expected_names(args.extras)]
    if getattr(args, "skip_existing", False) and all(Path(t).is_file() for t in targets):
        counts["skipped"] += 1
        _emit(args, {"status": "skipped", "input": str(item.path), "outputs": targets})
        return
    try:
        result = parser(item.path)
        files = {**extra_files(result, args.extras), **result.files} if args.extras else result.files
        targets = [str(p) for p in write_outputs(folder, stem, files)]
    except (HumanParseError, OSError) as exc:
        # the same code and words as HTTP answers and status.json; OSError: results not written (disk full)
        err = exc if isinstance(exc, HumanParseError) else StorageUnavailable(
            f"cannot write results to {folder} ({exc.strerror or type(exc).__name__})")
        failures.append((str(item.path), err))
        tqdm.write(f"failed {item.path}: {err.code}: {err}", file=sys.stderr)
        _emit(args, {"status": "failed", "input": str(item.path), **err.to_dict()})
        return
    counts["parsed"] += 1
    _emit(args, {"status": "parsed", "input": str(item.path), "outputs": targets,
                 "people": len(result.people),
                 "timings_ms": {k: round(v * 1000.0, 1) for k, v in result.timings.items()}})


def _summary(parsed: int, failures: list[tuple[str, HumanParseError]], skipped: int, ignored: list[Path],
             out: Path) -> str:
    """``412 parsed, 3 failed: a.jpg (truncated); … → out/`` plus skipped and ignored counts when not zero.
    A file is in one count only: "failed" for an image (by name or content) or a file named explicitly that did
    not parse, "ignored" (named, so it is not taken for a failed one) for a file in a folder or glob that is
    not an image at all."""
    head = f"{parsed} parsed, {len(failures)} failed"
    if failures:
        head += ": " + "; ".join(f"{p} ({e.code})" for p, e in failures[:10]) + ("; …" if len(failures) > 10 else "")
    if skipped:
        head += f"; {skipped} skipped (results already in {out}, --skip-existing)"
    if ignored:
        names = ", ".join(p.name for p in ignored[:3]) + (", …" if len(ignored) > 3 else "")
        head += f"; {len(ignored)} non-image file{'s' if len(ignored) != 1 else ''} ignored ({names})"
    if not (parsed or skipped or failures):
        return head + " — no image files found"
    return f"{head} → {out}"


# --------------------------------------------------------------------------------------------- download
def cmd_download(args: argparse.Namespace) -> int:
    from humanparse.engine.loader import m2fp_cache_path
    from humanparse.models.download import download_lite, download_m2fp

    settings = _settings(args)
    try:
        if args.what == "lite":
            dest = Path(args.dest) if args.dest else settings.model_cache_dir / "lite"
            for p in download_lite(dest, source_dir=Path(args.source) if args.source else None):
                print(p)
            return 0
        model_id = args.model_id or settings.model_id
        dest = Path(args.dest) if args.dest else m2fp_cache_path(settings.model_cache_dir, model_id)
        print(download_m2fp(model_id, dest))
    except HumanParseError as exc:
        print(f"download failed: {exc}", file=sys.stderr)
        return 2
    if args.no_calibrate:
        return 0
    return _calibrate(dest)


# -------------------------------------------------------------------------------------------- calibrate
def cmd_calibrate(args: argparse.Namespace) -> int:
    return _calibrate(Path(args.model_dir), [Path(p) for p in args.photos] or None, force=args.force)


def _calibrate(model_dir: Path, photos: list[Path] | None = None, *, force: bool = False) -> int:
    """fp32 vs bf16 on photos of people; the verdict file decides whether ``precision=auto`` may use bf16.
    Skipped (exit 0) where no verdict can pay off (``cpu.bf16_can_win``; ``force`` runs it anyway)."""
    from humanparse.engine.cpu import bf16_can_win
    from humanparse.engine.m2fp.calibration import calibrate  # here: torch loads only once calibration runs
    from humanparse.engine.m2fp.precision import VERDICT_FILE, choose_precision
    from humanparse.runtime import configure_threads

    if not force and not bf16_can_win():
        print("calibration skipped: this arm64 CPU has no BF16 arithmetic, so bf16 cannot be faster than fp32 "
              "here and precision=auto runs fp32 (--force calibrates anyway)", file=sys.stderr)
        return 0
    configure_threads(None)
    print(f"calibrating {model_dir}: fp32 and bf16 on {len(photos) if photos else 1} photo(s)…", file=sys.stderr)
    verdict = calibrate(model_dir, photos)
    choice = choose_precision("auto", model_dir)
    print(f"bf16 agrees with fp32 on {verdict['agreement']:.2%} of pixels (bar {verdict['bar']:.1%}); "
          f"wrote {model_dir / VERDICT_FILE}\nprecision=auto will run {choice.precision}: {choice.reason}")
    return 0


# ------------------------------------------------------------------------------------------------ serve
def cmd_serve(args: argparse.Namespace) -> int:
    """A thin wrapper: load the model, run a ``LocalDeployment`` until a stop signal."""
    from humanparse.engine.loader import load_parser
    from humanparse.local.deployment import DeploymentError, DeploymentOptions, LocalDeployment, StopSignals, check_port
    from humanparse.runtime import configure_threads

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    signals = StopSignals.install()  # from here on SIGTERM/SIGHUP stop gracefully, as Ctrl-C does
    opts = DeploymentOptions(data_dir=Path(args.data_dir).resolve(), frontend_dir=FRONTEND_DIR, host=args.host,
                             port=args.port, s3_port=args.s3_port, workers=args.workers,
                             drain_timeout=args.drain_timeout)
    try:
        check_port(opts.host, opts.port)  # before the model loads
        settings = _settings(args)
        loaded = load_parser(settings, threads=configure_threads(settings.threads))
        print(loaded.notice, flush=True)
        with LocalDeployment(settings, loaded.parser, opts) as dep:
            print(f"embedded S3 at {dep.settings.s3_endpoint_url} (data in {opts.data_dir}; {dep.restored} objects "
                  f"restored, {dep.resumed} jobs resumed)", flush=True)
            print(f"humanparse is up: open {opts.origin}/  (API at {opts.origin}/api/docs)", flush=True)
            status = dep.serve(signals)
            print("shutting down: finishing in-flight parses…", flush=True)
    except DeploymentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n = dep.processed
    print(f"stopped cleanly ({n} event{'s' if n != 1 else ''} handled this run)", flush=True)
    return status


EXAMPLES = {
    "serve": "python local_runner.py --port 8000            # page + API + embedded S3 at http://127.0.0.1:8000/",
    "parse": "python local_runner.py parse photos/*.jpg --out out/\n"
             "  python local_runner.py parse photos/ --out out/ --skip-existing --json   # a folder, recursively",
    "download": "python local_runner.py download m2fp       # M2FP weights (needs a network), then calibrate",
    "calibrate": "python local_runner.py calibrate --model-dir ~/.cache/humanparse/m2fp/damo--cv_resnet101_image-"
                 "multiple-human-parsing",
}
COMMANDS = tuple(EXAMPLES)


def build_parser(prog: str = "local_runner.py") -> argparse.ArgumentParser:
    run = f"python {prog}" if prog.endswith(".py") else prog

    def examples(*names: str) -> str:
        return "example" + ("s" if len(names) > 1 else "") + ":\n" + "\n".join(
            "  " + EXAMPLES[n].replace("python local_runner.py", run) for n in names)

    raw = argparse.RawDescriptionHelpFormatter
    ap = argparse.ArgumentParser(prog=prog, formatter_class=raw,
                                 description="humanparse on one machine, offline. With no command (or only serve's "
                                             "options, e.g. --port 8000) it serves.",
                                 epilog=examples(*COMMANDS))
    sub = ap.add_subparsers(dest="cmd", metavar="{" + ",".join(COMMANDS) + "}")
    for add in (_add_serve, _add_parse, _add_download, _add_calibrate):
        add(sub, examples, run)
    return ap


def _model_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=["auto", "m2fp", "lite"], default="auto",
                   help="auto: M2FP if its folder is found, else the lite model (ships with the package)")
    p.add_argument("--model-dir", help="an M2FP folder (configuration.json + pytorch_model.pt)")
    p.add_argument("--lite-dir", help="folder holding the two lite ONNX models (default: the packaged ones)")
    p.add_argument("--cache-dir", help="model cache (default ~/.cache/humanparse)")
    p.add_argument("--threads", type=int, help="CPU threads (default: the CPU quota)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"],
                   help="M2FP arithmetic; auto: bf16 only where a calibration verdict allows it, on AMX CPUs")


def _add_serve(sub: Any, examples: Callable[..., str], run: str) -> None:
    """``serve``: the page, API and embedded S3 on one machine."""
    raw = argparse.RawDescriptionHelpFormatter
    s = sub.add_parser("serve", help="embedded S3 + trigger + API + page (default)", formatter_class=raw,
                       epilog=examples("serve"))
    _model_opts(s)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--s3-port", type=int, default=0, help="embedded S3 port (default: a free one)")
    s.add_argument("--data-dir", default=str(DATA_DIR),
                   help="where uploads and results persist between runs")
    s.add_argument("--workers", type=int, default=1, help="parses at once (each uses all threads)")
    s.add_argument("--drain-timeout", type=float, default=120.0)
    s.add_argument("--token", help="API calls (all but /healthz) need 'Authorization: Bearer TOKEN'; "
                                   "HUMANPARSE_API_TOKEN does the same without showing it in the process list")
    s.set_defaults(func=cmd_serve)


def _add_parse(sub: Any, examples: Callable[..., str], run: str) -> None:
    """``parse``: files, folders and globs into result files."""
    raw = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("parse", help="parse image files into label/colour PNGs, an overlay JPEG and JSON",
                       formatter_class=raw, epilog=examples("parse"))
    _model_opts(p)
    p.add_argument("images", nargs="+", metavar="PATH",
                   help="image files, folders (searched recursively; images found by content) and globs "
                        "('photos/**/*.jpg')")
    p.add_argument("--out", required=True, help="results folder; mirrors the tree below each folder given")
    p.add_argument("--skip-existing", action="store_true",
                   help="leave inputs whose results are all in --out already (resume a stopped run)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON line per input on stdout: status (parsed, failed, skipped, ignored), "
                        "input, outputs, people, timings_ms, or error + detail")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    t = p.add_argument_group("try-on outputs (docs/tryon.md)")
    t.add_argument("--tryon", action="append", metavar="CATEGORY",
                   help="per person: STEM.tryon.CATEGORY.pK.mask.png, .agnostic.png, .parse_agnostic.png; "
                        "upper_body, lower_body, dresses, full_body, a comma list or all (repeatable)")
    t.add_argument("--person", action="append", type=int, metavar="K",
                   help="only person K (1 = the strongest; repeatable); default every person")
    t.add_argument("--labels-as", action="append", metavar="SET",
                   help="the label map in other ids too: STEM.lip.png, STEM.atr.png (lip, atr, a comma list)")
    t.add_argument("--keypoints", action="store_true",
                   help="STEM.keypoints.json: OpenPose-18 body keypoints per person (people[k-1] = person k)")
    p.set_defaults(func=cmd_parse)


def _add_download(sub: Any, examples: Callable[..., str], run: str) -> None:
    """``download``: the model files (needs a network)."""
    raw = argparse.RawDescriptionHelpFormatter
    d = sub.add_parser("download", help="fetch model files (needs a network)", formatter_class=raw,
                       epilog=examples("download") + "\n  " + run + " download lite        # refresh the lite "
                       "models from their public origins (they ship with the package)")
    d.add_argument("what", choices=["m2fp", "lite"])
    d.add_argument("--model-id", help="hub id, damo/ or iic/ (default damo/cv_resnet101_image-multiple-human-parsing)")
    d.add_argument("--dest", help="target folder (default: the model cache)")
    d.add_argument("--source", help="lite: copy from this folder instead of the network (checksums still checked)")
    d.add_argument("--cache-dir")
    d.add_argument("--no-calibrate", action="store_true", help="m2fp: skip the fp32/bf16 calibration after download")
    d.set_defaults(func=cmd_download)


def _add_calibrate(sub: Any, examples: Callable[..., str], run: str) -> None:
    """``calibrate``: the fp32/bf16 verdict for an M2FP folder."""
    raw = argparse.RawDescriptionHelpFormatter
    c = sub.add_parser("calibrate", help="run fp32 and bf16 on sample photos; write the verdict into the model folder",
                       formatter_class=raw, epilog=examples("calibrate"))
    c.add_argument("--model-dir", required=True, help="an M2FP folder (configuration.json + pytorch_model.pt)")
    c.add_argument("photos", nargs="*", help="photos of people (default: the public-domain photo in the package)")
    c.add_argument("--force", action="store_true", help="calibrate even on an arm64 CPU without BF16")
    c.set_defaults(func=cmd_calibrate)

# What a subcommand imports beyond the base install, and the extra (pyproject.toml) that brings it. `parse` and
# `calibrate` need nothing more; without this check a missing module surfaced as a traceback.
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "serve": ("local", ("uvicorn", "moto", "werkzeug")),
    "download m2fp": ("download", ("modelscope",)),
}


def install_command(extra: str) -> str:
    """The exact ``pip install`` that adds ``extra`` to this installation: this interpreter's pip, and the wheel
    or folder it was installed from when that is still there (the package is not on a public index)."""
    target = f"humanparse[{extra}]"
    editable = False
    try:
        direct = json.loads(metadata.distribution("humanparse").read_text("direct_url.json") or "null")
    except (metadata.PackageNotFoundError, ValueError):
        direct = None
    if isinstance(direct, dict) and str(direct.get("url", "")).startswith("file://"):
        source = Path(unquote(urlparse(direct["url"]).path))
        editable = bool(direct.get("dir_info", {}).get("editable"))
        if source.exists():
            target = f"{source}[{extra}]"
    elif (REPO_ROOT / "pyproject.toml").is_file():  # run from a checkout that pip never installed
        target = f"{REPO_ROOT}[{extra}]"
    return f"{sys.executable} -m pip install {'-e ' if editable else ''}'{target}'"


def missing_extra(args: argparse.Namespace) -> str | None:
    """One line naming the extra and its install command when the chosen subcommand's modules are missing."""
    for name in (args.cmd, f"{args.cmd} {getattr(args, 'what', '')}"):
        extra, modules = EXTRAS.get(name, ("", ()))
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if missing:
            return (f"error: `{name}` needs the [{extra}] extra ({', '.join(missing)} not installed): "
                    f"{install_command(extra)}")
    return None


_HINT = ("model files: the lite models ship with the package (`{run} download lite` refreshes them); M2FP "
         "weights are fetched with `{run} download m2fp` (needs a network), or pass --model-dir")


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """``local_runner.py`` and the ``humanparse`` console script. No command, or serve's options alone
    (``--port 8000``), means ``serve``."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    prog = prog or ("humanparse" if Path(sys.argv[0]).name == "humanparse" else "local_runner.py")
    if not args_in or (args_in[0] not in COMMANDS and args_in[0] not in ("-h", "--help")):
        args_in = ["serve", *args_in]
    args = build_parser(prog).parse_args(args_in)
    need = missing_extra(args)
    if need:
        print(need, file=sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except ModelError as exc:
        run = f"python {prog}" if prog.endswith(".py") else prog
        print(f"error: {exc}\n{_HINT.format(run=run)}", file=sys.stderr)
        return 2
    except HumanParseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
