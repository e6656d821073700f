"""docker-compose.yaml without a Docker engine: schema, references, services, AWS endpoint.

``check-jsonschema --builtin-schema vendor.compose-spec`` catches typos and bad YAML, but
accepts a ``depends_on`` naming a service that does not exist and cannot know whether a
mounted folder or the Dockerfile's COPY sources exist: :func:`compose_problems` checks those,
and is itself tested on broken copies so that its checks can fail.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO_ROOT / "docker-compose.yaml"

AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
}
EXPECTED_SERVICES = AIRFLOW_SERVICES | {"postgres", "moto"}
COMMANDS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _depends_on(service: dict[str, Any]) -> list[str]:
    # The short form is a list of names, the long form a mapping: list() gives the names.
    return list(service.get("depends_on") or [])


def _bind_sources(service: dict[str, Any], named_volumes: set[str]) -> list[str]:
    sources = []
    for volume in service.get("volumes") or []:
        source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source")
        if source and source not in named_volumes:
            sources.append(source)
    return sources


def _dockerfile_copy_sources(dockerfile: Path) -> list[str]:
    sources = []
    for line in dockerfile.read_text().splitlines():
        match = re.match(r"^\s*(COPY|ADD)\s+(?!--from)(.+)$", line, re.IGNORECASE)
        if match:
            parts = [p for p in match.group(2).split() if not p.startswith("--")]
            sources += parts[:-1]  # the last one is the destination
    return sources


MODES = {"emulator": {}, "real AWS": {"AWS_CONN_URI": "aws://?region_name=eu-west-1"}}
"""The two ways compose runs: the emulator (AWS_CONN_URI unset) or real AWS (.env sets it)."""


def _env_files(service: dict[str, Any], env: dict[str, str]) -> list[str]:
    files = service.get("env_file") or []
    files = [files] if isinstance(files, str) else files
    return [_interpolate(f if isinstance(f, str) else f["path"], env) for f in files]


def compose_problems(compose: dict[str, Any], root: Path) -> list[str]:
    """What a Docker engine would reject or fail on at build/up time, as readable lines."""
    problems = []
    services: dict[str, Any] = compose.get("services") or {}
    named_volumes = set(compose.get("volumes") or {})
    for name, service in services.items():
        for dep in _depends_on(service):
            if dep not in services:
                problems.append(f"{name}: depends_on unknown service {dep!r}")
        for mode, env in MODES.items():
            for env_file in _env_files(service, env):
                if not (root / env_file).is_file():
                    problems.append(f"{name}: env_file {env_file!r} ({mode}) does not exist")
        for source in _bind_sources(service, named_volumes):
            if source.startswith("$") or source.startswith("~"):
                continue  # resolved by the user's environment, not part of the repo
            if not (root / source).exists():
                problems.append(f"{name}: mounted path {source!r} does not exist")
        build = service.get("build")
        if build:
            context = root / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = context / (
                "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            )
            if not dockerfile.is_file():
                problems.append(f"{name}: Dockerfile {dockerfile} does not exist")
            else:
                for source in _dockerfile_copy_sources(dockerfile):
                    if not (context / source).exists():
                        problems.append(f"{name}: Dockerfile copies missing {source!r}")
    return problems


def _check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema against the compose spec (what `make lint` runs)."""
    checker = Path(sys.executable).with_name("check-jsonschema")
    return subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_schema_is_valid():
    result = _check_compose_schema(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_a_typo(tmp_path):
    broken = tmp_path / "docker-compose.yaml"
    broken.write_text(COMPOSE_FILE.read_text().replace("healthcheck:", "healthchek:", 1))
    result = _check_compose_schema(broken)
    assert result.returncode != 0
    assert "healthchek" in result.stdout + result.stderr


def test_services_are_the_documented_ones(compose):
    assert set(compose["services"]) == EXPECTED_SERVICES


def test_the_docs_describe_the_compose_services():
    page = (REPO_ROOT / "docs" / "docker-compose.md").read_text()
    for name in ("Postgres", "api-server", "scheduler", "dag-processor", "triggerer", "moto"):
        assert name.lower() in page.lower(), f"docs/docker-compose.md does not mention {name}"


def test_no_reference_is_broken(compose):
    assert compose_problems(compose, REPO_ROOT) == []


def test_problem_finder_catches_broken_references(compose, tmp_path):
    broken = copy.deepcopy(compose)
    broken["services"]["airflow-scheduler"]["depends_on"]["redis"] = {
        "condition": "service_healthy"
    }
    broken["services"]["airflow-triggerer"]["volumes"] = ["./no-such-folder:/opt/x"]
    broken["services"]["airflow-init"]["env_file"] = ["compose/x${AWS_CONN_URI:+-aws}.env"]
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY missing.txt /tmp/\n")

    problems = compose_problems(broken, tmp_path)

    assert "airflow-scheduler: depends_on unknown service 'redis'" in problems
    assert "airflow-triggerer: mounted path './no-such-folder' does not exist" in problems
    assert any("copies missing 'missing.txt'" in p for p in problems)
    assert "airflow-init: env_file 'compose/x.env' (emulator) does not exist" in problems
    assert "airflow-init: env_file 'compose/x-aws.env' (real AWS) does not exist" in problems


def test_airflow_services_share_the_image_and_run_their_component(compose):
    services = compose["services"]
    for name in AIRFLOW_SERVICES:
        assert services[name]["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name
        assert services[name]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    for name, command in COMMANDS.items():
        assert services[name]["command"] == command
        assert services[name]["depends_on"]["airflow-init"] == {
            "condition": "service_completed_successfully"
        }
    init_env = services["airflow-init"]["environment"]
    assert init_env["_AIRFLOW_DB_MIGRATE"] == "true"


def test_metadata_db_is_the_postgres_service(compose):
    env = compose["services"]["airflow-scheduler"]["environment"]
    url = urlparse(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert url.scheme.startswith("postgresql")
    assert url.hostname == "postgres"
    assert "postgres" in compose["services"]
    assert compose["services"]["airflow-scheduler"]["depends_on"]["postgres"] == {
        "condition": "service_healthy"
    }


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR:-default}`` (VAR, else default) and ``${VAR:+alternative}``
    (alternative when VAR is set and not empty), the two forms this file uses."""

    def one(match: re.Match[str]) -> str:
        name, operator, word = match.groups()
        if operator == ":-":
            return env.get(name) or word
        return word if env.get(name) else ""

    return re.sub(r"\$\{(\w+)(:-|:\+)([^}]*)\}", one, value)


def _aws_connection(compose: dict[str, Any], env: dict[str, str]):
    from airflow.models.connection import Connection

    raw = compose["services"]["airflow-scheduler"]["environment"]["AIRFLOW_CONN_AWS_DEFAULT"]
    return Connection(conn_id="aws_default", uri=_interpolate(raw, env))


def test_aws_connection_points_at_the_moto_service_by_default(compose):
    conn = _aws_connection(compose, env={})
    endpoint = urlparse(conn.extra_dejson["endpoint_url"])
    moto = compose["services"]["moto"]
    published = {p.rsplit(":", 1)[-1] for p in moto["ports"]}

    assert conn.conn_type == "aws"
    assert conn.extra_dejson["region_name"] == "eu-west-1"
    assert endpoint.hostname == "moto"
    assert str(endpoint.port) in published
    for name in AIRFLOW_SERVICES:  # every component talks to the same emulator
        assert compose["services"][name]["depends_on"]["moto"] == {"condition": "service_healthy"}


def test_moto_service_is_the_emr_emulator_started_as_by_hand(compose):
    """The project's image, ``python -m emr_emulator`` with flags its own parser accepts,
    on the port the connection uses, creating the pipeline's bucket."""
    from emr_emulator.__main__ import build_parser
    from include.config import PipelineConfig

    moto = compose["services"]["moto"]
    airflow_image = compose["services"]["airflow-scheduler"]["image"]
    assert moto["image"] == airflow_image
    assert moto["entrypoint"] == ["python", "-m", "emr_emulator"]
    args = build_parser().parse_args([_interpolate(str(a), {}) for a in moto["command"]])
    endpoint = urlparse(_aws_connection(compose, env={}).extra_dejson["endpoint_url"])
    assert args.port == endpoint.port
    assert args.bucket == [PipelineConfig().bucket]
    assert str(args.data_dir).startswith("/opt/airflow/project/data/")
    assert ".:/opt/airflow/project" in moto["volumes"]
    assert moto["environment"]["PYTHONPATH"] == "/opt/airflow/project"
    assert "/_emr_emulator/clusters" in " ".join(moto["healthcheck"]["test"])


def test_aws_conn_uri_switches_to_real_aws(compose):
    conn = _aws_connection(compose, env={"AWS_CONN_URI": "aws://?region_name=eu-west-3"})

    assert conn.conn_type == "aws"
    assert conn.extra_dejson == {"region_name": "eu-west-3"}  # no endpoint_url: real AWS
    assert conn.login is None  # credentials come from the environment, never this file


def test_image_installs_moto_at_the_tests_pin():
    """The emulator in compose runs the moto the tests run (requirements-dev.txt's pin)."""
    pins = (REPO_ROOT / "requirements-dev.txt").read_text()
    assert re.search(r"^moto\[server\]==5\.2\.5$", pins, re.M)
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "grep -E '^moto\\[server\\]==' /tmp/fruits/requirements-dev.txt" in dockerfile


def test_ports_are_published_on_loopback_only(compose):
    for name, service in compose["services"].items():
        for port in service.get("ports") or []:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_local_spark_connection_and_repo_paths(compose):
    env = compose["services"]["airflow-scheduler"]["environment"]
    spark = json.loads(env["AIRFLOW_CONN_SPARK_LOCAL"])
    assert spark == {"conn_type": "spark", "host": "local[*]"}
    mounts = compose["services"]["airflow-scheduler"]["volumes"]
    assert ".:/opt/airflow/project" in mounts
    for key in ("AIRFLOW__CORE__DAGS_FOLDER", "FRUITS_DATA_DIR", "FRUITS_RESULTS_DIR"):
        assert env[key].startswith("/opt/airflow/project/"), key
    assert env["PYTHONPATH"] == "/opt/airflow/project"


def test_dockerfile_installs_java_and_the_pinned_requirements():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    airflow_pin = re.search(
        r"^apache-airflow==(\S+)$", (REPO_ROOT / "requirements.txt").read_text(), re.M
    )
    assert airflow_pin is not None
    assert f"FROM apache/airflow:{airflow_pin.group(1)}-python3.11" in dockerfile
    assert "openjdk-17-jre-headless" in dockerfile
    assert "-r /tmp/fruits/requirements.txt -c /tmp/fruits/constraints.txt" in dockerfile


def _container_env(compose: dict[str, Any], service: str, env: dict[str, str]) -> dict[str, str]:
    """What the container's environment holds: its env_file(s), then ``environment``."""
    from dotenv import dotenv_values

    spec = compose["services"][service]
    values: dict[str, str] = {}
    for env_file in _env_files(spec, env):
        values.update({k: v or "" for k, v in dotenv_values(REPO_ROOT / env_file).items()})
    values.update({k: _interpolate(str(v), env) for k, v in spec["environment"].items()})
    return values


@pytest.mark.parametrize("service", sorted(AIRFLOW_SERVICES))
def test_emulator_only_settings_apply_only_while_the_emulator_is_the_aws(
    compose, service, monkeypatch
):
    from include.config import serverless_local_python_allowed, wheelhouse_default

    emulator = _container_env(compose, service, MODES["emulator"])
    real = _container_env(compose, service, MODES["real AWS"])

    assert "endpoint_url=http%3A%2F%2Fmoto" in emulator["AIRFLOW_CONN_AWS_DEFAULT"]
    assert "endpoint_url" not in real["AIRFLOW_CONN_AWS_DEFAULT"]
    assert emulator["AWS_EC2_METADATA_DISABLED"] == "true"
    assert real.get("AWS_EC2_METADATA_DISABLED", "false") == "false"  # instance roles work
    for values, local_python, wheelhouse in ((emulator, True, False), (real, False, True)):
        for key in ("FRUITS_SERVERLESS_LOCAL_PYTHON", "FRUITS_WHEELHOUSE"):
            monkeypatch.setenv(key, values.get(key, ""))
        assert serverless_local_python_allowed() is local_python
        assert wheelhouse_default() is wheelhouse
    # `environment` wins over env_file: the mode's settings must not be set there.
    env_file_keys = set(emulator) - set(compose["services"][service]["environment"])
    assert {"FRUITS_SERVERLESS_LOCAL_PYTHON", "AWS_EC2_METADATA_DISABLED"} <= env_file_keys
