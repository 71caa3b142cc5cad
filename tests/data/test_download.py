"""fetch/resolve_dataset_dir against a local HTTP server: download, record, verify, fail offline."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cmmkit.data.download import CHECKSUM_FILE, RemoteFile, atomic_write_bytes, cache_root, fetch, resolve_dataset_dir
from cmmkit.errors import DataError

PAYLOAD = bytes(range(256)) * 1000


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "file.bin").write_bytes(PAYLOAD)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_download_records_checksum_and_verifies(server: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = server
    folder = tmp_path / "cache" / "toy"
    remote = RemoteFile("file.bin", f"{base}/file.bin")
    path = fetch(remote, folder, progress=False)
    assert path == folder / "file.bin" and path.read_bytes() == PAYLOAD
    record = json.loads((folder / CHECKSUM_FILE).read_text())["file.bin"]
    assert record == {"size": len(PAYLOAD), "sha256": hashlib.sha256(PAYLOAD).hexdigest()}
    assert sorted(p.name for p in folder.iterdir()) == [CHECKSUM_FILE, "file.bin"]  # no temp files left
    assert fetch(remote, folder, download=False, progress=False) == path  # verified, not downloaded


def test_tampered_file_is_named(server: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = server
    folder = tmp_path / "toy"
    remote = RemoteFile("file.bin", f"{base}/file.bin")
    path = fetch(remote, folder, progress=False)
    path.write_bytes(PAYLOAD[:-1] + b"x")
    with pytest.raises(DataError) as err:
        fetch(remote, folder, progress=False)
    message = str(err.value)
    assert str(path) in message and hashlib.sha256(PAYLOAD).hexdigest() in message


def test_published_sha_mismatch_leaves_no_file(server: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = server
    folder = tmp_path / "toy"
    with pytest.raises(DataError, match="does not match the published checksum"):
        fetch(RemoteFile("file.bin", f"{base}/file.bin", sha256="0" * 64), folder, progress=False)
    assert list(folder.iterdir()) == []
    good = RemoteFile("file.bin", f"{base}/file.bin", sha256=hashlib.sha256(PAYLOAD).hexdigest(), size=len(PAYLOAD))
    assert fetch(good, folder, progress=False).read_bytes() == PAYLOAD
    assert not (folder / CHECKSUM_FILE).exists()  # published checksum: nothing to record


def test_unreachable_url_says_what_to_do(tmp_path: Path) -> None:
    folder = tmp_path / "lfw"
    url = "http://127.0.0.1:9/x/lfwcrop_color.zip"
    with pytest.raises(DataError) as err:
        fetch(RemoteFile("lfwcrop_color.zip", url), folder, progress=False)
    message = str(err.value)
    for part in (url, str(folder / "lfwcrop_color.zip"), "CMMKIT_DATA", "lfw/lfwcrop_color.zip", "--data-dir"):
        assert part in message
    assert not (folder / "lfwcrop_color.zip").exists()
    assert not [p for p in folder.iterdir() if p.suffix == ".part"]


def test_http_error_is_data_error(server: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = server
    with pytest.raises(DataError, match="404"):
        fetch(RemoteFile("nope.bin", f"{base}/nope.bin"), tmp_path / "toy", progress=False)
    assert not (tmp_path / "toy" / "nope.bin").exists()


def test_missing_without_download(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="downloading is disabled"):
        fetch(RemoteFile("a.bin", "http://example.invalid/a.bin"), tmp_path, download=False)


def test_resolve_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CMMKIT_DATA", raising=False)
    monkeypatch.setenv("CMMKIT_CACHE", str(tmp_path / "cache"))
    assert resolve_dataset_dir("lfw", None) == (tmp_path / "cache" / "lfw", False)
    data = tmp_path / "data"
    monkeypatch.setenv("CMMKIT_DATA", str(data))
    assert resolve_dataset_dir("lfw", None) == (tmp_path / "cache" / "lfw", False)  # no data/lfw yet
    (data / "lfw").mkdir(parents=True)
    assert resolve_dataset_dir("lfw", None) == (data / "lfw", True)
    explicit = tmp_path / "mine"
    explicit.mkdir()
    assert resolve_dataset_dir("lfw", explicit) == (explicit, True)
    with pytest.raises(DataError, match="does not exist"):
        resolve_dataset_dir("lfw", tmp_path / "absent")


def test_cache_root_convention(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CMMKIT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "cmmkit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "cmmkit"


def test_atomic_write_keeps_old_file_on_error(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    atomic_write_bytes(target, b"old")
    from cmmkit.data import download

    with pytest.raises(RuntimeError), download.atomic_write(target) as handle:
        handle.write(b"new")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["x.json"]
