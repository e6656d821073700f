"""``make run-emr``: the EMR DAG end to end, offline, against the emulator, in one command.

1. Starts the emulator on 127.0.0.1 (a free port) in this process and creates the bucket;
   the ``aws_default`` connection points at it (nothing leaves loopback). IAM is enforced
   (``FRUITS_EMU_ENFORCE_IAM=0`` turns it off): the connection holds the keys of an IAM user
   with only the policy ``create-roles`` gives Airflow, the cluster's job runs as its role.
2. The dataset and the weights as ``make run`` decides them (:mod:`include.local.run`):
   ``--data DIR`` or the generated sample; ImageNet if cached, else random (``none``).
3. One run of ``fruits_emr_pipeline`` with ``dag.test()``: upload, create cluster, the
   real Spark job as an EMR step on local Spark, download, report, terminate.
4. Prints the cluster's state timeline, the step's duration, where the results and the
   report are, and what the same cluster would have cost on AWS (include/costs/cluster.py).

    python -m emr_emulator.run_pipeline [--data DIR] [--weights imagenet|none|FILE]
                                        [--mode mini|full] [--max-images N]

Which images: as ``make run`` (every image unless ``--mode mini`` / ``--max-images``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from emr_emulator.server import Emulator, EmulatorSettings
from include.config import REPO_ROOT, load_config
from include.costs.cluster import cluster_cost_summary, estimate_cost
from include.local.console import spark_stage_progress
from include.local.run import (
    LocalRunError,
    add_selection_arguments,
    airflow_env,
    inputs_from_args,
    migrate_db,
    report_failure,
    run_console,
    run_dag,
    selection_conf,
    summarise,
)
from include.params.run_paths import run_results_dir

DAG_ID = "fruits_emr_pipeline"
AWS_START_AND_BOOTSTRAP_MIN = 10
"""A real EMR cluster takes ~10 minutes to start and bootstrap before the first step."""


def _parse(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00"))


def describe_timeline(cluster: dict[str, Any]) -> list[str]:
    """``state  +seconds`` lines from the emulator's record of one cluster."""
    timeline = cluster["timeline"]
    if not timeline:
        return []
    start = _parse(timeline[0]["at"])
    lines = []
    for entry in timeline:
        offset = f"+{(_parse(entry['at']) - start).total_seconds():.1f} s"
        lines.append(f"  {offset:>9}  {entry['state']}")
    if cluster.get("reason"):
        lines.append(f"  reason: {cluster['reason']['Code']}: {cluster['reason']['Message']}")
    return lines


