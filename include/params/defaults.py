"""DAG defaults: owner, start date, retries, waits and timeouts, sensor sizing by mode.

Constants only (and ``dag_default_args``): the DAG files read them at parse time. The run
limits the sweeper's TTL derives from (``CREATE_WAIT_SECONDS``, ``FULL_STEP_TIMEOUT_SECONDS``)
live in :mod:`include.config`, below this package.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum

from include.config import FULL_STEP_TIMEOUT_SECONDS

EMR_RETRY_DELAY = timedelta(minutes=2)
"""``retry_delay`` of the EMR DAG's tasks: a failed add-step waits this long to try again."""

DAG_OWNER = "fruits-data-team"
"""Owner of every task of the project's DAGs (shown in the UI; the integrity tests check it)."""

DAG_START_DATE = pendulum.datetime(2025, 1, 1, tz="UTC")
"""A fixed start date in the past for every DAG (with catchup=False nothing is backfilled)."""


def dag_default_args(retry_delay: timedelta) -> dict[str, Any]:
    """``default_args`` of the project's DAGs: owner and one retry (a new dict each call)."""
    return {"owner": DAG_OWNER, "retries": 1, "retry_delay": retry_delay}


DEFAULT_MAX_COST_USD = 5.0
"""Budget guard default: ~20x the estimate of a full 90k-image Fruits-360 run on the default
cluster (1 + 2 m5.xlarge, Keras), so it refuses only runs sized far beyond the usual."""


# Sensor sizing by mode when the Params leave it open: a mini run is a few minutes of
# work, a full run (~90k images) can take hours on a small cluster.
POKE_INTERVAL_BY_MODE = {"mini": 30, "full": 60}

STEP_TIMEOUT_BY_MODE = {"mini": 60 * 60, "full": FULL_STEP_TIMEOUT_SECONDS}

DEFAULT_RELEASE_LABEL = "emr-7.12.0"
"""emr-7.12.0 ships Spark 3.5.6 and Python 3.11: requirements.txt pins pyspark to match."""
