"""The local runner's object store on disk: one self-checking file per object, written durably before the
embedded S3 answers.

Layout of a data folder (format 2)::

    humanparse-data.json              {"format": 2}; a later release reads it to migrate
    lock                              held (an OS file lock) by the one runner using the folder
    objects/<bucket>/<encoded key>    one record per object (below)
    quarantine/<bucket>/...           records that failed their check at start (never served)

A record is ``MAGIC``, one JSON header line (bucket, key, size, sha256, etag, metadata, and the header's own
SHA-256) and the bytes. Header and bytes travel in one file, so one ``rename`` replaces both: there is no index
to fall out of step, and a file torn by a crash or a bad disk (a flipped bit in the content type included) fails
its check and is quarantined, never served. Big bodies are written and checked in 1 MiB pieces.

File names come only from keys (``encode_key``): every byte outside ``[a-z0-9_-]`` is ``%XX``-escaped (dots,
slashes and capitals included), so a name never starts with a dot, never holds a separator, never collides
with another key's name on a case-insensitive disk, and never equals a temp file (``.tmp-*``); names over
200 characters are cut and end in ``~`` + the key's SHA-256 (``~`` is always escaped, so a cut name never
equals a whole one). A name that Windows reserves for a device (``con``, ``nul``, ``aux``, ``com1`` …) has its
first letter escaped too (``%61ux``); a folder written before that rule is renamed at ``open``. At start every
name is checked against its header's key.

Portability: the lock is ``filelock``'s (``flock`` on POSIX, ``LockFileEx`` on Windows); on Windows the root
is used as an extended-length path (``\\\\?\\C:\\...``) so a 200-character name under a deep user folder passes
the 260-character limit, folders are not fsynced (Windows cannot open one; NTFS journals the rename), and a
rename or delete that antivirus or an indexer briefly holds is retried; macOS flushes with ``F_FULLFSYNC``
(its ``fsync`` leaves the bytes in the drive's cache).
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import logging
import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any, ParamSpec, TypeVar
from urllib.parse import quote, unquote

from filelock import FileLock, Timeout

log = logging.getLogger("humanparse.local.durable")
P = ParamSpec("P")
T = TypeVar("T")

FORMAT_VERSION = 2
FORMAT_FILE = "humanparse-data.json"
MAGIC = b"humanparse-object 2\n"  # 2: the header carries its own SHA-256
MAGIC_V1 = b"humanparse-object 1\n"  # still read (no header check)
MAX_NAME = 200
_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789_-")
_TMP_PREFIX = ".tmp-"
_MAX_HEADER = 256 * 1024
# Windows' device names: a file of one of these names (any case, any extension) opens the device instead
_RESERVED = frozenset(["con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))])
# a held file: ~1.5 s of retries (Defender holds a new file for tens of ms while it scans it)
_RETRY_DELAYS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8)


class StorageUnavailable(Exception):
    """Bytes could not be made durable (disk full, read-only, I/O error); nothing was acknowledged."""


class DataDirError(Exception):
    """The data folder cannot be used (newer format, held by another runner)."""


def encode_key(key: str) -> str:
    """Key → file name: injective, flat, case-insensitive-safe, at most ``MAX_NAME`` characters."""
    raw = key.encode("utf-8")
    name = "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in raw)
    if len(name) > MAX_NAME:
        name = name[:MAX_NAME - 65] + "~" + hashlib.sha256(raw).hexdigest()
    elif name in _RESERVED:  # `nul` → `%6Eul`: still decodes to the key, and no longer names a device
        name = f"%{ord(name[0]):02X}{name[1:]}"
    return name


@dataclass
class Record:
    bucket: str
    key: str
    body: bytes
    etag: str  # without quotes
    metadata: dict[str, str] = field(default_factory=dict)
    last_modified: str = ""
    body_at: tuple[Path, int, int] | None = None  # (file, offset, size): a big body left on disk (read_record)

    def chunks(self, block: int = 1 << 20) -> Iterator[bytes]:
        """The body in pieces, from memory or from its place on disk."""
        if self.body_at is None:
            yield self.body
            return
        path, offset, size = self.body_at
        with open(path, "rb") as f:
            f.seek(offset)
            while size > 0:
                data = f.read(min(block, size))
                if not data:
                    raise OSError(f"{path} shrank while being read")
                size -= len(data)
                yield data

    def encode(self) -> bytes:
        return self.encode_header(len(self.body), hashlib.sha256(self.body).hexdigest()) + self.body

    def encode_header(self, size: int, sha256: str) -> bytes:
        """``MAGIC`` and the header line of a record whose body has ``size`` bytes and this SHA-256 (hex).
        The header carries its own check (``header_sha256``), so a flipped bit in the content type or ETag
        is caught like one in the body."""
        header: dict[str, Any] = {
            "bucket": self.bucket, "key": self.key, "size": size, "sha256": sha256, "etag": self.etag,
            "metadata": self.metadata, "last_modified": self.last_modified or dt.datetime.now(dt.UTC).isoformat()}
        header["header_sha256"] = _header_check(header)
        return MAGIC + json.dumps(header, ensure_ascii=True).encode() + b"\n"


def _header_check(header: dict[str, Any]) -> str:
    fields = {k: v for k, v in header.items() if k != "header_sha256"}
    return hashlib.sha256(json.dumps(fields, ensure_ascii=True, sort_keys=True).encode()).hexdigest()


def decode_record(blob: bytes, *, bucket: str, name: str, body_check: tuple[int, str] | None = None) -> Record:
    """Parse and check one record file; ``ValueError`` says why it cannot be trusted. ``body_check``: the
    (size, sha256) of a body read apart (``blob`` is then the header alone)."""
    if not blob.startswith((MAGIC, MAGIC_V1)):
        raise ValueError("not a humanparse object record")
    end = blob.find(b"\n", len(MAGIC), len(MAGIC) + _MAX_HEADER)
    if end < 0:
        raise ValueError("header line missing or too long (torn write?)")
    head = json.loads(blob[len(MAGIC):end])
    body = blob[end + 1:]
    if not isinstance(head, dict) or not isinstance(head.get("key"), str):
        raise ValueError("header has no key")
    if blob.startswith(MAGIC) and head.get("header_sha256") != _header_check(head):
        raise ValueError("header (metadata, ETag) differs from the one recorded at write")
    size, sha256 = body_check or (len(body), hashlib.sha256(body).hexdigest())
    if size != head.get("size"):
        raise ValueError(f"size {size} != recorded {head.get('size')} (torn write?)")
    if sha256 != head.get("sha256"):
        raise ValueError("sha256 differs from the one recorded at write")
    if head.get("bucket") != bucket or encode_key(head["key"]) != name:
        raise ValueError("file name or folder does not match the key it holds")
    meta = head.get("metadata") or {}
    return Record(bucket, head["key"], body, str(head.get("etag", "")),
                  {str(k): str(v) for k, v in meta.items()}, str(head.get("last_modified", "")))


def extended_path(path: Path) -> Path:
    """On Windows the absolute ``\\\\?\\`` form of ``path``, which the file APIs take past 260 characters
    without the LongPathsEnabled policy; elsewhere ``path`` itself."""
    if sys.platform != "win32":
        return path
    return Path(_extended(PureWindowsPath(os.path.abspath(path))))


def _extended(p: PureWindowsPath) -> str:
    s = str(p)
    if s.startswith("\\\\?\\"):
        return s
    if s.startswith("\\\\"):  # \\server\share\... → \\?\UNC\server\share\...
        return "\\\\?\\UNC\\" + s[2:]
    return "\\\\?\\" + s


def fsync_file(fd: int) -> None:
    """Bytes of ``fd`` on stable storage. macOS's ``fsync`` stops at the drive's cache: ``F_FULLFSYNC`` flushes
    it (some file systems, e.g. network ones, refuse it: then ``fsync``)."""
    if sys.platform == "darwin":
        import fcntl

        try:
            fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
            return
        except OSError:
            pass
    os.fsync(fd)


def read_record(path: Path, *, bucket: str, in_memory_max: int = 1 << 20) -> Record:
    """``decode_record`` for a file of any size: the header is read, the body hashed in 1 MiB pieces; a body
    over ``in_memory_max`` stays on disk (``Record.body_at``), so a start with big uploads stored stays small."""
    with open(path, "rb") as f:
        head_blob = f.read(len(MAGIC) + _MAX_HEADER)
        end = head_blob.find(b"\n", len(MAGIC))
        if end < 0:
            return decode_record(head_blob, bucket=bucket, name=path.name)  # raises: no header line
        f.seek(end + 1)
        digest, size, kept = hashlib.sha256(), 0, bytearray()
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
            if size <= in_memory_max:
                kept += block
    # the header's own checks, against an empty body, then the body's size and hash
    rec = decode_record(head_blob[:end + 1], bucket=bucket, name=path.name, body_check=(size, digest.hexdigest()))
    if size <= in_memory_max:
        rec.body = bytes(kept)
    else:
        rec.body_at = (path, end + 1, size)
    return rec


def _fsync_dir(path: Path) -> None:
    """Make a rename or new entry in ``path`` durable. Only where a folder can be opened (POSIX): Windows
    cannot open one with ``os.open``, and NTFS journals its metadata itself."""
    o_directory = getattr(os, "O_DIRECTORY", None)
    if o_directory is None:
        return
    fd = os.open(path, os.O_RDONLY | o_directory)
    try:
        fsync_file(fd)
    finally:
        os.close(fd)


def retry_held(op: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``op(*args)``, retried for ~1.5 s while it raises ``PermissionError``: on Windows a file another process
    has open (antivirus, the search indexer, a reader) cannot be replaced or deleted for that moment."""
    for delay in _RETRY_DELAYS:
        try:
            return op(*args, **kwargs)
        except PermissionError:
            time.sleep(delay)
    return op(*args, **kwargs)


