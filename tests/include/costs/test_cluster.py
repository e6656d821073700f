"""Cost estimates: the price table lookup and the per-cluster summary from boto3 shapes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from include.capacity.prices import PRICE_TABLE_USD_PER_HOUR
from include.costs import cluster as costs
from tests.emr_fakes import start_cluster

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


def _cluster(created: datetime, ended: datetime | None = None, state: str = "WAITING") -> dict:
    timeline = {"CreationDateTime": created}
    if ended is not None:
        timeline["EndDateTime"] = ended
    return {"Id": "j-TEST", "Name": "fruits", "Status": {"State": state, "Timeline": timeline}}


def _group(instance_type: str, requested: int, running: int, role: str = "CORE") -> dict:
    return {
        "Id": f"ig-{role}",
        "InstanceGroupType": role,
        "Market": "ON_DEMAND",
        "InstanceType": instance_type,
        "RequestedInstanceCount": requested,
        "RunningInstanceCount": running,
    }


def test_hourly_price_is_ec2_plus_emr_uplift():
    ec2, emr = PRICE_TABLE_USD_PER_HOUR["m5.xlarge"]
    assert costs.hourly_price("m5.xlarge") == pytest.approx(ec2 + emr)
    assert costs.hourly_price("m5.xlarge") == pytest.approx(0.262)


def test_hourly_price_unknown_type_is_a_value_error_naming_the_table():
    with pytest.raises(ValueError, match=r"no price for instance type 'p9\.mega'.*m5\.xlarge"):
        costs.hourly_price("p9.mega")


def test_estimate_cost_sums_types():
    cost = costs.estimate_cost({"m5.xlarge": 2.0, "m5.2xlarge": 1.5})
    assert cost == pytest.approx(2.0 * 0.262 + 1.5 * 0.524)
    assert costs.estimate_cost({}) == 0.0


@pytest.mark.parametrize(
    ("hours", "message"),
    [({"nope.large": 1.0}, "no price"), ({"m5.xlarge": -1.0}, "must be >= 0")],
)
def test_estimate_cost_rejects_bad_input(hours, message):
    with pytest.raises(ValueError, match=message):
        costs.estimate_cost(hours)


def test_summary_of_a_running_cluster_counts_until_now():
    created = NOW - timedelta(hours=2)
    groups = [_group("m5.xlarge", 1, 1, "MASTER"), _group("m5.2xlarge", 2, 2)]
    summary = costs.cluster_cost_summary(_cluster(created), groups, now=NOW)
    assert summary["age_hours"] == pytest.approx(2.0)
    assert summary["runtime_hours"] == pytest.approx(2.0)
    assert summary["ended_at"] is None
    assert summary["instance_hours_by_type"] == pytest.approx({"m5.xlarge": 2.0, "m5.2xlarge": 4.0})
    assert summary["instance_hours"] == pytest.approx(6.0)
    assert summary["estimated_usd"] == pytest.approx(2.0 * 0.262 + 4.0 * 0.524)
    assert summary["unpriced_instance_types"] == []
    assert "estimate" in summary["price_basis"]


def test_summary_of_a_terminated_cluster_stops_at_its_end_and_counts_requested():
    created = NOW - timedelta(hours=5)
    ended = created + timedelta(minutes=30)
    # A terminated cluster reports 0 running instances: the requested count is what ran.
    summary = costs.cluster_cost_summary(
        _cluster(created, ended, "TERMINATED"), [_group("m5.xlarge", 3, 0)], now=NOW
    )
    assert summary["age_hours"] == pytest.approx(5.0)
    assert summary["runtime_hours"] == pytest.approx(0.5)
    assert summary["instance_hours"] == pytest.approx(1.5)
    assert summary["estimated_usd"] == pytest.approx(1.5 * 0.262)
    assert summary["state"] == "TERMINATED"


def test_summary_uses_group_timeline_when_present():
    created = NOW - timedelta(hours=4)
    group = _group("m5.xlarge", 2, 2)
    group["Status"] = {"Timeline": {"CreationDateTime": NOW - timedelta(hours=1)}}
    summary = costs.cluster_cost_summary(_cluster(created), [group], now=NOW)
    assert summary["instance_hours"] == pytest.approx(2.0)


def test_summary_with_unknown_type_has_no_total_but_names_it():
    groups = [_group("m5.xlarge", 1, 1), _group("x9.huge", 1, 1)]
    summary = costs.cluster_cost_summary(_cluster(NOW - timedelta(hours=1)), groups, now=NOW)
    assert summary["estimated_usd"] is None
    assert summary["unpriced_instance_types"] == ["x9.huge"]
    assert summary["instance_hours_by_type"]["x9.huge"] == pytest.approx(1.0)


def test_summary_reads_json_round_tripped_strings_and_naive_times():
    created = NOW - timedelta(hours=3)
    described = json.loads(json.dumps(_cluster(created), default=str))
    assert isinstance(described["Status"]["Timeline"]["CreationDateTime"], str)
    summary = costs.cluster_cost_summary(described, [_group("m5.xlarge", 1, 1)], now=NOW)
    assert summary["instance_hours"] == pytest.approx(3.0)
    naive = _cluster(created.replace(tzinfo=None))
    summary = costs.cluster_cost_summary(naive, [], now=NOW)
    assert summary["age_hours"] == pytest.approx(3.0)


def test_summary_without_creation_time_is_a_clear_error():
    with pytest.raises(ValueError, match="CreationDateTime"):
        costs.cluster_cost_summary({"Id": "j-1", "Status": {}}, [])


def test_parse_timestamp_rejects_garbage():
    with pytest.raises(ValueError, match="not an ISO-8601"):
        costs.parse_timestamp("yesterday")
    assert costs.parse_timestamp("") is None


def test_summary_from_moto_describe_cluster_shapes():
    """The same summary from the real boto3 shapes, live and after the cluster.json round trip."""
    with mock_aws():
        emr = boto3.client("emr", region_name="eu-west-1")
        cluster_id = start_cluster(emr, name="fruits", core=("m5.2xlarge", 2))
        described = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
        groups = emr.list_instance_groups(ClusterId=cluster_id)["InstanceGroups"]
    created = described["Status"]["Timeline"]["CreationDateTime"]
    later = created + timedelta(hours=1)
    live = costs.cluster_cost_summary(described, groups, now=later)
    saved = json.loads(json.dumps({"Cluster": described, "InstanceGroups": groups}, default=str))
    replayed = costs.cluster_cost_summary(saved["Cluster"], saved["InstanceGroups"], now=later)
    assert live["cluster_id"] == cluster_id
    assert live["instance_hours_by_type"] == pytest.approx({"m5.xlarge": 1.0, "m5.2xlarge": 2.0})
    assert live["estimated_usd"] == pytest.approx(0.262 + 2 * 0.524)
    assert replayed["estimated_usd"] == pytest.approx(live["estimated_usd"])


# ---------------------------------------------------------------------------- regions


def test_every_allowed_region_has_its_own_figures_with_their_source():
    from include.capacity.prices import REGION_PRICES
    from include.config import ALLOWED_REGIONS

    for region in ALLOWED_REGIONS:
        priced = costs.priced_region(region)
        assert (priced.priced_as, priced.warning) == (region, None)
        assert REGION_PRICES[region].source.startswith(("checked:", "ASSUMED:"))
        assert costs.hourly_price("m5.xlarge", region) > 0
    # The table's own region is the table; another region is scaled from it.
    assert costs.hourly_price("m5.xlarge", "eu-west-1") == pytest.approx(0.262)
    frankfurt = costs.hourly_price("m5.xlarge", "eu-central-1")
    assert frankfurt == pytest.approx(0.262 * 0.230 / 0.214)


def test_a_region_without_figures_warns_and_is_priced_as_the_named_fallback(caplog):
    from include.capacity.prices import PRICE_FALLBACK_REGION

    priced = costs.priced_region("ap-nowhere-1")
    assert priced.priced_as == PRICE_FALLBACK_REGION
    assert "ap-nowhere-1" in priced.warning
    assert PRICE_FALLBACK_REGION in priced.warning
    assert "no price figures for region 'ap-nowhere-1'" in caplog.text
    fallback = costs.hourly_price("m5.xlarge", PRICE_FALLBACK_REGION)
    assert costs.hourly_price("m5.xlarge", "ap-nowhere-1") == pytest.approx(fallback)


def test_cluster_summary_is_priced_in_the_clusters_region_and_says_whose_figures():
    cluster = {
        **_cluster(NOW - timedelta(hours=2), NOW - timedelta(hours=1), "TERMINATED"),
        "ClusterArn": "arn:aws:elasticmapreduce:eu-north-1:123456789012:cluster/j-TEST",
    }
    summary = costs.cluster_cost_summary(cluster, [_group("m5.xlarge", 2, 0)], now=NOW)
    assert summary["price_region"]["priced_as"] == "eu-north-1"
    assert summary["estimated_usd"] == pytest.approx(2 * 0.262 * 0.204 / 0.214)
    assert "eu-north-1 figures: ASSUMED" in summary["price_basis"]
    no_arn = costs.cluster_cost_summary(_cluster(NOW - timedelta(hours=1)), [], now=NOW)
    assert no_arn["price_region"]["warning"]  # unknown region: the fallback, said plainly
