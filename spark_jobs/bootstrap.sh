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
# inconsistent, and say what the node got. Not `pip check`: it checks every package of the
# node's python3.11, and a conflict among packages EMR or the AMI installed, which the job
# never imports, would fail the cluster. This checks the job's requirements and everything
# they require (Requires-Dist, transitively), with pip's own `packaging`.
"$PYTHON" - "$workdir/requirements.txt" <<'PY'
import sys
from importlib import metadata

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # python3.11 from dnf has no packaging of its own; pip vendors it
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name

todo = []
with open(sys.argv[1]) as lines:
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            todo.append(Requirement(line))
seen, problems = set(), []
while todo:
    req = todo.pop()
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    try:
        dist = metadata.distribution(req.name)
    except metadata.PackageNotFoundError:
        problems.append(f"{req}: not installed")
        continue
    if not req.specifier.contains(dist.version, prereleases=True):
        problems.append(f"{req}: {dist.version} installed")
    key = (canonicalize_name(req.name), tuple(sorted(req.extras)))
    if key in seen:
        continue
    seen.add(key)
    for text in dist.requires or []:
        dep = Requirement(text)
        wanted = [""] + sorted(req.extras)
        if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in wanted):
            dep.marker = None
            todo.append(dep)
if problems:
    sys.exit("job requirements not satisfied: " + "; ".join(sorted(set(problems))))
print(f"{len(seen)} job packages consistent")
PY
"$PYTHON" -c "import PIL, pandas, pyarrow; print('job dependencies ready')"
"$PYTHON" -m pip list --format=freeze 2>/dev/null | grep -iE '^(ai-edge-litert|onnxruntime|tensorflow-cpu)==' || true
