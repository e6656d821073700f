"""The dataset a run reads, wherever it lives.

* :mod:`include.datasets.local`: check a local Fruits-360-style folder (``validate_dataset``).
* :mod:`include.datasets.manifest`: a dataset's files, sizes and content hashes, and their digest.
* :mod:`include.datasets.s3`: a dataset already in S3: listed, validated, read in place or packed.
* :mod:`include.datasets.upload`: a local folder mirrored under one S3 prefix (packed by default).
* :mod:`include.datasets.sample`: a small deterministic sample made offline.
* :mod:`include.datasets.fetch`: ``make dataset``, the real archive downloaded and unpacked.

The ``dataset_uri`` Param's form is checked by :mod:`include.params.dataset_uri`.
"""
