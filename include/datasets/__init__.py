"""The dataset a run reads, wherever it lives.

* :mod:`include.datasets.local`: check a local Fruits-360-style folder (``validate_dataset``).
* :mod:`include.datasets.uri`: parse and check the ``dataset_uri`` Param (``s3://bucket/prefix/``).
* :mod:`include.datasets.s3`: a dataset already in S3: listed, validated, read in place or packed.
* :mod:`include.datasets.upload`: a local folder mirrored under one S3 prefix (packed by default).
* :mod:`include.datasets.sample`: a small deterministic sample made offline.
* :mod:`include.datasets.fetch`: ``make dataset``, the real archive downloaded and unpacked.
"""
