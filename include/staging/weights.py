"""Which MobileNetV2 weights a run gets, decided before anything runs or costs money.

``make run`` / ``make run-emr`` (:mod:`include.local.run`), the local stack's trigger-form
default (:mod:`include.local.airflow_stack`) and the DAGs' ``validate_params`` decide here:

* :func:`decide_weights`: an explicit request is honoured or fails (no silent downgrade);
  without one, ImageNet when Keras' cache holds the file or it can be downloaded, else ``none``
  (random weights) with a loud reason.
* :func:`check_run_weights`: ``validate_params``' check of the ``weights`` Param where the
  ImageNet weights are loaded on this machine (the local DAG's job; the litert/onnx conversion
  of the EMR DAGs' ``upload_job_package``): offline, the run fails here with what to do,
  not minutes later after the dataset upload and a retry.

Offline (``FRUITS_OFFLINE=1``) nothing touches the network.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# What keras.applications.MobileNetV2(weights="imagenet", include_top=False) loads at 224.
IMAGENET_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
IMAGENET_URL = (
    f"https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/{IMAGENET_FILE}"
)
DOWNLOAD_TIMEOUT_S = 15


def offline() -> bool:
    """``FRUITS_OFFLINE`` set (``make run OFFLINE=1``, the offline local stack): no downloads."""
    return os.environ.get("FRUITS_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


class WeightsUnavailableError(RuntimeError):
    """The requested weights cannot be had here; the message says what to do."""


@dataclass(frozen=True)
class WeightsDecision:
    """Which weights the job gets and why."""

    value: str  # the job's --weights: "imagenet", "none" or a file path
    meaningful: bool
    reason: str


def keras_cache_file() -> Path:
    """Where Keras keeps the MobileNetV2 ImageNet weights (``$KERAS_HOME`` or ~/.keras)."""
    keras_home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    return keras_home / "models" / IMAGENET_FILE


def download_imagenet_weights(dest: Path, *, timeout: float = DOWNLOAD_TIMEOUT_S) -> bool:
    """Try to fetch the ImageNet weights into ``dest`` (atomically); False when offline."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(IMAGENET_URL, timeout=timeout) as response, tmp.open("wb") as f:
            while chunk := response.read(1 << 20):
                f.write(chunk)
        if tmp.stat().st_size < 1_000_000:  # the real file is ~9 MB: a proxy error page is not
            raise OSError("downloaded file is too small to be the weights")
        tmp.replace(dest)
        return True
    except OSError:  # URLError, timeouts, DNS errors and HTTP errors are all OSErrors
        tmp.unlink(missing_ok=True)
        return False


def decide_weights(
    requested: str | None,
    *,
    cache_file: Path | None = None,
    download: Callable[[Path], bool] | None = download_imagenet_weights,
) -> WeightsDecision:
    """Pick the job's weights. ``download=None`` means offline: never touch the network.

    An explicit request is honoured or fails (no silent downgrade): ``imagenet`` needs the
    cached file or a working download, a file path must exist. Without a request the
    fallback is ``none`` with a reason the caller prints as a warning.
    """
    cache_file = cache_file or keras_cache_file()
    if requested is not None and requested not in ("imagenet", "none"):
        path = Path(requested).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(f"--weights {requested}: no such file")
        return WeightsDecision(str(path.resolve()), True, f"weights file {path}")
    if requested == "none":
        return WeightsDecision("none", False, "random weights requested (--weights none)")
    if cache_file.is_file():
        return WeightsDecision(
            "imagenet", True, f"ImageNet weights from the Keras cache {cache_file}"
        )
    if download is not None and download(cache_file):
        return WeightsDecision("imagenet", True, f"ImageNet weights downloaded to {cache_file}")
    if requested == "imagenet":
        why = "downloads are off (offline)" if download is None else "the download failed"
        raise WeightsUnavailableError(
            f"ImageNet weights requested but {cache_file} is missing and {why}. Copy "
            f"{IMAGENET_FILE} there, or choose a weights file, or none (random weights, "
            "features NOT meaningful)."
        )
    return WeightsDecision(
        "none",
        False,
        "ImageNet weights are not available (not in the Keras cache, download impossible): "
        "running with RANDOM weights. The pipeline runs end to end, but the features and the "
        f"PCA are NOT meaningful. Put {IMAGENET_FILE} in {cache_file.parent} "
        "or pass --weights FILE.",
    )


def check_run_weights(
    weights: str,
    *,
    imagenet_loaded_here: bool,
    cache_file: Path | None = None,
    download: Callable[[Path], bool] | None = download_imagenet_weights,
) -> WeightsDecision:
    """The ``weights`` Param of a run, resolved before the run stages anything.

    ``imagenet`` is resolved only where it is loaded on this machine
    (``imagenet_loaded_here``): from Keras' cache, or downloaded into it now (never when
    :func:`offline`); its absence raises :class:`WeightsUnavailableError`. Elsewhere (the
    keras runtime on EMR) the nodes download it, which cannot be checked from here. Weights
    files and ``s3://`` URIs are checked by the DAGs' own Param checks.
    """
    if weights == "none":
        return WeightsDecision(
            "none", False, "random weights (weights=none): the features are NOT meaningful"
        )
    if weights != "imagenet":
        return WeightsDecision(weights, True, f"weights file {weights}")
    if not imagenet_loaded_here:
        return WeightsDecision("imagenet", True, "ImageNet weights, downloaded by the job")
    try:
        return decide_weights(
            "imagenet", cache_file=cache_file, download=None if offline() else download
        )
    except WeightsUnavailableError as exc:
        raise WeightsUnavailableError(
            f"weights=imagenet: {exc} Trigger again with weights=none for a smoke test on "
            "random weights, or with a weights file / s3:// URI."
        ) from exc