class DiskStore:
    """The durable half of the embedded S3. ``put``/``delete`` return only once the change is on disk
    (temp file, fsync, rename, directory fsync) or raise ``StorageUnavailable``.

    ``min_free_bytes``: writes marked ``reserve=True`` (uploads) are refused while less than this would stay
    free, so results of accepted uploads still have room when uploads no longer do.
    """

    def __init__(self, root: Path, *, min_free_bytes: int = 0, fsync: bool = True) -> None:
        self.root = extended_path(root)
        self.objects = self.root / "objects"
        self.min_free_bytes = min_free_bytes
        self.fsync = fsync  # only the benchmark turns it off, to measure what it costs
        self._lock: FileLock | None = None
        self._stripes = [threading.Lock() for _ in range(64)]

    # --------------------------------------------------------------------------------------- lifecycle
    def open(self) -> None:
        """Create or check the folder, take its lock, migrate an old mirror, clean crash leftovers."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        fmt = self.root / FORMAT_FILE
        if fmt.is_file():
            version = int(json.loads(fmt.read_text(encoding="utf-8")).get("format", 0))
            if version > FORMAT_VERSION:
                raise DataDirError(f"{self.root} holds data format {version}; this release reads up to "
                                   f"{FORMAT_VERSION}: use a newer humanparse or another --data-dir")
        else:
            self.objects.mkdir(exist_ok=True)
            migrated = self._migrate_mirror_v1()
            self._write_file(fmt, json.dumps({"format": FORMAT_VERSION, "written_by": "humanparse local runner",
                                              "migrated_objects": migrated}).encode())
        self.objects.mkdir(exist_ok=True)
        self._rename_legacy_names()

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _take_lock(self) -> None:
        lock = FileLock(self.root / "lock", timeout=0, thread_local=False)
        try:
            lock.acquire()
        except Timeout as exc:
            raise DataDirError(f"another local runner is using {self.root}") from exc
        self._lock = lock

    def _rename_legacy_names(self) -> None:
        """Give folders and records an earlier release named after a Windows device (``aux``) their current
        name, so they are found by ``path`` (such names can only exist in a folder written on POSIX)."""
        for bdir in [d for d in self.objects.iterdir() if d.is_dir()]:
            if bdir.name in _RESERVED and not (new := bdir.with_name(encode_key(bdir.name))).exists():
                bdir = bdir.rename(new)
                if self.fsync:
                    _fsync_dir(self.objects)
            for key in _RESERVED:
                old = bdir / key
                if old.is_file() and not (bdir / encode_key(key)).exists():
                    old.rename(bdir / encode_key(key))
                    log.info("data folder: renamed %s to %s", old, encode_key(key))
                    if self.fsync:
                        _fsync_dir(bdir)

    # ------------------------------------------------------------------------------------------ writes
    def lock_for(self, bucket: str, key: str) -> threading.Lock:
        """Held while a key's memory and disk copies are brought in step."""
        return self._stripes[hash((bucket, key)) % len(self._stripes)]

    def path(self, bucket: str, key: str) -> Path:
        return self.objects / encode_key(bucket) / encode_key(key)

    def put(self, rec: Record, *, reserve: bool = False) -> None:
        blob = rec.encode()
        target = self.path(rec.bucket, rec.key)
        try:
            if reserve and shutil.disk_usage(self.objects).free - len(blob) < self.min_free_bytes:
                raise OSError(errno.ENOSPC, f"less than {self.min_free_bytes >> 20} MB would stay free")
            self._ensure_dir(target.parent)
            self._write_file(target, blob)
        except OSError as exc:
            raise StorageUnavailable(f"could not store {rec.key!r}: {exc.strerror or exc}") from exc

    def put_stream(self, rec: Record, chunks: Callable[[], Iterable[bytes]], *, size: int,
                   sha256: str | None = None, reserve: bool = False) -> None:
        """``put`` for a body too big to hold: ``chunks()`` yields it in pieces (called twice when ``sha256``
        is not known yet: once to hash, once to write). Memory stays at one piece."""
        target = self.path(rec.bucket, rec.key)
        try:
            if sha256 is None:
                digest = hashlib.sha256()
                for block in chunks():
                    digest.update(block)
                sha256 = digest.hexdigest()
            if reserve and shutil.disk_usage(self.objects).free - size < self.min_free_bytes:
                raise OSError(errno.ENOSPC, f"less than {self.min_free_bytes >> 20} MB would stay free")
            self._ensure_dir(target.parent)
            self._write_file(target, rec.encode_header(size, sha256), chunks)
        except OSError as exc:
            raise StorageUnavailable(f"could not store {rec.key!r}: {exc.strerror or exc}") from exc

    def delete(self, bucket: str, key: str) -> None:
        target = self.path(bucket, key)
        try:
            if target.exists():
                retry_held(target.unlink)
                if self.fsync:
                    _fsync_dir(target.parent)
        except OSError as exc:
            raise StorageUnavailable(f"could not delete {key!r}: {exc.strerror or exc}") from exc

    def get(self, bucket: str, key: str) -> Record | None:
        try:
            return read_record(self.path(bucket, key), bucket=bucket)
        except FileNotFoundError:
            return None

    def _ensure_dir(self, d: Path) -> None:
        if not d.is_dir():
            d.mkdir(parents=True, exist_ok=True)
            if self.fsync:
                _fsync_dir(d.parent)

    def _write_file(self, target: Path, blob: bytes,
                    more: Callable[[], Iterable[bytes]] | None = None) -> None:
        tmp = target.with_name(f"{_TMP_PREFIX}{uuid.uuid4().hex}")
        try:
            with open(tmp, "xb") as f:
                f.write(blob)
                for block in more() if more is not None else ():
                    f.write(block)
                f.flush()
                if self.fsync:
                    fsync_file(f.fileno())
            retry_held(os.replace, tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if self.fsync:
            _fsync_dir(target.parent)

    # ------------------------------------------------------------------------------------------- reads
    def buckets(self) -> list[str]:
        return sorted(unquote(d.name) for d in self.objects.iterdir() if d.is_dir()) if self.objects.is_dir() else []

    def scan(self, bucket: str, *, repair: bool = True) -> Iterator[Record]:
        """Every trustworthy record of a bucket. With ``repair``, temp files (never acknowledged) are removed
        and records that fail their check are moved to ``quarantine/`` with a log line."""
        d = self.objects / encode_key(bucket)
        if not d.is_dir():
            return
        for f in sorted(d.iterdir()):
            if f.name.startswith(_TMP_PREFIX):
                if repair:
                    f.unlink(missing_ok=True)
                continue
            try:
                if f.is_symlink() or not f.is_file():
                    raise ValueError("not a regular file")
                yield read_record(f, bucket=bucket)
            except (ValueError, OSError) as exc:
                log.error("data folder: %s/%s is not served: %s", bucket, f.name, exc)
                if repair:
                    self._quarantine(bucket, f)

    def _quarantine(self, bucket: str, f: Path) -> None:
        q = self.root / "quarantine" / encode_key(bucket)
        q.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        f.replace(q / f"{f.name[:150]}.{stamp}.{uuid.uuid4().hex[:6]}")

    def verify(self) -> list[str]:
        """Problems found without changing anything (empty = consistent)."""
        problems = []
        if not (self.root / FORMAT_FILE).is_file():
            problems.append("no format file")
        for bdir in sorted(self.objects.iterdir()) if self.objects.is_dir() else []:
            for f in sorted(bdir.iterdir()):
                if f.name.startswith(_TMP_PREFIX):
                    problems.append(f"leftover temp file {f}")
                    continue
                try:
                    read_record(f, bucket=unquote(bdir.name))
                except (ValueError, OSError) as exc:
                    problems.append(f"{f}: {exc}")
        return problems

    # -------------------------------------------------------------------------------------- migration
    def _migrate_mirror_v1(self) -> int:
        """Import the old whole-folder mirror (``s3/<bucket>/<percent-encoded key>`` + ``.index.json``).
        Its index is not trusted: only flat, regular files whose name is exactly the encoding of a key are
        read; the old folder is left in place for the operator to delete."""
        old = self.root / "s3"
        if not old.is_dir():
            return 0
        n = 0
        for bdir in sorted(p for p in old.iterdir() if p.is_dir() and not p.is_symlink()):
            try:
                index: dict[str, Any] = json.loads((bdir / ".index.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                index = {}
            for name, meta in index.items():
                f = bdir / name
                ok = (isinstance(name, str) and "/" not in name and not name.startswith(".")
                      and quote(unquote(name), safe="") == name and f.is_file() and not f.is_symlink())
                if not ok:
                    log.warning("old mirror: skipping index entry %r", name)
                    continue
                ctype = meta.get("content_type") if isinstance(meta, dict) else None
                body = f.read_bytes()
                self.put(Record(bdir.name, unquote(name), body, hashlib.md5(body, usedforsecurity=False).hexdigest(),
                                {"Content-Type": ctype} if ctype else {}))
                n += 1
        log.info("data folder: %d objects migrated from the old mirror in %s", n, old)
        return n
