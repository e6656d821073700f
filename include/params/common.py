"""Trigger-time options of the pipeline DAGs, as typed Airflow ``Param``s.

The Params are the DAGs' user interface: the Airflow UI renders them as the trigger
form (titles, descriptions, enums, minimums). ``job_params()`` is shared by the local and
the EMR DAGs (``include.params.cluster.emr_params()`` adds the cluster options, and
``include.params.serverless`` the Serverless ones). Airflow checks each value against
its JSON schema when a run is created; ``job_settings_from_params`` (and the cluster
and Serverless modules' own) then check the combinations a schema cannot express
(pca_k XOR pca_variance, sampling only in mini mode, ...) and raise ``ValueError`` with a
clear message, so the first task fails before anything costs money.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow.sdk import Param

from include.config import weights_default
from include.params.dataset_uri import normalise_uri
from include.params.defaults import (
    DEFAULT_MAX_COST_USD,
)
from include.params.job_args import MINI_MAX_IMAGES, PCA_SOLVERS, RUNTIMES, JobSettings

RELEASE_LABEL_PATTERN = r"^emr-7\.[0-9]+\.[0-9]+$"
"""EMR 7.x only: Spark 3.5 and Python 3.11 on the nodes (the job's requirements need both)."""

MAX_IDLE_TIMEOUT_MINUTES = 7 * 24 * 60  # EMR's AutoTerminationPolicy allows up to 7 days.


def job_params() -> dict[str, Param]:
    """Params describing what the Spark job computes (both DAGs). A new dict each call."""
    return {
        "mode": Param(
            "mini",
            type="string",
            enum=["mini", "full"],
            title="Mode",
            description="mini: a deterministic, seeded sample (fast and cheap); "
            "full: every image in the dataset.",
        ),
        "max_images": Param(
            MINI_MAX_IMAGES,
            type=["null", "integer"],
            minimum=1,
            title="Image cap (mini)",
            description="mini only: at most this many images in total. Empty = no total cap.",
        ),
        "per_class": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Images per class (mini)",
            description="mini only: at most this many images per label. Empty = no per-class cap.",
        ),
        "seed": Param(
            42,
            type="integer",
            minimum=0,
            title="Sampling seed",
            description="Seed of the mini-mode sample: the same seed picks the same images.",
        ),
        "pca_variance": Param(
            0.95,
            type=["null", "number"],
            exclusiveMinimum=0,
            maximum=1,
            title="PCA variance target",
            description="Keep the fewest components explaining at least this share of "
            "variance (0 < v <= 1). Ignored when a fixed k is given.",
        ),
        "pca_k": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=1280,
            title="PCA fixed k",
            description="Keep exactly k components (1..1280). Empty = use the variance target.",
        ),
        "pca_solver": Param(
            "gram",
            type="string",
            enum=list(PCA_SOLVERS),
            title="PCA solver",
            description="gram: one pass over the features, covariance per partition + "
            "LAPACK on the driver (fast); mllib: MLlib's own PCA.fit (same result, "
            "5-10x slower fit).",
        ),
        "weights": Param(
            weights_default(),
            type="string",
            minLength=1,
            title="MobileNetV2 weights",
            description="'imagenet' (Keras' cache or a download: validate_params checks it "
            "where it is loaded on the Airflow worker, and fails at once without it), 'none' "
            "(random init: a smoke test, features are not meaningful), a local .h5/.keras "
            "file, or an s3:// URI. Default: FRUITS_WEIGHTS (make airflow: what make run "
            "would choose).",
        ),
        "runtime": Param(
            "litert",
            type="string",
            enum=list(RUNTIMES),
            title="Model runtime",
            description="What runs MobileNetV2 on the executors. litert (default) or onnx: "
            "the model converted once per run, no TensorFlow on the executors, several "
            "times Keras's images/s; keras: TensorFlow itself (parity checks). Same features "
            "to ~1e-6.",
        ),
        "image_size": Param(
            224,
            type="integer",
            minimum=32,
            maximum=512,
            title="Image size",
            description="Images are resized to size x size before MobileNetV2 (224 is native).",
        ),
        "batch_size": Param(
            64,
            type="integer",
            minimum=1,
            maximum=1024,
            title="Batch size",
            description="Images per model call; a decoded 224x224 image is ~0.6 MB float32.",
        ),
    }


