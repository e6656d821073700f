"""The sweeper's cluster task bodies (include/emr/sweep.py) called directly, in moto; the
DAG end to end is in tests/dags/test_fruits_emr_sweeper.py."""

from __future__ import annotations

from include.emr import sweep
from tests.dags.test_fruits_emr_sweeper import clusters  # noqa: F401 (a fixture)


def _over(dag_id: str, run_id: str) -> str:
    return "success"


def _running(dag_id: str, run_id: str) -> str:
    return "running"


def test_find_stale_clusters_keeps_old_tagged_live_clusters_of_finished_runs(clusters):  # noqa: F811
    _emr, ids = clusters
    stale = sweep.find_stale_clusters({"ttl_hours": None}, _over)  # the configured 6 h
    assert [c["id"] for c in stale] == [ids["old_ours"]]
    assert stale[0]["state"] == "WAITING"
    shorter = sweep.find_stale_clusters({"ttl_hours": 0.5}, _over)
    assert {c["id"] for c in shorter} == {ids["old_ours"], ids["new_ours"]}
    assert sweep.find_stale_clusters({"ttl_hours": 0.5}, _running) == []


def test_terminate_stale_clusters_dry_run_terminates_nothing(clusters, capsys):  # noqa: F811
    emr, ids = clusters
    stale = [{"id": ids["old_ours"]}]
    assert sweep.terminate_stale_clusters(stale, {"dry_run": True}) == []
    assert "dry run: would terminate" in capsys.readouterr().out
    state = emr.describe_cluster(ClusterId=ids["old_ours"])["Cluster"]["Status"]["State"]
    assert state == "WAITING"
    assert sweep.terminate_stale_clusters([], {"dry_run": False}) == []
    assert sweep.terminate_stale_clusters(stale, {"dry_run": False}) == [ids["old_ours"]]
    state = emr.describe_cluster(ClusterId=ids["old_ours"])["Cluster"]["Status"]["State"]
    assert state in ("TERMINATING", "TERMINATED")
