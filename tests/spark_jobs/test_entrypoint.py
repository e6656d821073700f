"""The file spark-submit runs: ``pack`` goes to the packing step, anything else to the job."""

from __future__ import annotations

import runpy
import sys

import pytest


def _run_entrypoint(monkeypatch, *argv: str) -> int:
    monkeypatch.setattr(sys, "argv", ["entrypoint.py", *argv])
    with pytest.raises(SystemExit) as done:
        runpy.run_module("spark_jobs.entrypoint", run_name="__main__")
    return done.value.code


def test_the_job_gets_every_other_command_line(monkeypatch, capsys):
    assert _run_entrypoint(monkeypatch, "--help") == 0
    assert "usage: spark_jobs [-h]" in capsys.readouterr().out


def test_pack_goes_to_the_packing_step_without_its_own_name(monkeypatch, capsys):
    assert _run_entrypoint(monkeypatch, "pack", "--help") == 0
    assert "usage: spark_jobs pack [-h]" in capsys.readouterr().out


def test_a_bad_command_line_is_an_argparse_error_of_the_job(monkeypatch, capsys):
    assert _run_entrypoint(monkeypatch, "--no-such-flag") == 2
    assert "spark_jobs: error:" in capsys.readouterr().err


def test_importing_it_runs_nothing(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["entrypoint.py", "--no-such-flag"])
    assert "main" not in runpy.run_module("spark_jobs.entrypoint")  # run_name is not __main__
