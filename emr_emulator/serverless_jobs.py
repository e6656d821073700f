"""One EMR Serverless job run as a local command, and what AWS would bill for it.

:func:`prepare_job_run` turns ``jobDriver.sparkSubmit`` (``entryPoint``,
``entryPointArguments``, ``sparkSubmitParameters``) and the ``spark-defaults`` of
``configurationOverrides.applicationConfiguration`` into the local ``spark-submit`` of
:func:`emr_emulator.steps.prepare_spark_submit` (the same S3 mirror rewrites and node Python as
a cluster step), after these serverless-only changes, each written to the job's log:

* there is no master on EMR Serverless: ``--master local[N] --deploy-mode client`` is added;
* ``spark.archives`` / ``--archives``: every archive must exist in S3, or the run FAILS as on
  AWS; an archive whose alias a ``PYSPARK_PYTHON`` names (``./environment/bin/python``) must
  be a tar.gz holding that path, and is then left out of the local command. The job runs
  with the emulator's own interpreter (as cluster steps do), except when the archive's
  ``BUILD-INFO.json`` (written by ``include/staging/serverless_env``'s build) says it was built for
  this machine's platform and its interpreter runs here: then it is unpacked once (per
  ETag, under ``<data-dir>/envs/``) and the job really runs with it;
* ``spark.emr-serverless.driverEnv.<VAR>``: the driver's environment (the Python ones are the
  node Python); other ``spark.emr-serverless.*`` keys (disks, ...) are read for billing and
  dropped, as are the driver/executor sizes (``spark.driver.cores``/``memory``,
  ``spark.executor.*``, ``spark.dynamicAllocation.*``): local Spark is sized by the emulator.

:func:`resource_utilization` is the arithmetic of ``totalResourceUtilization`` and
``billedResourceUtilization`` (AWS: "a 1-minute minimum usage for workers, plus additional
storage over 20 GB per worker") for the requested workers of :func:`requested_workers`.
:func:`check_worker_sizes` refuses, at ``StartJobRun``, a driver or executor that no
EMR Serverless worker can hold (the emulator's own table of AWS's worker sizes).
"""

from __future__ import annotations

import json
import math
import platform
import re
import shlex
import shutil
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emr_emulator.mirror import S3Mirror, parse_s3_uri
from emr_emulator.steps import PreparedStep, StepRejected, classification, prepare_spark_submit
from include.staging.serverless_env import BUILD_INFO  # where its build records the platform

FREE_STORAGE_GB = 20.0
"""Ephemeral storage per worker that AWS does not bill (and the default disk size)."""
MINIMUM_BILLED_S = 60
"""AWS bills every worker for at least one minute."""

# EMR Serverless's Spark defaults (its worker is 4 vCPU / 16 GB with 14 GB of Spark memory).
DEFAULT_SIZES = {
    "spark.driver.cores": "4",
    "spark.driver.memory": "14g",
    "spark.executor.cores": "4",
    "spark.executor.memory": "14g",
    "spark.dynamicAllocation.initialExecutors": "3",
    "spark.emr-serverless.driver.disk": "20g",
    "spark.emr-serverless.executor.disk": "20g",
}
# EMR Serverless User Guide, "Understanding application behavior", "Supported worker
# configurations": 1, 2, 4, 8 or 16 vCPU per worker; memory from a minimum to a maximum per
# vCPU count (1 GB increments up to 4 vCPU, 4 GB at 8, 8 GB at 16); 20-200 GB of ephemeral
# storage. Spark's memory overhead counts inside the worker ("Spark jobs have a memory
# overhead ... spark.driver.memoryOverhead / spark.executor.memoryOverhead ... 10% of container
# memory, with a minimum of 384 MB"): heap + overhead must fit the maximum, or StartJobRun
# fails with a ValidationException (aws-samples/aws-emr-utilities#113: 60g of executor memory
# on 8 vCPU). AWS's exact message is not published; the emulator's says what is wrong.
WORKER_MEMORY_GB: dict[int, tuple[int, int, int]] = {
    1: (2, 8, 1),
    2: (4, 16, 1),
    4: (8, 30, 1),
    8: (16, 60, 4),
    16: (32, 120, 8),
}
"""vCPU per worker -> (min GB, max GB, increment GB) of its memory."""
WORKER_DISK_GB = (20.0, 200.0)
"""Ephemeral storage per worker (``spark.emr-serverless.{driver,executor}.disk``), GB."""
_SIZE_KEYS = re.compile(
    r"^spark\.(driver\.(cores|memory|memoryOverhead)|executor\.(cores|memory|memoryOverhead"
    r"|instances)|dynamicAllocation\..*)$"
)
_DRIVER_ENV = "spark.emr-serverless.driverEnv."
_PYTHON_VARS = ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON")
_MACHINE = {"arm64": "aarch64"}.get(platform.machine(), platform.machine())
_UNITS = {"k": 1 / 2**20, "m": 1 / 1024, "g": 1.0, "t": 1024.0}


