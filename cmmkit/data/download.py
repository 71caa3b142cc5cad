"""Locate, download and verify dataset files, dataset-agnostic.

Why this module exists: every pair needs the same three things -- find where the user keeps a
dataset (``--data-dir``, ``$CMMKIT_DATA``, or the cache), fetch official files when online, and
notice when a file on disk is not what was downloaded. Failures raise :class:`DataError` whose
message says exactly what to do offline, because the most common user of these helpers is a
machine that cannot reach the publisher.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tqdm import tqdm

from cmmkit.errors import DataError
from cmmkit.logs import no_bar

__all__ = [
    "CHECKSUM_FILE",
    "RemoteFile",
    "atomic_path",
    "atomic_write",
    "atomic_write_bytes",
    "cache_root",
    "data_root",
    "fetch",
    "file_digest",
    "fsync_dir",
    "resolve_dataset_dir",
]

#: Per-folder record of files this module downloaded, so later runs can detect tampering.
CHECKSUM_FILE = ".cmmkit-checksums.json"
#: Seconds to wait for the server; short so an offline machine fails fast with advice.
TIMEOUT_S = 30.0
_CHUNK = 1 << 20


def data_root() -> Path | None:
    """The user's data root (``$CMMKIT_DATA``): one sub-folder per dataset, or ``None``."""
    value = os.environ.get("CMMKIT_DATA")
    return Path(value).expanduser() if value else None


def cache_root() -> Path:
    """Where downloads go: ``$CMMKIT_CACHE``, else ``$XDG_CACHE_HOME/cmmkit``, else ``~/.cache/cmmkit``."""
    value = os.environ.get("CMMKIT_CACHE")
    if value:
        return Path(value).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "cmmkit"


def resolve_dataset_dir(dataset: str, data_dir: str | Path | None) -> tuple[Path, bool]:
    """Return ``(folder, is_user_copy)`` for ``dataset``.

    Order: an explicit ``data_dir`` (the folder of this one dataset; must exist), then
    ``$CMMKIT_DATA/<dataset>`` if that folder exists, else ``cache_root()/<dataset>`` -- the download
    target, reported as not a user copy. A user copy is read as given and never written to.
    """
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        if not folder.is_dir():
            raise DataError(
                f"data folder {folder} for dataset {dataset!r} does not exist (given with --data-dir); "
                f"pass the folder that holds the {dataset} files"
            )
        return folder, True
    root = data_root()
    if root is not None and (root / dataset).is_dir():
        return root / dataset, True
    return cache_root() / dataset, False


@dataclass(frozen=True)
class RemoteFile:
    """One file a publisher offers; ``sha256``/``size`` only when the publisher states them."""

    filename: str
    url: str
    sha256: str | None = None
    size: int | None = None
    description: str = ""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once at import (os.umask is process-wide)


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: some file systems refuse)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: Path, *, prefix: str | None = None, suffix: str = ".tmp",
                before_replace: Callable[[], None] | None = None) -> Iterator[Path]:
    """Atomic writing, the one implementation: yield a temporary path in ``path``'s folder for the
    caller to write (with any writer: ``open``, ``safetensors``, ``numpy.memmap``); when the block
    ends cleanly the file is flushed to disk, given the permissions a plain ``open`` would (the
    umask's, not ``mkstemp``'s 0600), renamed onto ``path`` and the rename made durable.

    Readers never see a half-written file; on any error (or an exception raised in the block, e.g.
    a failed check) the temporary file is removed and ``path`` is untouched. The temporary name is
    ``{prefix}XXXXXXXX{suffix}`` (default prefix ``.{name}.``), so stale ones can be found by pattern.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}." if prefix is None else prefix, suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "wb") -> Iterator[IO]:
    """Write ``path`` through an open handle, atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, mode) as handle:
        yield handle


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)


