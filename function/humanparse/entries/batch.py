"""What ``parse`` is asked to parse: files, folders (recursive) and globs → image files, each with the place its
results take under ``--out`` (the input tree mirrored, relative to each folder or glob root given).

In folders and globs a file is an image by its first bytes (JPEG, PNG, WebP, GIF, BMP, TIFF — what the decoder
accepts), or by an image extension (so a damaged ``.jpg`` is reported as a failure rather than passed over);
anything else is ignored and counted. A file named explicitly is always attempted: a non-image there fails with
the decoder's ``not_an_image``. Hidden files and folders (``.git``, macOS ``._photo.jpg`` sidecars) and the
output folder itself (``parse photos --out photos/out``) are not searched."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from humanparse.exceptions import FileUnreadable, HumanParseError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff",
                            ".mpo"})
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


def sniff_image(head: bytes) -> bool:
    """True when ``head`` (a file's first 12+ bytes) starts like an image format the decoder accepts."""
    return head.startswith(_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def looks_like_image(path: Path) -> bool:
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    try:
        with open(path, "rb") as fh:
            return sniff_image(fh.read(12))
    except OSError:
        return False


@dataclass(frozen=True)
class Item:
    path: Path  # the input file
    rel: Path  # results go to ``out / rel.parent`` named ``rel.name`` + suffix (``.label.png`` … ``.json``)


@dataclass
class Inputs:
    items: list[Item] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)  # non-image files inside folders / glob matches
    missing: list[tuple[str, HumanParseError]] = field(default_factory=list)  # arguments naming nothing


# overlay.png: what runs before the JPEG overlay wrote (still a result, never an input); atr.png …: the try-on
# files (tryon_files.py; keypoints.json ends like .json)
_RESULT_TAILS = tuple(f".{s}" for s in ("label.png", "color.png", "overlay.jpg", "overlay.png", "persons.png",
                                          "legend.png", "json", "tmp", "atr.png", "lip.png", "mask.png",
                                          "agnostic.png", "parse_agnostic.png"))


def is_result(path: Path, out: Path) -> bool:
    """A file an earlier run wrote: under ``out`` (resolved) and named like a result (``x.color.png``)."""
    return path.name.endswith(_RESULT_TAILS) and path.resolve().is_relative_to(out)


def _walk(folder: Path, skip: Path) -> tuple[list[Path], list[Path]]:
    """(candidate images, other files) under ``folder``, sorted, not entering hidden folders or ``skip``; results
    of an earlier run into a folder above or equal to this one are passed over silently."""
    images: list[Path] = []
    other: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and Path(root, d).resolve() != skip)
        for name in sorted(files):
            p = Path(root, name)
            if is_result(p, skip):
                continue
            (images if not name.startswith(".") and looks_like_image(p) else other).append(p)
    return images, other


def _glob_root(pattern: str) -> Path:
    """The folder part of ``pattern`` before its first wildcard (results mirror the tree below it)."""
    parts = Path(pattern).parts
    fixed = parts[: next(i for i, p in enumerate(parts) if glob.has_magic(p))]
    return Path(*fixed) if fixed else Path(".")


def _fold(rel: Path) -> str:
    """``rel`` as a case-insensitive disk sees it (``Photos/A`` == ``photos/a``)."""
    return rel.as_posix().casefold()


def find_inputs(args: list[str], out: Path) -> Inputs:
    """Expand ``args`` (files, folders, globs — ``**`` recurses) into the images to parse, in order, each
    file once. Two inputs that would write the same results (``a.jpg`` and ``a.png`` in one folder) are told
    apart by keeping the later one's extension in its name (``a.png.label.png``). Names are compared ignoring
    case on every platform (``a.png`` and ``A.jpg`` too): the default disks of macOS and Windows would make one's
    results overwrite the other's, and a run's output names should not depend on the disk it runs on."""
    found = Inputs()
    skip = out.resolve()
    seen: set[Path] = set()
    taken: set[str] = set()

    def add(path: Path, rel: Path) -> None:
        key = path.resolve()
        if key in seen:
            return
        seen.add(key)
        if _fold(rel) in taken:  # same stem in the same output folder
            rel = rel.with_name(path.name)
            n = 2
            while _fold(rel) in taken:
                rel, n = rel.with_name(f"{path.name}-{n}"), n + 1
        taken.add(_fold(rel))
        found.items.append(Item(path, rel))

    for arg in args:
        p = Path(arg)
        if p.is_dir():
            images, other = _walk(p, skip)
            for f in images:
                add(f, f.relative_to(p).with_name(f.stem))
            found.ignored += other
        elif p.exists():
            add(p, Path(p.stem))
        elif glob.has_magic(arg):
            root = _glob_root(arg)
            matches = sorted(Path(m) for m in glob.glob(arg, recursive=True))
            for m in matches:
                if m.is_dir() or is_result(m, skip):
                    continue
                rel = m.relative_to(root) if m.is_relative_to(root) else Path(m.name)
                if looks_like_image(m) and not m.name.startswith("."):
                    add(m, rel.with_name(m.stem))
                else:
                    found.ignored.append(m)
            if not matches:
                found.missing.append((arg, FileUnreadable(f"no file matches {arg}")))
        else:
            found.missing.append((arg, FileUnreadable(f"no such file or folder: {arg}")))
    # Each file counted once: one also named explicitly (``parse photos photos/notes.txt``) is attempted, so it
    # is parsed or failed, never "ignored" too; one met by two folders or globs is ignored once.
    ignored = {p.resolve(): p for p in found.ignored}
    found.ignored = [p for key, p in ignored.items() if key not in seen]
    return found
