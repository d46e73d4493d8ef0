"""``parse`` on folders, files and globs with the real lite model: a temporary tree with nested folders, a
non-image file, an image without extension, a damaged image, a hidden folder, and ``--out`` inside the tree →
results mirror the tree, the summary and exit status are right, ``--json`` lines parse, ``--skip-existing``
skips. Input discovery (no model) is checked on its own below."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from humanparse.entries.batch import find_inputs, sniff_image
from humanparse.entries.cli import main
from PIL import Image

SUFFIXES = ("label.png", "color.png", "overlay.jpg", "persons.png", "legend.png", "json")


@pytest.fixture()
def tree(people_photos: list[Path], tmp_path: Path) -> Path:
    """photos/top.jpg, photos/a/b/noext (a JPEG without extension), photos/a/notes.txt, photos/a/broken.jpg
    (cut short), photos/.cache/hidden.jpg (not searched)."""
    root = tmp_path / "photos"
    (root / "a" / "b").mkdir(parents=True)
    (root / ".cache").mkdir()
    person, _, two, small, _ = people_photos
    shutil.copy(two, root / "top.jpg")
    shutil.copy(small, root / "a" / "b" / "noext")
    shutil.copy(small, root / ".cache" / "hidden.jpg")
    (root / "a" / "notes.txt").write_text("shot list\n")
    (root / "a" / "broken.jpg").write_bytes(person.read_bytes()[:3000])
    return root


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, Any]], str]:
    rc = main(["parse", *argv, "--model", "lite", "--threads", "2", "--json"])
    cap = capsys.readouterr()
    return rc, [json.loads(line) for line in cap.out.splitlines()], cap.err


def test_folder_tree_json_summary_and_skip_existing(tree: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tree / "results"  # inside the input tree: its PNGs must not be parsed on the second run
    rc, lines, err = _run([str(tree), "--out", str(out)], capsys)
    assert rc == 1  # broken.jpg failed
    by_input = {Path(line["input"]).relative_to(tree).as_posix(): line for line in lines}
    assert {k: v["status"] for k, v in by_input.items()} == {
        "top.jpg": "parsed", "a/b/noext": "parsed", "a/broken.jpg": "failed", "a/notes.txt": "ignored"}
    assert by_input["a/broken.jpg"]["error"] == "truncated" and by_input["a/broken.jpg"]["detail"]
    assert by_input["top.jpg"]["people"] == 2 and by_input["top.jpg"]["timings_ms"]["parse"] > 0
    assert by_input["a/b/noext"]["outputs"] == [str(out / "a" / "b" / f"noext.{s}") for s in SUFFIXES]
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted([f"top.{s}" for s in SUFFIXES] + [f"a/b/noext.{s}" for s in SUFFIXES])
    label = np.asarray(Image.open(out / "a" / "b" / "noext.label.png"))
    assert label.shape == Image.open(tree / ".cache" / "hidden.jpg").size[::-1] and label.max() > 0
    summary = err.strip().splitlines()[-1]
    assert summary == (f"2 parsed, 1 failed: {tree / 'a' / 'broken.jpg'} (truncated); "
                       f"1 non-image file ignored (notes.txt) → {out}")

    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    rc, lines, err = _run([str(tree), "--out", str(out), "--skip-existing"], capsys)
    assert rc == 1 and sorted(line["status"] for line in lines) == ["failed", "ignored", "skipped", "skipped"]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == mtimes  # nothing rewritten, nothing added
    assert "0 parsed, 1 failed" in err and "2 skipped" in err


def test_explicit_files_globs_and_exit_status(tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    rc, lines, err = _run([str(tree / "top.jpg"), str(tree / "a" / "b" / "noext"), "--out", str(out)], capsys)
    assert rc == 0 and [line["status"] for line in lines] == ["parsed", "parsed"]
    assert (out / "top.json").is_file() and (out / "noext.json").is_file()  # named files: flat, by stem
    assert err.strip().splitlines()[-1] == f"2 parsed, 0 failed → {out}"

    # a non-image named explicitly is a failure; a missing path too
    rc, lines, err = _run([str(tree / "a" / "notes.txt"), str(tree / "absent.jpg"), "--out", str(out)], capsys)
    assert rc == 1 and sorted(line["error"] for line in lines) == ["not_an_image", "unreadable"]
    assert "0 parsed, 2 failed" in err

    # a glob mirrors the tree below its fixed part
    rc, lines, err = _run([str(tree / "**" / "*.jpg"), "--out", str(tmp_path / "g")], capsys)
    assert rc == 1 and {Path(line["input"]).name: line["status"] for line in lines} == {
        "top.jpg": "parsed", "broken.jpg": "failed"}
    assert (tmp_path / "g" / "top.json").is_file() and not (tmp_path / "g" / "a" / "broken.json").exists()

    # an empty folder finds nothing: exit status 1, and says so
    (tmp_path / "empty").mkdir()
    rc, lines, err = _run([str(tmp_path / "empty"), "--out", str(out)], capsys)
    assert rc == 1 and lines == [] and "no image files found" in err


def test_find_inputs_by_content_collisions_and_hidden(tmp_path: Path) -> None:
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
    (root / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 16)
    (root / "a.png").write_bytes(png)
    (root / "sub" / "scan").write_bytes(b"RIFF\0\0\0\0WEBPVP8 ")
    (root / "sub" / "readme.md").write_text("# notes")
    (root / "._a.jpg").write_bytes(b"\0\x05\x16\x07")  # a macOS sidecar: hidden, not an image
    found = find_inputs([str(root), str(root / "a.jpg")], tmp_path / "out")  # a.jpg twice: parsed once
    assert [(i.path.relative_to(root).as_posix(), i.rel.as_posix()) for i in found.items] == [
        ("a.jpg", "a"), ("a.png", "a.png"), ("sub/scan", "sub/scan")]
    assert sorted(p.name for p in found.ignored) == ["._a.jpg", "readme.md"]
    # results written into the input folder itself (--out = the folder, or a folder above a glob) are not inputs
    (root / "a.color.png").write_bytes(png)
    (root / "a.overlay.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 16)  # the JPEG overlay is a result too
    (root / "a.overlay.png").write_bytes(png)  # as runs before the JPEG overlay wrote it
    (root / "a.json").write_text("{}")
    again = find_inputs([str(root)], root)
    assert [i.rel.as_posix() for i in again.items] == ["a", "a.png", "sub/scan"] and "a.json" not in str(again.ignored)
    globbed = find_inputs([str(root / "*.png")], tmp_path)
    assert [i.rel.as_posix() for i in globbed.items] == ["a"]  # a.png; the tree's a.color.png is a result
    assert sniff_image(b"GIF89a\0\0") and sniff_image(b"II*\x00") and not sniff_image(b"%PDF-1.7")
