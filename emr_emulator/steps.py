"""Running one EMR step for real: a ``command-runner.jar`` ``spark-submit`` on local Spark.

The step's own argument list is run, with these rewrites and no others:

1. ``--master yarn`` becomes ``--master local[N]`` (there is no YARN here);
2. every ``s3://bucket/key`` (also s3a/s3n) inside any argument becomes
   ``file://<mirror>/bucket/key``: the objects are downloaded into the mirror before the
   step, and what the step wrote there is uploaded to the same keys after it
   (:mod:`emr_emulator.mirror`);
3. the cluster's Python: an interpreter named by ``spark.pyspark.python`` /
   ``spark.pyspark.driver.python`` / ``spark.executorEnv.PYSPARK_PYTHON`` /
   ``spark.yarn.appMasterEnv.PYSPARK_PYTHON`` (``--conf`` or ``spark-defaults``) or by
   ``PYSPARK_PYTHON`` (its ``spark-env`` export) is the node's Python, which on EMR the
   bootstrap action filled with the job's requirements; here it is the emulator's own
   interpreter, whose environment has them.

The cluster's ``spark-defaults`` classification is written to the step's
``spark-defaults.conf`` (as EMR writes ``/etc/spark/conf``), on top of the emulator's node
defaults (:data:`NODE_SPARK_DEFAULTS`), and its ``spark-env`` exports are the step's
environment. ``spark-submit`` is the one of the emulator's pyspark (:func:`find_spark_submit`).

:func:`run_job` runs a prepared command with the mirror synced around it (what a cluster step
and an EMR Serverless job run share), :func:`push_logs` uploads its logs gzipped.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError

from emr_emulator.mirror import S3Location, S3Mirror, parse_s3_uri

log = logging.getLogger("emr_emulator")

# An S3 URI inside any argument: up to a separator of lists (",", ";"), a quote, or the
# "#alias" of --archives/--files.
_S3_IN_TEXT = re.compile(r"s3[an]?://[A-Za-z0-9.\-_]+(?:/[^\s,;'\"#]*)?")
_PYTHON_CONFS = (
    "spark.pyspark.python",
    "spark.pyspark.driver.python",
    "spark.executorEnv.PYSPARK_PYTHON",
    "spark.yarn.appMasterEnv.PYSPARK_PYTHON",
)
_PYTHON_ENV = ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON")

NODE_SPARK_DEFAULTS = {
    # Loopback only, and no UI port: this "node" is the machine the emulator runs on.
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.ui.enabled": "false",
    # EMR sizes the driver from the instance type; 2 GiB fits the job on a small machine.
    "spark.driver.memory": "2g",
    # Stage progress bars in the step's stderr: `make run-emr` shows them while it waits.
    "spark.ui.showConsoleProgress": "true",
}
"""What the emulator's "nodes" put in spark-defaults.conf before the cluster's own settings."""


class StepRejected(ValueError):
    """A step the emulator cannot run (not command-runner.jar + spark-submit)."""


@dataclass
class PreparedStep:
    """The command to run and what the mirror must sync around it."""

    argv: list[str]
    env: dict[str, str]
    locations: list[S3Location]
    rewrites: list[str] = field(default_factory=list)
    stderr_head: list[str] = field(default_factory=list)
    """Lines the step's stderr starts with (what YARN granted, as the driver's log says)."""

    @property
    def buckets(self) -> list[str]:
        return sorted({location.bucket for location in self.locations})


def classification(configurations: Sequence[Mapping[str, Any]], name: str) -> dict[str, str]:
    """Properties of a top-level classification (``spark-defaults``...) of RunJobFlow."""
    for item in configurations or []:
        if item.get("Classification") == name:
            return {str(k): str(v) for k, v in (item.get("Properties") or {}).items()}
    return {}


def spark_env_exports(configurations: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """``spark-env`` -> ``export`` properties: the environment of Spark on EMR nodes."""
    for item in configurations or []:
        if item.get("Classification") == "spark-env":
            for nested in item.get("Configurations") or []:
                if nested.get("Classification") == "export":
                    return {str(k): str(v) for k, v in (nested.get("Properties") or {}).items()}
    return {}


def find_spark_submit(python: str) -> str:
    """spark-submit next to the interpreter (a venv's bin/), else the one inside the pyspark
    package this process imports (pip --user installs put the scripts elsewhere)."""
    beside = Path(python).with_name("spark-submit")
    if beside.is_file():
        return str(beside)
    import pyspark  # noqa: PLC0415 (lazy: loads pyspark and psutil)

    return str(Path(pyspark.__file__).parent / "bin" / "spark-submit")


def prepare_step(
    hadoop_jar_step: Mapping[str, Any],
    *,
    configurations: Sequence[Mapping[str, Any]],
    mirror: S3Mirror,
    conf_dir: Path,
    local_cores: int,
    python: str = sys.executable,
    base_env: Mapping[str, str] | None = None,
) -> PreparedStep:
    """Turn a step's HadoopJarStep into the local command (see the module docstring)."""
    jar = str(hadoop_jar_step.get("Jar", ""))
    args = [str(a) for a in hadoop_jar_step.get("Args", [])]
    if jar != "command-runner.jar":
        raise StepRejected(f"the emulator runs command-runner.jar steps only, not {jar!r}")
    if not args or args[0] != "spark-submit":
        raise StepRejected(
            f"the emulator runs spark-submit steps only, got {args[:1] or 'no arguments'}"
        )
    return prepare_spark_submit(
        args[1:],
        spark_defaults=classification(configurations, "spark-defaults"),
        env_exports=spark_env_exports(configurations),
        mirror=mirror,
        conf_dir=conf_dir,
        local_cores=local_cores,
        python=python,
        base_env=base_env,
    )


def prepare_spark_submit(
    submit_args: Sequence[str],
    *,
    spark_defaults: Mapping[str, str],
    env_exports: Mapping[str, str],
    mirror: S3Mirror,
    conf_dir: Path,
    local_cores: int,
    python: str = sys.executable,
    base_env: Mapping[str, str] | None = None,
    rewrites: Sequence[str] = (),
) -> PreparedStep:
    """spark-submit's arguments (after ``spark-submit``) -> the local command: the rewrites
    of the module docstring, ``spark_defaults`` into the step's spark-defaults.conf,
    ``env_exports`` into its environment. ``rewrites`` are the caller's own, for the log."""
    done: list[str] = list(rewrites)
    locations: dict[str, S3Location] = {}

    def map_s3(text: str) -> str:
        def one(match: re.Match[str]) -> str:
            uri = match.group(0)
            location = parse_s3_uri(uri)
            assert location is not None
            locations[location.uri] = location
            return mirror.local_uri(uri)

        mapped = _S3_IN_TEXT.sub(one, text)
        if mapped != text:
            done.append(f"{text} -> {mapped}")
        return mapped

    argv = [find_spark_submit(python)]
    rest = [str(a) for a in submit_args]
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg == "--master" and i + 1 < len(rest):
            master = rest[i + 1]
            if master == "yarn":
                master = f"local[{local_cores}]"
                done.append(f"--master yarn -> --master {master}")
            argv += [arg, master]
            i += 2
            continue
        if arg == "--conf" and i + 1 < len(rest):
            key, sep, value = rest[i + 1].partition("=")
            if sep and key in _PYTHON_CONFS and value != python:
                done.append(f"--conf {key}={value} -> {key}={python} (node Python)")
                value = python
            argv += [arg, map_s3(f"{key}{sep}{value}")]
            i += 2
            continue
        argv.append(map_s3(arg))
        i += 1

    defaults = {**NODE_SPARK_DEFAULTS, **spark_defaults}
    for key in _PYTHON_CONFS:
        if key in defaults:
            defaults[key] = python
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "spark-defaults.conf").write_text(
        "".join(f"{key} {map_s3(value)}\n" for key, value in sorted(defaults.items()))
    )
    env = dict(os.environ if base_env is None else base_env)
    env.update(env_exports)
    for key in _PYTHON_ENV:
        env[key] = python
    env["SPARK_CONF_DIR"] = str(conf_dir)
    env.pop("SPARK_HOME", None)  # pyspark's own, found next to its spark-submit
    return PreparedStep(argv=argv, env=env, locations=list(locations.values()), rewrites=done)


