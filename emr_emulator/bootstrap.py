"""The bootstrap check of an emulated cluster: would every bootstrap action run on a node?

Every action's script must exist at its S3 path and pass ``bash -n``, and an ``s3://``
argument of it must exist (the script would download it); otherwise the cluster fails as
EMR does, with the reason EMR gives. The script is not run (it installs packages on a node).
"""

from __future__ import annotations

import subprocess
import tempfile
from typing import Any

from emr_emulator.mirror import parse_s3_uri


def check_bootstrap(s3: Any, request: dict[str, Any], master: str) -> str | None:
    """None when every bootstrap action would run; else EMR's kind of reason."""
    for number, action in enumerate(request.get("BootstrapActions") or [], start=1):
        script = action.get("ScriptBootstrapAction") or {}
        location = parse_s3_uri(str(script.get("Path", "")))
        download_failed = (
            f"Master instance ({master}) failed attempting to download bootstrap "
            f"action {number} file from S3"
        )
        if location is None:
            return download_failed
        try:
            body = s3.get_object(Bucket=location.bucket, Key=location.key)["Body"].read()
        except Exception:  # NoSuchKey, NoSuchBucket, AccessDenied all mean the same here
            return download_failed
        with tempfile.NamedTemporaryFile(suffix=".sh") as handle:
            handle.write(body)
            handle.flush()
            check = subprocess.run(
                ["bash", "-n", handle.name], capture_output=True, text=True, check=False
            )
        if check.returncode != 0:
            return (
                f"On the master instance ({master}), bootstrap action {number} returned "
                f"a non-zero return code (bash -n: {check.stderr.strip()[-300:]})"
            )
        for arg in script.get("Args") or []:
            arg_location = parse_s3_uri(str(arg))
            if arg_location is None:
                continue
            try:
                s3.head_object(Bucket=arg_location.bucket, Key=arg_location.key)
            except Exception:
                return (
                    f"On the master instance ({master}), bootstrap action {number} "
                    f"returned a non-zero return code ({arg} does not exist)"
                )
    return None
