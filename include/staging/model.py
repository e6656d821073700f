"""The converted model of a litert/onnx run: made once where TensorFlow is, staged in S3.

``upload_job_package`` (the Airflow task, which has TensorFlow) calls :func:`stage_model`:

1. the model's key is computed without TensorFlow (``spark_jobs.runtimes.ModelSpec``: the
   runtime, the weights' content - a weights file's digest, or ``imagenet``/``none`` - and
   the image size);
2. the content-addressed copy ``<prefix>/models/<file name with key>`` is looked up in S3;
   when it is there, nothing is converted or uploaded;
3. otherwise the model is taken from the worker's local cache (``FRUITS_MODEL_CACHE``) or
   converted into it (``python -m spark_jobs.runtimes convert`` in a subprocess, so the
   Airflow worker does not keep TensorFlow's ~1 GB), checked, and uploaded there;
4. the run's own copy (``<run>/code/model.zip``, the key the step's ``--model`` names) is a
   server-side S3 copy of the cached object: no upload from the worker.

The job checks the model against ``--weights`` and ``--image-size`` again before using it.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.params.plan_types import StoragePlan

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from spark_jobs.runtimes import ModelSpec


def model_cache_dir() -> Path:
    """Where the Airflow worker keeps converted models between runs."""
    default = Path.home() / ".cache" / "fruits-pipeline" / "models"
    return Path(os.environ.get("FRUITS_MODEL_CACHE", str(default))).expanduser()


@dataclass
class StagedModel:
    """What the task log and XCom say about the run's model."""

    uri: str
    cache_uri: str
    key: str
    converted: bool
    uploaded: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def imagenet_model_staged(
    runtime: str,
    image_size: int,
    *,
    hook: S3Hook | None = None,
    models_prefix: str = "",
    bucket: str = "",
) -> bool:
    """Is the ImageNet model of ``runtime`` already converted: in this worker's model cache,
    or (with ``hook``) content-addressed under ``models_prefix`` in S3? Then a run needs no
    ImageNet weights file on this machine. An S3 lookup that fails counts as "not staged"."""
    from spark_jobs.runtimes import ModelSpec  # noqa: PLC0415 (lazy: loads numpy)

    spec = ModelSpec(runtime, "imagenet", "imagenet", image_size)  # type: ignore[arg-type]
    if (model_cache_dir() / spec.file_name).is_file():
        return True
    if hook is None:
        return False
    try:
        return bool(hook.check_for_key(f"{models_prefix}/{spec.file_name}", bucket_name=bucket))
    except Exception:  # no bucket yet, no access: staging will convert (and say why if it fails)
        return False


def local_model(
    runtime: str,
    weights: str,
    image_size: int,
    *,
    weights_file: Path | None,
    cache_dir: Path | None = None,
) -> tuple[Path, ModelSpec, bool]:
    """The converted model in the local cache: ``(path, spec, converted now?)``.

    A cached file is checked (digest, weights key, image size) before reuse; a damaged one
    is converted again. Callers sharing a cache (parallel tasks on one worker) convert a
    model once: the others wait on its lock file and reuse it. Raises
    ``spark_jobs.runtimes.WeightsError`` for unusable weights.
    """
    from spark_jobs.runtimes import (  # noqa: PLC0415 (lazy: loads numpy)
        ModelError,
        ModelSpec,
        check_model,
        convert_in_subprocess,
        weights_key,
    )

    spec = ModelSpec(runtime, weights, weights_key(weights, weights_file), image_size)  # type: ignore[arg-type]
    cache = cache_dir if cache_dir is not None else model_cache_dir()
    path = cache / spec.file_name
    cache.mkdir(parents=True, exist_ok=True)
    # One conversion per model at a time: a second task (or test worker) sharing the cache
    # waits for the first one's file instead of converting it again.
    with open(cache / f".{spec.file_name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.is_file():
            try:
                check_model(path.read_bytes(), spec, origin=str(path))
                return path, spec, False
            except ModelError:
                path.unlink()
        convert_in_subprocess(spec.runtime, weights, image_size, path, weights_file)
        check_model(path.read_bytes(), spec, origin=str(path))
        return path, spec, True


def stage_model(
    hook: S3Hook,
    plan: StoragePlan,
    *,
    cache_dir: Path | None = None,
) -> StagedModel | None:
    """Stage the run's converted model at ``plan["code_keys"]["model"]``; None for keras."""
    model_key = plan["code_keys"].get("model")
    if not model_key:
        return None
    bucket, job = plan["bucket"], plan["job"]
    runtime, weights, image_size = job["runtime"], job["weights"], job["image_size"]
    with tempfile.TemporaryDirectory(prefix="fruits-weights-") as tmp:
        weights_file: Path | None = None
        if plan.get("weights_file"):
            weights_file = Path(plan["weights_file"])
        elif weights.startswith("s3://"):
            src_bucket, _, src_key = weights.removeprefix("s3://").partition("/")
            weights_file = Path(
                hook.download_file(
                    src_key,
                    bucket_name=src_bucket,
                    local_path=tmp,
                    preserve_file_name=True,
                    use_autogenerated_subdir=False,
                )
            )
        if weights_file is not None and not weights_file.is_file():
            raise FileNotFoundError(f"weights file {weights_file} does not exist")
        from spark_jobs.runtimes import ModelSpec, weights_key  # noqa: PLC0415 (lazy: loads numpy)

        spec = ModelSpec(runtime, weights, weights_key(weights, weights_file), image_size)
        cache_key = f"{plan['models_prefix']}/{spec.file_name}"
        converted = uploaded = False
        if not hook.check_for_key(cache_key, bucket_name=bucket):
            path, _, converted = local_model(
                runtime, weights, image_size, weights_file=weights_file, cache_dir=cache_dir
            )
            hook.load_file(path, key=cache_key, bucket_name=bucket, replace=True, encrypt=True)
            uploaded = True
    hook.get_conn().copy_object(
        Bucket=bucket,
        Key=model_key,
        CopySource={"Bucket": bucket, "Key": cache_key},
        ServerSideEncryption="AES256",
    )
    return StagedModel(
        uri=f"s3://{bucket}/{model_key}",
        cache_uri=f"s3://{bucket}/{cache_key}",
        key=spec.key,
        converted=converted,
        uploaded=uploaded,
    )