def run_process(
    prepared: PreparedStep,
    *,
    workdir: Path,
    should_stop: Callable[[], str | None],
    kill_grace_s: float = 5.0,
    poll_s: float = 0.2,
) -> tuple[int, str | None]:
    """Run the command in its own process group; returns (exit code, stop reason or None).

    ``should_stop`` is polled: when it returns a reason (cancel, cluster terminating), the
    whole process group gets SIGTERM, then SIGKILL after ``kill_grace_s``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    with (workdir / "stdout").open("wb") as out, (workdir / "stderr").open("wb") as err:
        err.write("".join(f"{line}\n" for line in prepared.stderr_head).encode())
        err.flush()
        proc = subprocess.Popen(
            prepared.argv,
            cwd=workdir,
            env=prepared.env,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: Spark's JVM and Python workers
        )
        stopped: str | None = None
        while proc.poll() is None:
            reason = should_stop()
            if reason and not stopped:
                stopped = reason
                _signal_group(proc.pid, signal.SIGTERM)
                deadline = time.monotonic() + kill_grace_s
                while proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(poll_s)
                if proc.poll() is None:
                    _signal_group(proc.pid, signal.SIGKILL)
            time.sleep(poll_s)
        # Children outliving the driver (py4j, Python workers) go with it.
        _signal_group(proc.pid, signal.SIGKILL)
        return proc.returncode, stopped


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def failure_message(output: str, exit_code: int) -> str:
    """The job's own reason for FailureDetails.Message: its last ``error:`` line, else the
    last line of a Python traceback, else the exit code."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.lower().startswith("error:"):
            return line[:1000]
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].startswith("Traceback (most recent call last)"):
            tail = [line for line in lines[index + 1 :] if not line.startswith("File ")]
            if tail:
                return tail[-1][:1000]
    return f"the step's command exited with code {exit_code}"


