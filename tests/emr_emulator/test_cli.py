"""``python -m emr_emulator``: the command compose and ``make emulator`` run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from include.local.airflow_stack import free_port, http_status

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_command_serves_on_loopback_creates_the_bucket_and_stops_on_sigterm(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emr_emulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "emu"),
            "--bucket",
            "cli-test-bucket",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while http_status(f"{url}/_emr_emulator/clusters") != 200:
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.2)
        s3 = boto3.client(
            "s3",
            endpoint_url=url,
            region_name="eu-west-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["cli-test-bucket"]
        encryption = s3.get_bucket_encryption(Bucket="cli-test-bucket")
        rule = encryption["ServerSideEncryptionConfiguration"]["Rules"][0]
        assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode()
    assert b"stopping the EMR emulator" in out


def test_command_refuses_a_non_loopback_address(tmp_path, monkeypatch, capsys):
    from emr_emulator.__main__ import main

    monkeypatch.delenv("FRUITS_EMU_ALLOW_NON_LOOPBACK", raising=False)
    assert main(["--host", "0.0.0.0", "--data-dir", str(tmp_path)]) == 2
    assert "loopback only" in capsys.readouterr().err