@dataclass(frozen=True)
class Worker:
    """One driver or executor as EMR Serverless sizes it."""

    vcpu: float
    memory_gb: float
    disk_gb: float


def size_gb(text: str, *, default_unit: str = "m") -> float:
    """Spark's size strings (``14g``, ``2048m``, ``20G``; no unit = ``default_unit``) -> GB."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtKMGT]?)[bB]?\s*", text)
    if not match:
        raise ValueError(f"not a size: {text!r}")
    return float(match.group(1)) * _UNITS[(match.group(2) or default_unit).lower()]


def _worker_memory_gb(spark_memory: str, overhead: str | None) -> float:
    """Container memory: Spark's memory + its overhead (10 %, at least 384 MB), whole GB."""
    memory = size_gb(spark_memory)
    extra = size_gb(overhead) if overhead else max(memory * 0.10, 384 / 1024)
    return float(math.ceil(memory + extra - 1e-9))


def check_worker_sizes(conf: Mapping[str, str]) -> None:
    """Raise ValueError (the API answers ValidationException) when the driver or an executor
    of ``conf`` (a job run's Spark properties, EMR Serverless's defaults filled in) is not a
    worker EMR Serverless has: its cores, its memory + overhead, or its disk."""
    c = {**DEFAULT_SIZES, **conf}
    for role in ("driver", "executor"):
        cores_key, memory_key = f"spark.{role}.cores", f"spark.{role}.memory"
        try:
            cores = float(c[cores_key])
        except ValueError:
            raise ValueError(f"{cores_key}={c[cores_key]!r} is not a number of vCPUs") from None
        vcpus = ", ".join(map(str, WORKER_MEMORY_GB))
        if cores not in WORKER_MEMORY_GB:
            raise ValueError(
                f"Unsupported worker configuration: {cores_key}={c[cores_key]}; EMR Serverless "
                f"workers have {vcpus} vCPUs"
            )
        overhead = c.get(f"spark.{role}.memoryOverhead")
        memory = _worker_memory_gb(c[memory_key], overhead)
        low, high, step = WORKER_MEMORY_GB[int(cores)]
        if memory > high:
            raise ValueError(
                f"Unsupported worker configuration: {role} memory {memory:g} GB "
                f"({memory_key}={c[memory_key]} + "
                + (f"spark.{role}.memoryOverhead={overhead}" if overhead else "10% overhead")
                + f") is more than the {high} GB a {int(cores)} vCPU worker can have (EMR "
                f"Serverless: {low}-{high} GB in {step} GB increments)"
            )
        disk_key = f"spark.emr-serverless.{role}.disk"
        disk = size_gb(c[disk_key], default_unit="g")
        if not WORKER_DISK_GB[0] <= disk <= WORKER_DISK_GB[1]:
            raise ValueError(
                f"Unsupported worker configuration: {disk_key}={c[disk_key]}; EMR Serverless "
                f"workers have {WORKER_DISK_GB[0]:g}-{WORKER_DISK_GB[1]:g} GB of disk"
            )


def requested_workers(conf: Mapping[str, str]) -> list[Worker]:
    """The driver and the executors the job asks for (EMR Serverless's defaults filled in).

    The executors are ``spark.executor.instances``, else dynamic allocation's initial
    executors, capped by ``maxExecutors``: the emulator does not scale, it bills that many for
    the whole run.
    """
    c = {**DEFAULT_SIZES, **conf}
    driver = Worker(
        float(c["spark.driver.cores"]),
        _worker_memory_gb(c["spark.driver.memory"], c.get("spark.driver.memoryOverhead")),
        size_gb(c["spark.emr-serverless.driver.disk"], default_unit="g"),
    )
    executor = Worker(
        float(c["spark.executor.cores"]),
        _worker_memory_gb(c["spark.executor.memory"], c.get("spark.executor.memoryOverhead")),
        size_gb(c["spark.emr-serverless.executor.disk"], default_unit="g"),
    )
    count = int(c.get("spark.executor.instances") or c["spark.dynamicAllocation.initialExecutors"])
    if c.get("spark.dynamicAllocation.maxExecutors"):
        count = min(count, int(c["spark.dynamicAllocation.maxExecutors"]))
    return [driver] + [executor] * max(count, 0)


