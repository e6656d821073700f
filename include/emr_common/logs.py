"""Log tails of a failed EMR step or Serverless job run, read from S3, secrets masked."""

from __future__ import annotations

import gzip
import re
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

STDERR_TAIL_LINES = 60
STDOUT_TAIL_LINES = 20
LOG_WAIT_POLL_SECONDS = 15.0
"""How often a waiting sensor looks for a failed step's ``stderr.gz`` again."""

_SECRET_PATTERNS = (
    re.compile(r"(A[SK]IA[0-9A-Z]{16})"),
    re.compile(
        r"(?i)(aws_secret_access_key|aws_session_token|secret|password|token)(\s*[=:]\s*)\S+"
    ),
)


def redact(text: str) -> str:
    """Mask things that look like AWS keys or secrets before text goes into a log."""
    text = _SECRET_PATTERNS[0].sub("<redacted-key>", text)
    return _SECRET_PATTERNS[1].sub(lambda m: f"{m.group(1)}{m.group(2)}<redacted>", text)


def read_log_tail(s3_hook: S3Hook, uri: str, *, lines: int = STDERR_TAIL_LINES) -> str | None:
    """The last ``lines`` lines of a (gzipped) log object, or None when it is not there yet."""
    bucket, key = s3_hook.parse_s3_url(uri)
    if not s3_hook.check_for_key(key, bucket_name=bucket):
        return None
    body = s3_hook.get_key(key, bucket_name=bucket).get()["Body"].read()
    if key.endswith(".gz"):
        body = gzip.decompress(body)
    tail = body.decode("utf-8", errors="replace").splitlines()[-lines:]
    return redact("\n".join(tail))


def wait_for_log(
    s3_hook: S3Hook,
    uri: str,
    *,
    wait_seconds: float,
    poll_seconds: float = LOG_WAIT_POLL_SECONDS,
    log: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Wait up to ``wait_seconds`` for the object ``uri``; True once it is there.

    EMR archives a cluster's logs to the LogUri at five-minute intervals (EMR Management
    Guide, "Configure cluster logging and debugging"), so a step that failed a moment ago
    usually has no ``stderr.gz`` yet. Each check that finds nothing says so in ``log``.
    ``sleep`` and ``clock`` are injectable for tests.
    """
    bucket, key = s3_hook.parse_s3_url(uri)
    deadline = clock() + max(0.0, wait_seconds)
    while True:
        if s3_hook.check_for_key(key, bucket_name=bucket):
            return True
        left = deadline - clock()
        if left <= 0:
            return False
        log(
            f"{uri} is not there yet (EMR uploads step logs every ~5 minutes): "
            f"waiting up to {left:.0f} s more"
        )
        sleep(min(poll_seconds, left))


def log_tail_lines(
    s3_hook: S3Hook,
    files: Sequence[tuple[str, str, int]],
    *,
    hint: str,
    wait_seconds: float = 0.0,
    poll_seconds: float = LOG_WAIT_POLL_SECONDS,
    log: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[str]:
    """Report lines with the tail of each ``(name, uri, lines)`` log, secrets masked.

    With ``wait_seconds``, first waits (bounded) for the first log to reach S3
    (:func:`wait_for_log`). A log not there yet gets a line saying so, with ``hint`` (why
    it may come late). Never raises: the failure report must never hide the failure.
    """
    lines: list[str] = []
    first = files[0][1]
    try:
        if wait_seconds > 0:
            wait_for_log(
                s3_hook,
                first,
                wait_seconds=wait_seconds,
                poll_seconds=poll_seconds,
                log=log,
                sleep=sleep,
                clock=clock,
            )
    except Exception as exc:  # the failure report must never hide the failure itself
        lines.append(f"  (could not wait for {first}: {type(exc).__name__}: {exc})")
    for name, uri, count in files:
        try:
            tail = read_log_tail(s3_hook, uri, lines=count)
        except Exception as exc:  # the failure report must never hide the failure itself
            lines.append(f"  (could not read {uri}: {type(exc).__name__}: {exc})")
            continue
        if tail is None:
            waited = f" after waiting {wait_seconds:.0f} s" if wait_seconds > 0 else ""
            lines.append(
                f"  {name}: {uri} is not there yet{waited} ({hint}; look again there later)"
            )
        else:
            lines.append(f"  last lines of {uri}:")
            lines.extend(f"    {line}" for line in tail.splitlines())
    return lines