def file_digest(path: Path) -> tuple[int, str]:
    """Return ``(size, sha256 hex)`` of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _read_records(folder: Path) -> dict[str, dict]:
    path = folder / CHECKSUM_FILE
    if not path.exists():
        return {}
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"checksum record {path} is unreadable ({exc}); delete it to re-record") from exc
    if not isinstance(records, dict):
        raise DataError(f"checksum record {path} is not a JSON object; delete it to re-record")
    return records


def _write_record(folder: Path, filename: str, size: int, sha256: str) -> None:
    records = _read_records(folder)
    records[filename] = {"size": size, "sha256": sha256}
    atomic_write_bytes(folder / CHECKSUM_FILE, (json.dumps(records, indent=2, sort_keys=True) + "\n").encode())


def _verify(path: Path, size: int | None, sha256: str, what: str) -> None:
    actual_size, actual_sha = file_digest(path)
    if actual_sha != sha256.lower() or (size is not None and actual_size != size):
        raise DataError(
            f"{path} fails verification against the {what}: expected sha256 {sha256} "
            f"({size if size is not None else '?'} bytes), found sha256 {actual_sha} ({actual_size} bytes). "
            f"The file is corrupt or was changed; delete it to download it again, or replace it with the official file."
        )


def _offline_advice(remote: RemoteFile, folder: Path, dataset: str) -> str:
    return (
        f"To work offline, download {remote.url} yourself and put it at {folder / remote.filename}, "
        f"or set CMMKIT_DATA to a folder holding {dataset}/{remote.filename}, "
        f"or pass --data-dir FOLDER with FOLDER holding {remote.filename}."
    )


def fetch(remote: RemoteFile, folder: Path, *, download: bool = True, progress: bool = True) -> Path:
    """Return the path of ``remote`` inside ``folder``, downloading it if absent and allowed.

    An existing file is verified when its checksum was recorded here or published; a new download
    is checked against the published sha256, or else its size and sha256 are recorded in
    ``folder/.cmmkit-checksums.json`` so later tampering or truncation is caught. The name of the
    dataset in advice messages is ``folder.name`` (folders come from :func:`resolve_dataset_dir`).
    """
    folder = Path(folder)
    target = folder / remote.filename
    dataset = folder.name or "DATASET"
    if target.exists():
        if remote.sha256:
            _verify(target, remote.size, remote.sha256, "published checksum")
        else:
            record = _read_records(folder).get(remote.filename)
            if record:
                _verify(target, record.get("size"), str(record.get("sha256", "")), f"checksum recorded in {folder / CHECKSUM_FILE}")
        return target
    if not download:
        raise DataError(f"{target} is missing and downloading is disabled. {_offline_advice(remote, folder, dataset)}")

    with atomic_path(target, suffix=".part") as tmp:
        digest = hashlib.sha256()
        received = 0
        try:
            request = urllib.request.Request(remote.url, headers={"User-Agent": "cmmkit"})
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, open(tmp, "wb") as out:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else remote.size
                with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=remote.filename,
                          disable=no_bar(progress), leave=False) as bar:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                if length and length.isdigit() and received != int(length):
                    raise DataError(
                        f"download of {remote.url} was cut short: expected {length} bytes, received {received}. "
                        f"{_offline_advice(remote, folder, dataset)}"
                    )
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            if isinstance(exc, urllib.error.HTTPError):
                reason: object = f"HTTP {exc.code} {exc.reason}"
            else:
                reason = getattr(exc, "reason", None) or exc
            raise DataError(
                f"could not download {remote.filename} from {remote.url}: {reason}. "
                f"{_offline_advice(remote, folder, dataset)}"
            ) from exc
        actual = digest.hexdigest()
        if remote.sha256 and (actual != remote.sha256.lower() or (remote.size is not None and received != remote.size)):
            raise DataError(
                f"downloaded {remote.filename} from {remote.url} does not match the published checksum: "
                f"expected sha256 {remote.sha256}, got {actual} ({received} bytes); nothing was saved. "
                f"Try again later. {_offline_advice(remote, folder, dataset)}"
            )
        if not remote.sha256:
            _write_record(folder, remote.filename, received, actual)
    return target
