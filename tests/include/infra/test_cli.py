"""The CLI's surface: help for every command, argument errors, AWS errors without tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from include.infra.cli import build_parser, main
from tests.conftest import REPO_ROOT

COMMANDS = [
    "create-bucket",
    "upload-dataset",
    "create-roles",
    "print-roles",
    "status",
    "terminate",
    "download-results",
    "cleanup",
]


def test_every_command_is_listed_in_the_main_help(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["--help"])
    assert excinfo.value.code == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as excinfo:
        main([command, "--help"])
    assert excinfo.value.code == 0
    out = capsys.readouterr().out
    assert "--region" in out
    assert "--bucket" in out


def test_cleanup_help_names_the_confirmation_flag(capsys):
    with pytest.raises(SystemExit):
        main(["cleanup", "--help"])
    assert "--yes-i-am-sure" in capsys.readouterr().out


def test_bad_option_values_are_argparse_errors(capsys):
    for argv in (["create-bucket", "--log-retention-days", "0"], ["status", "--ttl-hours", "x"]):
        with pytest.raises(SystemExit) as excinfo:
            main(argv)
        assert excinfo.value.code == 2
    assert "must be >= 1" in capsys.readouterr().err


def test_no_command_is_an_error():
    with pytest.raises(SystemExit) as excinfo:
        build_parser().parse_args([])
    assert excinfo.value.code == 2


def test_aws_errors_become_a_message_and_exit_1(aws, cli):
    # The bucket does not exist: S3's error is reported, not raised.
    result = cli("download-results", "--bucket", "fruits-features-missing", "--list")
    assert result.code == 1
    assert "error: AWS ListObjectsV2 failed: NoSuchBucket" in result.err
    assert "Traceback" not in result.err


def test_module_entry_point_runs():
    completed = subprocess.run(
        [sys.executable, "-m", "include.infra", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "download-results" in completed.stdout


def test_unknown_profile_is_a_message_not_a_traceback(aws, cli):
    result = cli("status", "--profile", "no-such-profile-here")
    assert result.code == 1
    assert "no-such-profile-here" in result.err
    assert "Traceback" not in result.err
