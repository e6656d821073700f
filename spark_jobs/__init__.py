"""Spark job: MobileNetV2 features + MLlib PCA on a Fruits-360-style image set.

Runs the same on ``local[*]`` and on EMR. The package never imports Airflow; the entry
point is :mod:`spark_jobs.cli` (see its docstring for the exact ``spark-submit`` command).

Modules: :mod:`~spark_jobs.session` (the one SparkSession builder), :mod:`~spark_jobs.io`
(reading images / packed shards, writing a run's outputs), :mod:`~spark_jobs.transforms`
(pure ``DataFrame -> DataFrame`` steps), :mod:`~spark_jobs.features` (the MobileNetV2 UDF),
:mod:`~spark_jobs.pca` (centring, MLlib PCA, choosing k),
:mod:`~spark_jobs.separability` (Test accuracy of a classifier on the PCA's components),
:mod:`~spark_jobs.packing`
(pack many small images into a few parquet shards; no Spark needed),
:mod:`~spark_jobs.feature_cache` (features reused by image content and model across runs),
:mod:`~spark_jobs.versions` (package versions of what computed the results).
"""

FEATURE_DIM = 1280
"""Width of MobileNetV2's average-pooled feature vector."""
