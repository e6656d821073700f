"""``python -m emr_emulator``: the offline EMR (and the rest of moto's AWS) on loopback.

    python -m emr_emulator --host 127.0.0.1 --port 5000 --data-dir .emr-emulator \\
        [--bucket fruits-features-bucket] [--idle-scale 1] [--log-delay 1]

Point the pipeline at it with ``AIRFLOW_CONN_AWS_DEFAULT='aws://testing:testing@/?region_name=
eu-west-1&endpoint_url=http%3A%2F%2F127.0.0.1%3A5000'``. Stops on Ctrl-C / SIGTERM, killing a
running job. State lives in memory (as in moto): a restart forgets clusters and objects.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from emr_emulator.server import Emulator, EmulatorSettings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m emr_emulator", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address (loopback)")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".emr-emulator"),
        help="S3 mirror, step work folders and logs",
    )
    parser.add_argument(
        "--bucket", action="append", default=[], help="create this bucket at start (repeatable)"
    )
    parser.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "eu-west-1"))
    # Timing flags left out fall back to the settings' env vars (FRUITS_EMU_*) and defaults.
    parser.add_argument("--start-s", type=float, help="seconds in STARTING (FRUITS_EMU_START_S)")
    parser.add_argument("--bootstrap-s", type=float, help="seconds in BOOTSTRAPPING")
    parser.add_argument("--terminate-s", type=float, help="seconds in TERMINATING")
    parser.add_argument(
        "--log-delay", type=float, help="seconds until step logs reach S3 (FRUITS_EMU_LOG_DELAY_S)"
    )
    parser.add_argument(
        "--idle-scale",
        type=float,
        help="multiplies AutoTerminationPolicy.IdleTimeout (FRUITS_EMU_IDLE_SCALE)",
    )
    parser.add_argument("--cores", type=int, help="N of local[N] for steps (FRUITS_EMU_CORES)")
    return parser


def settings_from_args(args: argparse.Namespace) -> EmulatorSettings:
    overrides = {
        "start_s": args.start_s,
        "bootstrap_s": args.bootstrap_s,
        "terminate_s": args.terminate_s,
        "log_delay_s": args.log_delay,
        "idle_scale": args.idle_scale,
        "local_cores": args.cores,
    }
    return EmulatorSettings(
        data_dir=args.data_dir,
        host=args.host,
        port=args.port,
        **{k: v for k, v in overrides.items() if v is not None},
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    os.environ["AWS_DEFAULT_REGION"] = args.region  # the region of the buckets it creates
    with Emulator(settings, buckets=tuple(args.bucket)) as emulator:
        print(
            f"EMR emulator listening on {emulator.endpoint_url} (data: {settings.data_dir})",
            flush=True,
        )
        stop.wait()
        print("stopping the EMR emulator", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