def gzip_file(path: Path) -> bytes:
    return gzip.compress(path.read_bytes() if path.is_file() else b"")


@dataclass
class JobResult:
    """How a job's command ended: exit code, stop reason (None: it ran to its end), and
    its stderr + stdout text (for :func:`failure_message`)."""

    exit_code: int
    stopped: str | None
    output: str


def run_job(
    prepare: Callable[[S3Mirror], PreparedStep],
    *,
    mirror: S3Mirror,
    workdir: Path,
    controller: list[str],
    should_stop: Callable[[], str | None],
) -> JobResult:
    """Prepare the command (``prepare`` may raise :class:`StepRejected`), sync the mirror
    down, run it, upload what it wrote. Never raises: a rejection or an emulator error is
    the job's failure, written to its ``stderr``. ``controller`` (the log of what the
    emulator did) is completed and written to ``workdir/controller``."""
    exit_code, stopped = 1, None
    try:
        prepared = prepare(mirror)
        controller += [f"rewrite: {r}" for r in prepared.rewrites]
        synced = mirror.download(prepared.locations)
        controller.append(
            f"mirror: {synced.downloaded} object(s) downloaded, {synced.deleted} removed"
        )
        before = mirror.snapshot(prepared.buckets)
        controller.append("command: " + json.dumps(prepared.argv))
        exit_code, stopped = run_process(prepared, workdir=workdir, should_stop=should_stop)
        written = mirror.upload_changes(before, prepared.buckets)
        controller.append(
            f"exit code {exit_code}; mirror: {written.uploaded} object(s) uploaded, "
            f"{written.deleted} deleted"
        )
    except StepRejected as exc:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "stderr").write_text(f"error: {exc}\n")
        controller.append(f"rejected: {exc}")
    except (ClientError, S3UploadFailedError) as exc:  # S3 refused the job's own access
        workdir.mkdir(parents=True, exist_ok=True)
        with (workdir / "stderr").open("a") as err:
            err.write(f"error: S3 refused the job's request: {exc}\n")
        controller.append(f"s3 refused: {exc}")
    except Exception as exc:  # the job fails; the emulator keeps running
        log.exception("the emulator could not run the job in %s", workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        with (workdir / "stderr").open("a") as err:
            err.write(f"error: the emulator could not run the job: {type(exc).__name__}: {exc}\n")
        controller.append(f"emulator error: {type(exc).__name__}: {exc}")
    (workdir / "controller").write_text("\n".join(controller) + "\n")
    # spark-submit's PythonRunner merges the Python driver's stderr into its stdout, so
    # the job's own "error: ..." line is in stdout (as on EMR); the JVM's log in stderr.
    output = "\n".join(
        (workdir / name).read_text(errors="replace")
        for name in ("stderr", "stdout")
        if (workdir / name).is_file()
    )
    return JobResult(exit_code, stopped, output)


def push_logs(s3: Any, uploads: Sequence[tuple[str, Path]]) -> None:
    """Upload each local log file, gzipped, to its ``s3://`` URI (a missing file: empty)."""
    for uri, path in uploads:
        location = parse_s3_uri(uri)
        if location is None:
            continue
        s3.put_object(Bucket=location.bucket, Key=location.key, Body=gzip_file(path))