def local_params() -> dict[str, Param]:
    """The local DAG's Params: the job's, the guards' and the dataset folder."""
    params = {**job_params(), **guard_params(emr=False)}
    params["dataset_dir"] = Param(
        None,
        type=["null", "string"],
        title="Dataset folder",
        description="Local Fruits-360-style folder (<Split>/<Label>/<image>). Empty = "
        "FRUITS_DATA_DIR, else data/fruits-360-sample.",
    )
    return params


def guard_params(*, emr: bool) -> dict[str, Param]:
    """Params of the scheduled-run guards (not job settings: they never enter a fingerprint).

    ``force`` (both DAGs) reruns a run whose fingerprint is unchanged; ``feature_cache``
    (both DAGs) reuses the features of images featurised before by the same model (the
    results are identical either way, so it is no job setting either); ``max_cost_usd``
    (EMR) refuses a run whose estimate is higher, before any cluster exists.
    """
    params = {
        "force": Param(
            False,
            type="boolean",
            title="Run even if unchanged",
            description="A run whose dataset, weights, settings and job package equal the "
            "last successful run's is skipped (its results are reused). Tick to rerun anyway.",
        ),
        "feature_cache": Param(
            True,
            type="boolean",
            title="Reuse cached features",
            description="Featurise only images whose content the same model (weights, image "
            "size, runtime) has not featurised before; take the others' features from the "
            "feature cache and add the new ones. Results are identical. Untick to featurise "
            "every image (the cache is then neither read nor written).",
        ),
    }
    if emr:
        params["max_cost_usd"] = Param(
            DEFAULT_MAX_COST_USD,
            type="number",
            exclusiveMinimum=0,
            title="Budget (USD)",
            description="Refuse the run before any cluster exists when its estimated cost "
            "(images / runtime throughput + cluster start + one poll, at the price table's "
            "on-demand prices) is higher.",
        )
    return params


def s3_dataset_params() -> dict[str, Param]:
    """The EMR DAG's ``dataset_uri``: a dataset read in place from S3 (nothing uploaded)."""
    return {
        "dataset_uri": Param(
            None,
            type=["null", "string"],
            pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$",
            title="Dataset in S3",
            description="s3://bucket/prefix/ laid out <split>/<label>/<image> or holding "
            "packed *.parquet shards: validated by listing it, read in place by the job, "
            "nothing uploaded. Empty = FRUITS_DATASET_URI, else the local dataset folder.",
        ),
    }


@dataclass(frozen=True)
class GuardSettings:
    """The guards of one run: rerun an unchanged run? the budget (None: no budget)."""

    force: bool
    max_cost_usd: float | None
    feature_cache: bool = True


def guard_settings_from_params(params: Mapping[str, Any], *, emr: bool) -> GuardSettings:
    """Validated ``GuardSettings``; raises ``ValueError`` naming the bad Param."""
    defaults = guard_params(emr=emr)
    force = _check_bool("force", _get(params, "force", defaults))
    feature_cache = _check_bool("feature_cache", _get(params, "feature_cache", defaults))
    budget = None
    if emr:
        budget = _check_number("max_cost_usd", _get(params, "max_cost_usd", defaults))
        if budget is None or budget <= 0:
            raise ValueError(f"max_cost_usd must be > 0, got {budget}")
    return GuardSettings(force=force, max_cost_usd=budget, feature_cache=feature_cache)


def _get(params: Mapping[str, Any], name: str, defaults: Mapping[str, Param]) -> Any:
    if name in params:
        return params[name]
    return defaults[name].value


def _check_int(name: str, value: Any, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    # bool is an int subclass; a True where a count is expected is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(
            f"{name} must be an integer{' or empty' if optional else ''}, got {value!r}"
        )
    return value


