"""status and terminate: only clusters tagged Project=fruits-features, costs, TTL exit code."""

from __future__ import annotations

import json

import pytest

from tests.emr_fakes import age_cluster
from tests.include.infra.conftest import cluster_state, start_cluster

# 1 x m5.xlarge (0.214 + 0.048) + 2 x m5.2xlarge (0.428 + 0.096) per hour, config's table.
HOURLY_USD = 0.262 + 2 * 0.524


def test_status_with_no_clusters_says_so(aws, cli):
    result = cli("status")
    assert result.code == 0
    assert "no active clusters tagged Project=fruits-features" in result.out


def test_status_lists_only_project_clusters_with_cost(aws, cli, emr):
    ours = start_cluster(emr)
    theirs = start_cluster(emr, project=False, name="not-ours")
    age_cluster(ours, 2.0)
    result = cli("status", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert [c["cluster_id"] for c in report["clusters"]] == [ours]
    cluster = report["clusters"][0]
    assert cluster["age_hours"] == pytest.approx(2.0, abs=0.01)
    assert cluster["instance_hours"] == pytest.approx(6.0, abs=0.05)
    assert cluster["estimated_usd"] == pytest.approx(2.0 * HOURLY_USD, abs=0.02)
    table = cli("status")
    assert table.code == 0
    assert ours in table.out
    assert theirs not in table.out
    assert f"{2.0 * HOURLY_USD:.2f}" in table.out
    assert "estimate" in table.out


def test_status_exits_3_when_a_cluster_is_older_than_the_ttl(aws, cli, emr, monkeypatch):
    young = start_cluster(emr)
    old = start_cluster(emr, name="forgotten")
    age_cluster(young, 1.0)
    age_cluster(old, 9.0)
    result = cli("status")
    assert result.code == 3
    # Default TTL: create wait 45 min + full step timeout 6 h + 1 h margin, rounded up: 8 h.
    assert f"cluster {old} is 9.0 h old, past the TTL of 8 h" in result.err
    assert young not in result.err
    # The TTL comes from config (FRUITS_CLUSTER_TTL_HOURS) or --ttl-hours.
    monkeypatch.setenv("FRUITS_CLUSTER_TTL_HOURS", "10")
    assert cli("status").code == 0
    assert cli("status", "--ttl-hours", "0.5").code == 3


def test_status_ignores_terminated_clusters(aws, cli, emr):
    cluster_id = start_cluster(emr)
    age_cluster(cluster_id, 10.0)
    emr.terminate_job_flows(JobFlowIds=[cluster_id])
    result = cli("status")
    assert result.code == 0
    assert cluster_id not in result.out


def test_terminate_one_project_cluster(aws, cli, emr):
    first, second = start_cluster(emr), start_cluster(emr)
    result = cli("terminate", "--cluster-id", first)
    assert result.code == 0, result.err
    assert f"{first}: terminating" in result.out
    assert cluster_state(emr, first) == "TERMINATED"
    assert cluster_state(emr, second) == "WAITING"
    again = cli("terminate", "--cluster-id", first)
    assert again.code == 0
    assert f"{first}: already terminated" in again.out


def test_terminate_refuses_a_cluster_that_is_not_the_projects(aws, cli, emr):
    ours = start_cluster(emr)
    theirs = start_cluster(emr, project=False, name="payroll")
    result = cli("terminate", "--cluster-id", ours, "--cluster-id", theirs)
    assert result.code == 2
    assert f"cluster {theirs} ('payroll') is not tagged Project=fruits-features" in result.err
    # One foreign id stops the whole command: nothing was terminated.
    assert cluster_state(emr, theirs) == "WAITING"
    assert cluster_state(emr, ours) == "WAITING"


def test_terminate_all_leaves_other_clusters_alone(aws, cli, emr):
    ours = [start_cluster(emr), start_cluster(emr)]
    theirs = start_cluster(emr, project=False)
    result = cli("terminate", "--all")
    assert result.code == 0, result.err
    assert [cluster_state(emr, c) for c in ours] == ["TERMINATED", "TERMINATED"]
    assert cluster_state(emr, theirs) == "WAITING"
    assert cli("terminate", "--all").out.startswith("no active clusters")


def test_terminate_unknown_cluster_is_a_clear_error(aws, cli):
    result = cli("terminate", "--cluster-id", "j-DOESNOTEXIST")
    assert result.code == 2
    assert "no EMR cluster 'j-DOESNOTEXIST'" in result.err


def test_terminate_needs_an_id_or_all(aws, cli):
    with pytest.raises(SystemExit) as excinfo:
        cli("terminate")
    assert excinfo.value.code == 2


def test_status_through_an_airflow_connection(aws, cli, emr):
    """--aws-conn-id goes through the provider's AwsBaseHook (AIRFLOW_CONN_AWS_DEFAULT here)."""
    cluster_id = start_cluster(emr)
    result = cli("status", "--aws-conn-id", "aws_default")
    assert result.code == 0, result.err
    assert cluster_id in result.out