def resource_utilization(
    workers: Sequence[Worker], duration_s: float, *, billed: bool
) -> dict[str, float]:
    """vCPU-, memory- and storage-hours of ``workers`` running ``duration_s`` seconds.

    ``billed``: AWS's rules (each worker at least :data:`MINIMUM_BILLED_S`, storage only above
    :data:`FREE_STORAGE_GB` per worker); otherwise what was used, rounded up to the second.
    """
    if not workers:
        return {"vCPUHour": 0.0, "memoryGBHour": 0.0, "storageGBHour": 0.0}
    seconds = math.ceil(max(duration_s, 0.0))
    if billed:
        seconds = max(seconds, MINIMUM_BILLED_S)
    hours = seconds / 3600
    storage = sum(max(w.disk_gb - FREE_STORAGE_GB, 0.0) if billed else w.disk_gb for w in workers)
    return {
        "vCPUHour": round(sum(w.vcpu for w in workers) * hours, 6),
        "memoryGBHour": round(sum(w.memory_gb for w in workers) * hours, 6),
        "storageGBHour": round(storage * hours, 6),
    }


# ---------------------------------------------------------------------------- the command


def _lower_classification(items: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """EMR Serverless's ``classification``/``properties`` -> RunJobFlow's capitalised keys."""
    return [
        {"Classification": i.get("classification"), "Properties": i.get("properties") or {}}
        for i in items or []
    ]


def _split_parameters(text: str) -> tuple[list[str], dict[str, str]]:
    """``sparkSubmitParameters`` -> (other arguments, ``--conf`` pairs); ``--archives`` is
    read as ``spark.archives``."""
    words = shlex.split(text or "")
    others: list[str] = []
    conf: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if word in ("--conf", "-c") and i + 1 < len(words):
            key, _, value = words[i + 1].partition("=")
            conf[key] = value
            i += 2
        elif word == "--archives" and i + 1 < len(words):
            conf["spark.archives"] = words[i + 1]
            i += 2
        elif word.startswith("--conf="):
            key, _, value = word[len("--conf=") :].partition("=")
            conf[key] = value
            i += 1
        else:
            others.append(word)
            i += 1
    return others, conf


def _check_archives(
    archives: str,
    python_paths: Sequence[str],
    mirror: S3Mirror,
    notes: list[str],
    envs_dir: Path | None = None,
) -> str | None:
    """Raise StepRejected (the run FAILS) unless every archive exists and an environment
    archive holds the interpreter its ``PYSPARK_PYTHON`` names. Returns that interpreter,
    unpacked, when the archive was built for this very machine (:func:`_local_env`)."""
    use: str | None = None
    for item in [a.strip() for a in archives.split(",") if a.strip()]:
        uri, _, alias = item.partition("#")
        location = parse_s3_uri(uri)
        if location is None:
            raise StepRejected(f"spark.archives {uri!r}: the emulator reads archives from s3://")
        try:
            head = mirror.s3.head_object(Bucket=location.bucket, Key=location.key)
        except Exception:
            raise StepRejected(
                f"spark.archives {uri} does not exist: the job's environment cannot be "
                f"downloaded (java.io.FileNotFoundException: No such file or directory '{uri}')"
            ) from None
        alias = alias or Path(location.key).name
        wanted = [p[len(f"./{alias}/") :] for p in python_paths if p.startswith(f"./{alias}/")]
        if not wanted:
            notes.append(f"archive {uri}#{alias}: exists (not used by the emulator)")
            continue
        mirror.download([location])
        local = mirror.local_path(location)
        try:
            with tarfile.open(local, "r:gz") as tar:
                names = {n.lstrip("./") for n in tar.getnames()}
                info = tar.extractfile(BUILD_INFO) if BUILD_INFO in names else None
                built = json.loads(info.read()) if info else {}
        except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
            raise StepRejected(f"spark.archives {uri} is not a readable tar.gz ({exc})") from None
        for path in wanted:
            if path not in names:
                raise StepRejected(
                    f"spark.archives {uri} has no {path} at its root: ./{alias}/{path} "
                    "(PYSPARK_PYTHON) would not exist on the workers"
                )
        etag = str(head.get("ETag", "")).strip('"')
        env = _local_env(local, built, envs_dir / etag, wanted[0]) if envs_dir and etag else None
        if env:
            use = env
            notes.append(
                f"archive {uri}#{alias}: built for this machine ({built.get('platform')}); "
                f"the job runs with its interpreter, unpacked: {env}"
            )
        else:
            notes.append(
                f"archive {uri}#{alias}: a tar.gz holding {', '.join(wanted)}; not unpacked, "
                "the job runs with the emulator's own interpreter (as cluster steps do)"
            )
    return use


def _local_env(archive: Path, built: Mapping[str, Any], target: Path, python: str) -> str | None:
    """The archive's interpreter, unpacked once under ``target``, when the archive says it
    was built for this machine's platform and that interpreter runs here; else None."""
    if built.get("platform") != _MACHINE:
        return None
    interpreter = target / python
    if not interpreter.is_file():
        partial = target.with_name(target.name + ".part")
        shutil.rmtree(partial, ignore_errors=True)
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(partial, filter="tar")
        shutil.rmtree(target, ignore_errors=True)
        partial.replace(target)
    check = subprocess.run(
        [str(interpreter), "-c", "import sys"], capture_output=True, check=False, timeout=60
    )
    return str(interpreter) if check.returncode == 0 else None


def job_run_conf(
    job_driver: Mapping[str, Any],
    overrides: Mapping[str, Any] | None,
    app_runtime: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, str]:
    """Every Spark property of the run: the application's and the job's ``spark-defaults``,
    then ``sparkSubmitParameters``'s ``--conf`` (as spark-submit ranks them)."""
    submit = job_driver.get("sparkSubmit") or {}
    _, params = _split_parameters(str(submit.get("sparkSubmitParameters") or ""))
    defaults = classification(_lower_classification(app_runtime), "spark-defaults")
    defaults.update(
        classification(
            _lower_classification((overrides or {}).get("applicationConfiguration")),
            "spark-defaults",
        )
    )
    return {**defaults, **params}


def prepare_job_run(
    job_driver: Mapping[str, Any],
    overrides: Mapping[str, Any] | None,
    *,
    app_runtime: Sequence[Mapping[str, Any]] | None = None,
    mirror: S3Mirror,
    conf_dir: Path,
    local_cores: int,
    python: str,
    base_env: Mapping[str, str] | None = None,
    envs_dir: Path | None = None,
) -> PreparedStep:
    """The local command of one job run (see the module docstring). With ``envs_dir``, an
    environment archive built for this machine is unpacked there and its Python is used."""
    submit = job_driver.get("sparkSubmit")
    if not submit:
        raise StepRejected(
            f"the emulator runs sparkSubmit job drivers only, got {sorted(job_driver) or 'none'}"
        )
    entry = str(submit.get("entryPoint") or "")
    if not entry:
        raise StepRejected("jobDriver.sparkSubmit.entryPoint is required")
    others, _ = _split_parameters(str(submit.get("sparkSubmitParameters") or ""))
    conf = job_run_conf(job_driver, overrides, app_runtime)
    notes = [f"no master on EMR Serverless -> --master local[{local_cores}] --deploy-mode client"]
    kept: dict[str, str] = {}
    env: dict[str, str] = {}
    for key, value in conf.items():
        if key.startswith(_DRIVER_ENV):
            var = key[len(_DRIVER_ENV) :]
            if var in _PYTHON_VARS:
                notes.append(f"{key}={value} -> the node Python {python}")
            else:
                env[var] = value
                notes.append(f"{key} -> the driver's environment {var}")
        elif key.startswith("spark.emr-serverless.") or _SIZE_KEYS.match(key):
            notes.append(f"--conf {key}={value} dropped (local[{local_cores}] is sized here)")
        elif key != "spark.archives":
            kept[key] = value
    pythons = [v for k, v in conf.items() if k.rsplit(".", 1)[-1] in _PYTHON_VARS]
    if conf.get("spark.archives"):
        python = _check_archives(conf["spark.archives"], pythons, mirror, notes, envs_dir) or python
    for i, word in enumerate(others):
        if word in ("--master", "--deploy-mode") and i + 1 < len(others):
            raise StepRejected(f"{word} is not a parameter of an EMR Serverless job run")
    args = ["--master", f"local[{local_cores}]", "--deploy-mode", "client"]
    for key, value in kept.items():
        args += ["--conf", f"{key}={value}"]
    args += [*others, entry, *[str(a) for a in submit.get("entryPointArguments") or []]]
    return prepare_spark_submit(
        args,
        spark_defaults={},
        env_exports=env,
        mirror=mirror,
        conf_dir=conf_dir,
        local_cores=local_cores,
        python=python,
        base_env=base_env,
        rewrites=notes,
    )
