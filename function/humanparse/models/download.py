"""Explicit download step (CLI ``download`` or the Docker build). The builders never call this."""

from __future__ import annotations

import shutil
import tempfile
import urllib.request
from pathlib import Path

from humanparse.exceptions import DownloadError
from humanparse.models import LITE_SHA256, sha256_file

# Public origins of the lite models; their content hashes are the package's pins.
LITE_URLS: dict[str, str] = {
    "bodypix-mobilenetv1-050-stride16.onnx":
        "https://github.com/keijiro/BodyPixSentis/raw/main/Packages/jp.keijiro.bodypix/ONNX/"
        "MobileNetV1-x050-stride16.onnx",
    "pan-mobilenetv3-skin-clothes-hair.onnx":
        "https://github.com/Kazuhito00/Skin-Clothes-Hair-Segmentation-using-SMP/raw/main/02.model/"
        "PAN(timm-mobilenetv3_small_100)_452_1.02M_0.8028/best_model_simplifier.onnx",
}
LITE_MODELS: dict[str, tuple[str, str]] = {name: (url, LITE_SHA256[name]) for name, url in LITE_URLS.items()}


def download_lite(dest: Path, *, source_dir: Path | None = None, timeout: float = 60.0) -> list[Path]:
    """Fetch (or copy from ``source_dir``) both lite models into ``dest``; every file's sha256 is checked
    before it is moved into place, so a partial or tampered file never lands."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for name, (url, digest) in LITE_MODELS.items():
        target = dest / name
        if target.is_file() and sha256_file(target) == digest:
            out.append(target)
            continue
        tmp_path = _fetch_to_temp(dest, name, url, source_dir, timeout)
        got = sha256_file(tmp_path)
        if got != digest:
            tmp_path.unlink(missing_ok=True)
            raise DownloadError(f"{name}: sha256 {got} does not match the pinned {digest}")
        tmp_path.replace(target)
        out.append(target)
    return out


def _fetch_to_temp(dest: Path, name: str, url: str, source_dir: Path | None, timeout: float) -> Path:
    """The bytes of one model in a ``.part`` file beside its target, closed (Windows deletes no open file)."""
    with tempfile.NamedTemporaryFile(dir=dest, delete=False, suffix=".part") as tmp:
        tmp_path = Path(tmp.name)
        try:
            if source_dir is not None:
                with open(source_dir / name, "rb") as src:
                    shutil.copyfileobj(src, tmp)
            else:
                with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - fixed https URLs
                    shutil.copyfileobj(resp, tmp)
            failure = None
        except OSError as exc:
            failure = exc
    if failure is not None:
        tmp_path.unlink(missing_ok=True)
        raise DownloadError(f"could not fetch {name}: {failure}") from failure
    return tmp_path


def download_m2fp(model_id: str, dest: Path) -> Path:
    """Fetch an M2FP folder by hub id with ModelScope's own downloader (``pip install modelscope``)."""
    try:
        from modelscope.hub.snapshot_download import snapshot_download
    except ImportError as exc:
        raise DownloadError("downloading M2FP needs ModelScope's downloader: pip install modelscope") from exc
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        path = Path(snapshot_download(model_id, cache_dir=str(dest.parent / ".hub")))
    except Exception as exc:  # noqa: BLE001 - hub client raises many kinds; network is the usual cause
        raise DownloadError(f"could not download {model_id}: {exc}") from exc
    for name in ("configuration.json", "pytorch_model.pt"):
        if not (path / name).is_file():
            raise DownloadError(f"{model_id} download has no {name}")
    if dest.exists() or dest.is_symlink():
        if dest.is_symlink() or dest.is_file():
            dest.unlink()
        else:
            shutil.rmtree(dest)
    try:
        dest.symlink_to(path, target_is_directory=True)
    except OSError:  # Windows without Developer Mode or admin rights: the snapshot itself moves into place
        path.replace(dest)
    return dest
