"""The S3-request benchmark (item 12 of issue 12): one HEAD and one GET per image now,
three HEADs before; mini mode touches only its sample."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a Spark session over two 524- and 1048-file folders


def test_the_job_stats_each_image_once_and_mini_mode_only_its_sample(tmp_path):
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "s3.json"
    subprocess.run(
        [sys.executable, str(root / "benchmarks" / "s3_requests.py"), "--json", str(out)],
        check=True, capture_output=True, timeout=900, cwd=root,
    )  # fmt: skip
    result = json.loads(out.read_text())
    small, large = result["images"]["small"], result["images"]["large"]
    full = result["measured"]["full"]
    added = large - small
    assert full["large"]["after"]["HEAD"] - full["small"]["after"]["HEAD"] == added
    assert full["large"]["after"]["GET"] - full["small"]["after"]["GET"] == added
    assert full["large"]["before"]["HEAD"] - full["small"]["before"]["HEAD"] == 3 * added
    mini = result["measured"]["mini"]
    # The sample's 20 files, whatever the folder holds.
    assert mini["small"]["after"] == mini["large"]["after"]
    assert mini["large"]["after"]["GET"] == 20
    fruits = result["fruits_360"]
    assert fruits["full"]["after"]["total"] < fruits["full"]["before"]["total"] / 1.9
