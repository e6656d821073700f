"""Fakes shared by the EMR tests: moto never runs a step, so the tests play EMR's part.

``start_cluster`` starts a WAITING cluster through the EMR API and ``age_cluster`` back-dates
it in moto's backend; ``moto_clusters`` reaches that backend (in-process or a
ThreadedMotoServer in this process); ``write_job_outputs`` writes what the Spark job writes
under ``<output>/<run_id>/`` (pca/ parquet, metrics.json, then ``_SUCCESS``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any


def moto_clusters() -> list[Any]:
    """Every cluster in moto's EMR backend. A moto *server* may file requests signed for
    eu-west-1 under another region (it reads the region from the request), so all regions
    are searched."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.emr.models import emr_backends

    return [c for b in emr_backends[DEFAULT_ACCOUNT_ID].values() for c in list(b.clusters.values())]


def step_arg(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def write_job_outputs(s3: Any, output: str, run_id: str, *, success: bool = True) -> str:
    """Write what the Spark job writes under ``<output>/<run_id>/``; return that prefix."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    bucket, _, base = output.removeprefix("s3://").partition("/")
    prefix = f"{base.rstrip('/')}/{run_id}"
    metrics = {
        "run_id": run_id,
        "mode": "mini",
        "input": "s3://x/",
        "output": output,
        "weights": {"source": "none", "meaningful": False, "note": "random init"},
        "counts": {
            "total_files": 4,
            "valid_images": 4,
            "bad_files": 0,
            "by_label": {"Kiwi": 2, "Lemon": 2},
            "by_split": {"Training": 4},
            "by_split_label": {"Training": {"Kiwi": 2, "Lemon": 2}},
        },
        "bad_files": [],
        "pca": {
            "k": 2,
            "target_variance": 0.95,
            "fixed_k": None,
            "explained_variance": [0.7, 0.3],
            "cumulative_variance": [0.7, 1.0],
            "variance_at_k": 1.0,
        },
        "timings_s": {"read": 1.0, "featurize": 2.0, "pca": 0.5, "write": 0.2, "total": 3.7},
        "throughput": {"images_per_s_featurize": 2.0, "images_per_s_end_to_end": 1.1, "cores": 4},
    }
    table = pa.table(
        {
            "path": [f"Training/{lab}/{i}.jpg" for lab in ("Kiwi", "Lemon") for i in range(2)],
            "split": ["Training"] * 4,
            "label": ["Kiwi", "Kiwi", "Lemon", "Lemon"],
            "pca": [[1.0, 0.5], [1.1, 0.4], [-1.0, 0.2], [-0.9, 0.1]],
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    s3.put_object(Bucket=bucket, Key=f"{prefix}/pca/part-00000.parquet", Body=sink.getvalue())
    s3.put_object(Bucket=bucket, Key=f"{prefix}/features/part-00000.parquet", Body=b"PAR1")
    s3.put_object(Bucket=bucket, Key=f"{prefix}/metrics.json", Body=json.dumps(metrics))
    if success:
        s3.put_object(Bucket=bucket, Key=f"{prefix}/_SUCCESS", Body=b"")
    return prefix


def start_cluster(
    emr: Any,
    *,
    tags: Mapping[str, str] | None = None,
    name: str = "fruits-run",
    core: tuple[str, int] | None = None,
) -> str:
    """A WAITING cluster: 1 m5.xlarge master (+ ``core`` = (instance type, count) nodes)."""
    groups = [{"InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1}]
    if core:
        groups.append({"InstanceRole": "CORE", "InstanceType": core[0], "InstanceCount": core[1]})
    return emr.run_job_flow(
        Name=name,
        ReleaseLabel="emr-7.12.0",
        Instances={"InstanceGroups": groups, "KeepJobFlowAliveWhenNoSteps": True},
        JobFlowRole="EMR_EC2_DefaultRole",
        ServiceRole="EMR_DefaultRole",
        Tags=[{"Key": key, "Value": value} for key, value in (tags or {}).items()],
    )["JobFlowId"]


def age_cluster(cluster_id: str, hours: float) -> None:
    """Pretend the cluster (and its instance groups) started ``hours`` ago (moto's backend)."""
    (cluster,) = [c for c in moto_clusters() if c.id == cluster_id]
    # moto keeps naive UTC datetimes (and compares them with naive ones in list_clusters).
    started = (datetime.now(UTC) - timedelta(hours=hours)).replace(tzinfo=None)
    cluster.creation_datetime = started
    for group in cluster.instance_groups:
        group.creation_date_time = started


def prepare_account(bucket: str, region: str, *, endpoint_url: str | None = None) -> None:
    """What the pipeline's preflight expects of an account (an encrypted bucket, the default
    service role + instance profile), made as the EMR emulator makes it."""
    import boto3

    from emr_emulator.account import prepare_account as prepare

    def client(service: str):
        return boto3.client(service, region_name=region, endpoint_url=endpoint_url)

    prepare(client("s3"), client("iam"), bucket, region)


def airflow_identity(
    emulator: Any, region: str, *, bucket: str, prefix: str, dataset_uri: str | None = None
) -> str:
    """``AIRFLOW_CONN_AWS_DEFAULT`` for the emulator as the Airflow IAM user: the account
    prepared, the roles and the user given the project's own policies
    (:func:`emr_emulator.account.install_project_identity`)."""
    from emr_emulator.account import install_project_identity

    prepare_account(bucket, region, endpoint_url=emulator.endpoint_url)
    keys = install_project_identity(
        emulator.client("iam"), bucket=bucket, prefix=prefix, region=region, dataset_uri=dataset_uri
    )
    return json.dumps(
        {
            "conn_type": "aws",
            "login": keys["access_key"],
            "password": keys["secret_key"],
            "extra": {"region_name": region, "endpoint_url": emulator.endpoint_url},
        }
    )
