"""What a run stages in S3 before the job runs (every upload idempotent).

* :mod:`include.staging.s3`: the S3 hook and idempotent uploads.
* :mod:`include.staging.job_package`: the job's zip, entry script, bootstrap and requirements.
* :mod:`include.staging.weights`: which MobileNetV2 weights a run gets (ImageNet from Keras'
  cache or a download, a file, or random), decided before anything is staged.
* :mod:`include.staging.model`: the converted model of a litert/onnx run.
* :mod:`include.staging.wheelhouse`: the nodes' wheels (no PyPI at bootstrap).
* :mod:`include.staging.serverless_env`: the packed Python environment for EMR Serverless.
"""