def cost_lines(emr: Any, cluster_id: str) -> list[str]:
    """The estimate for the emulated run time, and with EMR's start-up added."""

    description = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
    groups = emr.list_instance_groups(ClusterId=cluster_id)["InstanceGroups"]
    summary = cluster_cost_summary(description, groups)
    if summary["estimated_usd"] is None:
        return [f"  cost: no price for {summary['unpriced_instance_types']}"]
    startup = {
        g["instance_type"]: g["instances"] * AWS_START_AND_BOOTSTRAP_MIN / 60
        for g in summary["instance_groups"]
    }
    hours = {t: h + startup.get(t, 0.0) for t, h in summary["instance_hours_by_type"].items()}
    kinds = ", ".join(
        f"{g['instances']} x {g['instance_type']} ({g['role'].lower()}, {g['market'].lower()})"
        for g in summary["instance_groups"]
    )
    return [
        f"  cluster      {kinds}",
        f"  cost         ~${summary['estimated_usd']:.3f} for the "
        f"{summary['runtime_hours'] * 60:.1f} min it ran here; "
        f"~${estimate_cost(hours):.3f} on AWS with ~{AWS_START_AND_BOOTSTRAP_MIN} min of "
        "start-up and bootstrap",
        f"               ({summary['price_basis']})",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="a Fruits-360 folder; default: the sample")
    parser.add_argument("--weights", help="imagenet | none | a weights file (default: as make run)")
    parser.add_argument(
        "--offline", action="store_true", default=bool(os.environ.get("FRUITS_OFFLINE"))
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=REPO_ROOT / "data" / "emr-emulator",
        help="the emulator's S3 mirror and step folders",
    )

    add_selection_arguments(parser)
    args = parser.parse_args(argv)

    env = airflow_env()
    os.environ.update(env)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per API call
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        os.environ[key] = value
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)

    from emr_emulator.account import AIRFLOW_USER, install_project_identity, prepare_account  # noqa: PLC0415 (lazy: loads botocore)

    config = load_config()
    inputs = inputs_from_args(args, config.data_dir)
    if inputs is None:
        return 2
    data_dir, decision = inputs.data_dir, inputs.decision
    print(f"weights: {decision.reason}")
    try:
        selection = selection_conf(args, inputs.images)
    except LocalRunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    # IAM enforced unless FRUITS_EMU_ENFORCE_IAM=0: the DAG runs as the Airflow policy allows.
    enforce = os.environ.get("FRUITS_EMU_ENFORCE_IAM", "1") != "0"
    settings = EmulatorSettings(data_dir=args.data_dir, enforce_iam=enforce)
    with Emulator(settings) as emulator:
        prepare_account(emulator.s3_client(), emulator.client("iam"), config.bucket, config.region)
        connection: dict[str, Any] = {
            "conn_type": "aws",
            "extra": {"region_name": config.region, "endpoint_url": emulator.endpoint_url},
        }
        if enforce:
            keys = install_project_identity(
                emulator.client("iam"),
                bucket=config.bucket,
                prefix=config.prefix,
                region=config.region,
                dataset_uri=config.dataset_uri or None,
            )
            connection.update(login=keys["access_key"], password=keys["secret_key"])
            print(f"IAM enforced: the DAG runs as {AIRFLOW_USER} (the Airflow policy only)")
        os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(connection)
        print(f"EMR emulator: {emulator.endpoint_url} (S3 mirror and step logs in {args.data_dir})")
        conf: dict[str, Any] = {
            "dataset_dir": str(data_dir),
            "weights": decision.value,
            **selection,
            "poke_interval_seconds": 2,
            # Nothing installs on an emulated node: no wheels to download from PyPI.
            "wheelhouse": False,
        }
        started = time.monotonic()
        try:
            migrate_db(env)
            print(f"running DAG {DAG_ID} with conf {json.dumps(conf)}")
            with run_console(
                config.results_dir, DAG_ID, progress=lambda task: _step_progress(emulator, task)
            ) as console:
                run_id, state, states = run_dag(conf, dag_id=DAG_ID)
                _wait_until_terminated(emulator)
                console.catch_up()
                console.say(f"\nrun {run_id}: {state} in {time.monotonic() - started:.0f} s")
                for line in cluster_lines(emulator, config.region):
                    console.say(line)
                if state == "success":
                    console.say(
                        summarise(run_results_dir(config.results_dir, DAG_ID, run_id), decision)
                    )
        except LocalRunError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    if state != "success":
        report_failure(run_id, state, states, console)
        return 1
    return 0


def _wait_until_terminated(emulator: Any, timeout: float = 30) -> None:
    """The terminate task returns at once; give the clusters time to reach TERMINATED."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(
        c["state"] not in ("TERMINATED", "TERMINATED_WITH_ERRORS")
        for c in emulator.engine.snapshot()
    ):
        time.sleep(0.5)


def cluster_lines(emulator: Any, region: str) -> list[str]:
    """Each cluster's state timeline, its steps' durations and the cost estimate."""
    emr = _emr_client(emulator, region)
    lines = []
    for cluster in emulator.engine.snapshot():
        lines.append(f"cluster {cluster['id']} state timeline:")
        lines += describe_timeline(cluster)
        for step in cluster["steps"]:
            if step["started"] and step["ended"]:
                took = (_parse(step["ended"]) - _parse(step["started"])).total_seconds()
                lines.append(f"  step {step['id']} {step['state']} in {took:.1f} s: {step['name']}")
        lines += cost_lines(emr, cluster["id"])
    return lines


def _emr_client(emulator: Any, region: str) -> Any:
    import boto3  # noqa: PLC0415 (lazy: loads boto3 and botocore)

    return boto3.client(
        "emr",
        endpoint_url=emulator.endpoint_url,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _step_progress(emulator: Any, task_id: str) -> str | None:
    """While the step sensor waits: the cluster/step state and Spark's stage progress."""

    clusters = emulator.engine.snapshot()
    if not clusters:
        return None
    cluster = clusters[-1]
    running = [s for s in cluster["steps"] if s["state"] == "RUNNING"]
    text = f"cluster {cluster['state']}"
    if running:
        step = running[-1]
        stderr = emulator.settings.data_dir / "steps" / cluster["id"] / step["id"] / "stderr"
        stage = None
        if stderr.is_file():
            with stderr.open("rb") as handle:
                handle.seek(max(0, stderr.stat().st_size - 65536))
                stage = spark_stage_progress(handle.read().decode("utf-8", errors="replace"))
        text += f", step {step['id']} RUNNING" + (f", {stage}" if stage else "")
    return text


if __name__ == "__main__":
    raise SystemExit(main())
