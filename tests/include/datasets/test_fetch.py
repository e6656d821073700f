"""``make dataset`` offline: archives served from 127.0.0.1 or file://, never the real URL."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
import zipfile
from pathlib import Path

import pytest

from include.datasets.fetch import FetchError, dataset_root_in, extract, fetch_dataset, main

NESTED = "fruits-360_dataset/fruits-360"


def _zip_dataset(src: Path, archive: Path, *, prefix: str = NESTED) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(src.rglob("*.jpg")):
            zf.write(path, f"{prefix}/{path.relative_to(src).as_posix()}")
        zf.writestr("__MACOSX/._readme", b"")  # Mac resource forks must not confuse the root
        zf.writestr(f"{prefix.split('/')[0]}/LICENSE", b"MIT")
    return archive


@pytest.fixture
def served(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www; yields its base URL."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_downloads_over_http_and_unpacks_the_training_folder(served, sample_dataset, tmp_path):
    www, base = served
    _zip_dataset(sample_dataset, www / "fruits.zip")
    dest = tmp_path / "data"

    folder = fetch_dataset(dest, url=f"{base}/fruits.zip")

    assert folder == dest / "fruits" / NESTED
    expected = sorted(p.relative_to(sample_dataset) for p in sample_dataset.rglob("*.jpg"))
    got = sorted(p.relative_to(folder) for p in folder.rglob("*.jpg"))
    assert got == expected
    assert (dest / "fruits.zip").is_file()
    assert not list(dest.glob("*.part"))
    assert not list(dest.glob(".fruits-extract-*"))


def test_file_url_and_cli_print_the_folder_to_use(sample_dataset, tmp_path, capsys):
    archive = _zip_dataset(sample_dataset, tmp_path / "src.zip", prefix="fruits-360")
    dest = tmp_path / "data"

    code = main(["--dest", str(dest), "--url", archive.as_uri(), "--delete-archive"])

    out = capsys.readouterr().out
    assert code == 0
    assert f"make run DATA={dest / 'fruits' / 'fruits-360'}" in out
    assert not (dest / "fruits.zip").exists()
    assert (dest / "fruits" / "fruits-360" / "Training").is_dir()


def test_an_existing_archive_is_not_downloaded_again(sample_dataset, tmp_path):
    dest = tmp_path / "data"
    dest.mkdir()
    _zip_dataset(sample_dataset, dest / "fruits.zip")

    # An unreachable URL proves no download was attempted.
    folder = fetch_dataset(dest, url="http://127.0.0.1:9/never")

    assert (folder / "Training").is_dir()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_is_a_clear_error_and_leaves_nothing(tmp_path, capsys):
    dest = tmp_path / "data"

    code = main(["--dest", str(dest), "--url", f"http://127.0.0.1:{_closed_port()}/fruits.zip"])

    err = capsys.readouterr().err
    assert code == 1
    assert "cannot download" in err
    assert f"put it at {dest / 'fruits.zip'}" in err
    assert not (dest / "fruits.zip").exists()
    assert not (dest / "fruits.zip.part").exists()


def test_http_error_page_is_a_clear_error(served, tmp_path):
    _, base = served

    with pytest.raises(FetchError, match="404"):
        fetch_dataset(tmp_path / "data", url=f"{base}/missing.zip")


def test_not_a_zip_is_rejected_before_anything_is_unpacked(served, tmp_path):
    www, base = served
    (www / "fruits.zip").write_text("<html>Access denied</html>")
    dest = tmp_path / "data"

    with pytest.raises(FetchError, match="not a zip archive"):
        fetch_dataset(dest, url=f"{base}/fruits.zip")
    assert not (dest / "fruits").exists()


def test_zip_without_fruits_layout_is_rejected(tmp_path):
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("photos/cat.jpg", b"x")

    with pytest.raises(FetchError, match="not a Fruits-360 archive"):
        extract(archive, tmp_path / "data")
    assert not (tmp_path / "data" / "fruits").exists()


def test_path_traversal_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fruits-360/Training/Apple/0_100.jpg", b"x")
        zf.writestr("../../escaped.txt", b"x")

    with pytest.raises(FetchError, match="outside the folder"):
        extract(archive, tmp_path / "data")
    assert not (tmp_path / "escaped.txt").exists()


def test_reextracting_replaces_the_previous_copy(sample_dataset, tmp_path):
    archive = _zip_dataset(sample_dataset, tmp_path / "a.zip", prefix="fruits-360")
    dest = tmp_path / "data"
    folder = extract(archive, dest)
    stale = folder / "Training" / "stale.jpg"
    stale.write_bytes(b"old")

    extract(archive, dest)

    assert not stale.exists()


def test_dataset_root_detection():
    assert dataset_root_in(["Training/Apple/0_100.jpg"]) == ""
    assert dataset_root_in(["__MACOSX/x/Training/A/b.jpg", "a/b/Training/A/1.jpg"]) == "a/b"
    with pytest.raises(FetchError):
        dataset_root_in(["Training/", "Training/readme.txt"])
