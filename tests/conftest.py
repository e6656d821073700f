"""Shared test set-up: an isolated Airflow home, fake AWS credentials, one DagBag per session.

The environment is set at import time, before anything imports airflow, because Airflow
reads its configuration when it is first imported.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DAGS_FOLDER = REPO_ROOT / "dags"

_AIRFLOW_HOME = tempfile.mkdtemp(prefix="fruits-airflow-home-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO_ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"
os.environ["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] = f"{_AIRFLOW_HOME}/logs"
# Converted models of the local DAG / staging task: never the user's own cache. The
# pytest-xdist workers of one run share it (a conversion takes 20-50 s; local_model locks).
_RUN_ID = os.environ.get("PYTEST_XDIST_TESTRUNUID")
os.environ["FRUITS_MODEL_CACHE"] = (
    f"{tempfile.gettempdir()}/fruits-model-cache-{_RUN_ID}"
    if _RUN_ID
    else f"{_AIRFLOW_HOME}/model-cache"
)
# No ImageNet download from any test (validate_params resolves weights=imagenet): tests that
# download serve the file on 127.0.0.1 or inject the download; the Keras cache is empty.
os.environ["FRUITS_OFFLINE"] = "1"
os.environ["KERAS_HOME"] = f"{_AIRFLOW_HOME}/keras"
# Never reach real AWS: fake credentials, EU default region, no instance metadata lookups.
for _key, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}.items():
    os.environ[_key] = _value
os.environ.pop("AWS_PROFILE", None)
os.environ.setdefault(
    "AIRFLOW_CONN_AWS_DEFAULT", '{"conn_type": "aws", "extra": {"region_name": "eu-west-1"}}'
)
# Spark workers must use this interpreter (the venv's), not python3 from PATH.
os.environ.setdefault("PYSPARK_PYTHON", os.sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", os.sys.executable)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Importing airflow configures logging (settings.initialize -> dictConfig) with handlers on the
# sys.stderr of that moment: imported here, that is pytest's session-long capture, not the
# capsys stream of whichever test first imports airflow (closed after it: later log lines
# would print "--- Logging error ---" into other tests' stderr).
import airflow  # noqa: E402, F401


@pytest.hookimpl(trylast=True)  # after -m / -k have deselected: the blocks are of what runs
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist, the slowest tests first, spread over the workers
    (:mod:`tests.ordering`); every worker collects, and orders, the same way."""
    from tests.ordering import CACHE_KEY, expected_seconds, group_of, order_for_workers

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    cache = getattr(config, "cache", None)  # None under -p no:cacheprovider
    measured = cache.get(CACHE_KEY, {}) if cache is not None else {}

    def cost(item):
        slow = item.get_closest_marker("slow") is not None
        return group_of(item.nodeid), expected_seconds(item.nodeid, slow, measured)

    items[:] = order_for_workers(items, workers, cost)


_DURATIONS: dict[str, float] = {}


def pytest_runtest_logreport(report):
    """Each test's setup + call + teardown seconds (on the xdist controller: every worker's)."""
    _DURATIONS[report.nodeid] = _DURATIONS.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session):
    """Keep this run's durations for the next run's order (not from an xdist worker: the
    controller has them all)."""
    from tests.ordering import CACHE_KEY

    cache = getattr(session.config, "cache", None)
    if cache is None or os.environ.get("PYTEST_XDIST_WORKER") or not _DURATIONS:
        return
    cache.set(CACHE_KEY, {**cache.get(CACHE_KEY, {}), **_DURATIONS})


@pytest.fixture(scope="session")
def dagbag():
    """The project's DagBag, parsed once per test session."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


@pytest.fixture(scope="session")
def airflow_db():
    """A freshly migrated metadata DB in the session's Airflow home (for dag.test())."""
    from airflow.utils import db

    db.resetdb()
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory) -> Path:
    """A small Fruits-360-style folder made by the project's own generator (read-only!)."""
    from include.datasets.sample import generate_sample_dataset

    root = tmp_path_factory.mktemp("fruits") / "fruits-360"
    generate_sample_dataset(root, per_label=4, test_per_label=2)
    return root


@pytest.fixture
def emr_emulator(tmp_path, request):
    """The offline EMR (``emr_emulator``) on 127.0.0.1 in this process, with short phases.

    moto's backends are process-wide: they are reset before and after, so no cluster or
    object leaks into another test. Tests may change ``emulator.settings`` while it runs.
    Tests marked ``enforce_iam`` get it with IAM enforced (``emulator.iam``).
    """
    from emr_emulator import Emulator, EmulatorSettings

    settings = EmulatorSettings(
        data_dir=tmp_path / "emr-emulator",
        start_s=0.3,
        bootstrap_s=0.3,
        terminate_s=0.3,
        log_delay_s=0,
        local_cores=2,
        enforce_iam=request.node.get_closest_marker("enforce_iam") is not None,
    )
    _reset_moto()
    with Emulator(settings) as emulator:
        yield emulator
    _reset_moto()


def _reset_moto() -> None:
    """What ``POST /moto-api/reset`` does: empty every moto backend of this process."""
    from moto.moto_api import _internal

    _internal.moto_api_backend.reset()