def _check_number(name: str, value: Any, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number{' or empty' if optional else ''}, got {value!r}")
    return float(value)


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def check_idle_and_dataset_dir(
    params: Mapping[str, Any], defaults: Mapping[str, Param]
) -> tuple[int, str | None]:
    """``idle_timeout_minutes`` (1 minute to 7 days) and the raw ``dataset_dir`` (a string
    or empty), as both EMR DAGs take them."""
    idle = _check_int("idle_timeout_minutes", _get(params, "idle_timeout_minutes", defaults))
    assert idle is not None
    if not 1 <= idle <= MAX_IDLE_TIMEOUT_MINUTES:
        raise ValueError(
            f"idle_timeout_minutes must be between 1 and {MAX_IDLE_TIMEOUT_MINUTES}, got {idle}"
        )
    dataset_dir = _get(params, "dataset_dir", defaults)
    if dataset_dir is not None and not isinstance(dataset_dir, str):
        raise ValueError(f"dataset_dir must be a folder path or empty, got {dataset_dir!r}")
    return idle, dataset_dir


def check_poll_and_timeout(
    params: Mapping[str, Any], defaults: Mapping[str, Param], *, timeout_name: str
) -> tuple[int | None, int | None]:
    """``poke_interval_seconds`` and the wait's timeout Param (None: the mode's default),
    each >= 1 second when set."""
    poke = _check_int(
        "poke_interval_seconds", _get(params, "poke_interval_seconds", defaults), optional=True
    )
    timeout = _check_int(timeout_name, _get(params, timeout_name, defaults), optional=True)
    for name, value in (("poke_interval_seconds", poke), (timeout_name, timeout)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1 second when set, got {value}")
    return poke, timeout


def job_settings_from_params(params: Mapping[str, Any]) -> JobSettings:
    """Turn (possibly partial) Params into validated ``JobSettings``.

    Missing keys take the Params' defaults. A fixed ``pca_k`` wins over ``pca_variance``
    (the form always carries a variance default). Sampling caps are dropped in full mode.
    Raises ``ValueError`` with a message naming the bad Param.
    """
    defaults = job_params()
    mode = _get(params, "mode", defaults)
    if mode not in ("mini", "full"):
        raise ValueError(f"mode must be 'mini' or 'full', got {mode!r}")
    max_images = _check_int("max_images", _get(params, "max_images", defaults), optional=True)
    per_class = _check_int("per_class", _get(params, "per_class", defaults), optional=True)
    if mode == "full":
        max_images = per_class = None
    pca_k = _check_int("pca_k", _get(params, "pca_k", defaults), optional=True)
    pca_variance = _check_number(
        "pca_variance", _get(params, "pca_variance", defaults), optional=True
    )
    if pca_k is not None:
        pca_variance = None
    elif pca_variance is None:
        raise ValueError("set either pca_variance (0 < v <= 1) or pca_k (1..1280)")
    seed = _check_int("seed", _get(params, "seed", defaults))
    if seed < 0:  # type: ignore[operator]
        raise ValueError(f"seed must be >= 0, got {seed}")
    pca_solver = _get(params, "pca_solver", defaults)
    if pca_solver not in PCA_SOLVERS:
        raise ValueError(f"pca_solver must be one of {PCA_SOLVERS}, got {pca_solver!r}")
    weights = _get(params, "weights", defaults)
    if not isinstance(weights, str) or not weights.strip():
        raise ValueError(
            f"weights must be 'imagenet', 'none', a file path or an s3:// URI, got {weights!r}"
        )
    runtime = _get(params, "runtime", defaults)
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    return JobSettings(
        mode=mode,
        runtime=runtime,
        max_images=max_images,
        per_class=per_class,
        seed=seed,  # type: ignore[arg-type]
        pca_variance=pca_variance,
        pca_k=pca_k,
        pca_solver=pca_solver,
        weights=weights.strip(),
        image_size=_check_int("image_size", _get(params, "image_size", defaults)),  # type: ignore[arg-type]
        batch_size=_check_int("batch_size", _get(params, "batch_size", defaults)),  # type: ignore[arg-type]
    )


def dataset_uri_setting(params: Mapping[str, Any], default: str | None) -> str | None:
    """The run's dataset URI: the Param when given, else the configuration's default."""
    value = params.get("dataset_uri")
    if value is not None and not isinstance(value, str):
        raise ValueError(f"dataset_uri must be an s3:// URI or empty, got {value!r}")
    chosen = (value or "").strip() or (default or "").strip()
    return normalise_uri(chosen) if chosen else None
