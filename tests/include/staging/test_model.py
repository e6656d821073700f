"""The local model cache (include/staging/model.py): reuse, repair, one conversion at a time."""

from __future__ import annotations

import threading
import time

import pytest

from include.staging.model import local_model
from spark_jobs import runtimes


@pytest.fixture
def conversions(monkeypatch) -> list[str]:
    """Replace the TensorFlow child by a model file of junk bytes (checked like a real one);
    returns the conversions made. Each takes 0.3 s, long enough for a second caller to
    arrive while it runs."""
    made: list[str] = []

    def convert(runtime, source, image_size, dest, local_file=None):
        made.append(runtime)
        time.sleep(0.3)
        key = runtimes.weights_key(source, local_file)
        spec = runtimes.ModelSpec(runtime, source, key, image_size)
        runtimes.write_model_file(dest, spec, b"\x00junk" * 100)

    monkeypatch.setattr(runtimes, "convert_in_subprocess", convert)
    return made


def test_a_cached_model_is_reused(tmp_path, conversions):
    first = local_model("litert", "none", 32, weights_file=None, cache_dir=tmp_path)
    again = local_model("litert", "none", 32, weights_file=None, cache_dir=tmp_path)
    assert first[2] is True
    assert again == (first[0], first[1], False)
    assert conversions == ["litert"]
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == [
        first[0].name
    ]  # no partial file left behind


def test_a_damaged_cached_model_is_converted_again(tmp_path, conversions):
    path, _, _ = local_model("onnx", "none", 32, weights_file=None, cache_dir=tmp_path)
    path.write_bytes(path.read_bytes()[:100])
    assert local_model("onnx", "none", 32, weights_file=None, cache_dir=tmp_path)[2] is True
    assert conversions == ["onnx", "onnx"]


def test_callers_sharing_a_cache_convert_a_model_once(tmp_path, conversions):
    results: list[tuple] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            results.append(local_model("litert", "none", 32, weights_file=None, cache_dir=tmp_path))
        except BaseException as exc:  # surfaced below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert conversions == ["litert"]
    assert sorted(converted for _, _, converted in results) == [False, False, True]
    assert len({path for path, _, _ in results}) == 1


def test_another_model_does_not_wait_for_the_lock_of_the_first(tmp_path, conversions):
    local_model("litert", "none", 32, weights_file=None, cache_dir=tmp_path)
    local_model("litert", "none", 64, weights_file=None, cache_dir=tmp_path)
    assert conversions == ["litert", "litert"]
    assert len(list(tmp_path.glob(".*.lock"))) == 2  # one lock per model file
