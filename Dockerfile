# The Airflow image of docker-compose.yaml: the official image + Java 17 for local Spark +
# this project's pinned requirements (the same pins as .venv, from constraints.txt).
FROM apache/airflow:3.3.2-python3.11

USER root
# Spark (pyspark's local[*]) needs a JVM; the headless JRE is enough.
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*

USER airflow
COPY requirements.txt requirements-dev.txt constraints.txt /tmp/fruits/
RUN pip install --no-cache-dir -r /tmp/fruits/requirements.txt -c /tmp/fruits/constraints.txt
# The compose `moto` service (python -m emr_emulator) runs from this image too: moto[server]
# at the tests' pin (requirements-dev.txt), nothing else of the dev tools.
RUN pip install --no-cache-dir "$(grep -E '^moto\[server\]==' /tmp/fruits/requirements-dev.txt)" \
    -c /tmp/fruits/constraints.txt
