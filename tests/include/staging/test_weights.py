"""Which weights a run gets: ``make run``'s decision and ``validate_params``' check.

No test touches the network: downloads are injected, or served from 127.0.0.1.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path

import pytest

from include.staging import weights as weights_module
from include.staging.weights import (
    WeightsUnavailableError,
    check_run_weights,
    decide_weights,
    download_imagenet_weights,
)


def _never(_: Path) -> bool:
    raise AssertionError("no download may be attempted here")


def test_cached_imagenet_file_is_used_without_download(tmp_path):
    cache = tmp_path / "mobilenet.h5"
    cache.write_bytes(b"weights")

    decision = decide_weights(None, cache_file=cache, download=_never)

    assert decision.value == "imagenet"
    assert decision.meaningful is True
    assert str(cache) in decision.reason


def test_successful_download_gives_imagenet(tmp_path):
    cache = tmp_path / "models" / "mobilenet.h5"
    calls = []

    def fake_download(dest: Path) -> bool:
        calls.append(dest)
        return True

    decision = decide_weights(None, cache_file=cache, download=fake_download)

    assert calls == [cache]
    assert decision.value == "imagenet"
    assert "downloaded" in decision.reason


def test_offline_without_cache_falls_back_to_random_weights_loudly(tmp_path):
    decision = decide_weights(None, cache_file=tmp_path / "missing.h5", download=lambda _: False)

    assert decision.value == "none"
    assert decision.meaningful is False
    assert "RANDOM weights" in decision.reason
    assert "NOT meaningful" in decision.reason


def test_no_download_at_all_when_offline(tmp_path):
    decision = decide_weights(None, cache_file=tmp_path / "missing.h5", download=None)

    assert decision.value == "none"


def test_explicit_imagenet_request_fails_instead_of_downgrading(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="ImageNet weights requested"):
        decide_weights("imagenet", cache_file=tmp_path / "missing.h5", download=lambda _: False)


def test_explicit_none_and_weights_file(tmp_path):
    none = decide_weights("none", cache_file=tmp_path / "x.h5", download=_never)
    assert none.value == "none"
    assert none.meaningful is False

    weights = tmp_path / "my.weights.h5"
    weights.write_bytes(b"w")
    chosen = decide_weights(str(weights), cache_file=tmp_path / "x.h5", download=_never)
    assert chosen.value == str(weights.resolve())
    assert chosen.meaningful is True

    with pytest.raises(WeightsUnavailableError, match="no such file"):
        decide_weights(str(tmp_path / "nope.h5"), download=_never)


@pytest.fixture
def weights_server(tmp_path, monkeypatch):
    """Serves tmp_path/www on 127.0.0.1 and points IMAGENET_URL at it."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(
        weights_module, "IMAGENET_URL", f"http://127.0.0.1:{server.server_address[1]}/w.h5"
    )
    try:
        yield www
    finally:
        server.shutdown()
        server.server_close()


def test_download_writes_the_file_atomically(weights_server, tmp_path):
    payload = os.urandom(1_200_000)
    (weights_server / "w.h5").write_bytes(payload)
    dest = tmp_path / "cache" / "models" / "w.h5"

    assert download_imagenet_weights(dest, timeout=5) is True
    assert dest.read_bytes() == payload
    assert not dest.with_name("w.h5.part").exists()


def test_download_rejects_an_error_page_and_leaves_nothing(weights_server, tmp_path):
    (weights_server / "w.h5").write_text("<html>blocked by proxy</html>")
    dest = tmp_path / "cache" / "w.h5"

    assert download_imagenet_weights(dest, timeout=5) is False
    assert not dest.exists()
    assert not dest.with_name("w.h5.part").exists()


def test_download_of_a_missing_file_is_false(weights_server, tmp_path):
    assert download_imagenet_weights(tmp_path / "w.h5", timeout=5) is False


def test_keras_cache_follows_keras_home(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert weights_module.keras_cache_file() == tmp_path / "models" / weights_module.IMAGENET_FILE


@pytest.fixture
def online(monkeypatch):
    monkeypatch.delenv("FRUITS_OFFLINE", raising=False)


@pytest.mark.usefixtures("online")
def test_run_check_takes_imagenet_from_the_keras_cache(tmp_path):
    cache = tmp_path / "w.h5"
    cache.write_bytes(b"weights")

    decision = check_run_weights(
        "imagenet", imagenet_loaded_here=True, cache_file=cache, download=_never
    )

    assert (decision.value, decision.meaningful) == ("imagenet", True)


@pytest.mark.usefixtures("online")
def test_run_check_downloads_imagenet_into_the_cache(tmp_path):
    fetched: list[Path] = []

    def fake_download(dest: Path) -> bool:
        fetched.append(dest)
        return True

    decision = check_run_weights(
        "imagenet", imagenet_loaded_here=True, cache_file=tmp_path / "w.h5", download=fake_download
    )

    assert fetched == [tmp_path / "w.h5"]
    assert decision.value == "imagenet"


@pytest.mark.usefixtures("online")
def test_run_check_fails_with_what_to_do_when_the_download_fails(tmp_path):
    with pytest.raises(WeightsUnavailableError) as raised:
        check_run_weights(
            "imagenet",
            imagenet_loaded_here=True,
            cache_file=tmp_path / "w.h5",
            download=lambda _: False,
        )

    message = str(raised.value)
    assert message.startswith("weights=imagenet: ImageNet weights requested")
    assert "the download failed" in message
    assert "weights=none" in message


def test_run_check_offline_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("FRUITS_OFFLINE", "1")

    with pytest.raises(WeightsUnavailableError, match="downloads are off"):
        check_run_weights(
            "imagenet", imagenet_loaded_here=True, cache_file=tmp_path / "w.h5", download=_never
        )


def test_run_check_leaves_imagenet_to_the_nodes_when_not_loaded_here(tmp_path):
    decision = check_run_weights(
        "imagenet", imagenet_loaded_here=False, cache_file=tmp_path / "w.h5", download=_never
    )

    assert (decision.value, decision.meaningful) == ("imagenet", True)


def test_run_check_of_none_and_of_a_file_needs_no_imagenet(tmp_path):
    none = check_run_weights("none", imagenet_loaded_here=True, download=_never)
    uri = check_run_weights("s3://b/w.h5", imagenet_loaded_here=True, download=_never)

    assert (none.value, none.meaningful) == ("none", False)
    assert "NOT meaningful" in none.reason
    assert uri.value == "s3://b/w.h5"


@pytest.mark.parametrize(
    ("value", "expected"), [("", False), ("0", False), ("1", True), ("yes", True)]
)
def test_offline_reads_fruits_offline(monkeypatch, value, expected):
    monkeypatch.setenv("FRUITS_OFFLINE", value)
    assert weights_module.offline() is expected
