#!/usr/bin/env bash
# EMR bootstrap action: install the Spark job's Python dependencies on every node.
#
#   BootstrapActions: Path=s3://BUCKET/fruits/job/bootstrap.sh,
#                     Args=[s3://BUCKET/fruits/job/requirements.txt, [WHEELHOUSE_URI]]
#
# With WHEELHOUSE_URI (s3://BUCKET/fruits/wheelhouse/<digest>, staged by the DAG from
# spark_jobs/requirements.txt + constraints.txt), the node copies the wheels of its
# architecture and installs with --no-index: no PyPI, every transitive version fixed.
#
# The job runs on python3.11 (EMR 7.x ships it next to 3.9): the cluster configuration
# must point Spark at it (spark-env: PYSPARK_PYTHON=/usr/bin/python3.11).
set -euo pipefail

REQUIREMENTS_URI="${1:?usage: bootstrap.sh s3://bucket/prefix/requirements.txt [s3://wheelhouse]}"
WHEELHOUSE_URI="${2:-}"
PYTHON="${PYTHON:-python3.11}"

if ! command -v "$PYTHON" >/dev/null 2>&1 || ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
  sudo dnf install -y -q python3.11 python3.11-pip
fi

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT
aws s3 cp --only-show-errors "$REQUIREMENTS_URI" "$workdir/requirements.txt"
if [ -n "$WHEELHOUSE_URI" ]; then
  aws s3 cp --only-show-errors --recursive "${WHEELHOUSE_URI%/}/$(uname -m)/" "$workdir/wheels/"
  sudo "$PYTHON" -m pip install --quiet --no-cache-dir --no-index \
    --find-links "$workdir/wheels" -r "$workdir/requirements.txt"
else
  sudo "$PYTHON" -m pip install --quiet --no-cache-dir -r "$workdir/requirements.txt"
fi
# Fail the bootstrap (and so the cluster, before any step is billed) when the install is
# inconsistent, and say what the node got.
"$PYTHON" -m pip check
"$PYTHON" -c "import PIL, pandas, pyarrow; print('job dependencies ready')"
"$PYTHON" -m pip list --format=freeze 2>/dev/null | grep -iE '^(ai-edge-litert|onnxruntime|tensorflow-cpu)==' || true
