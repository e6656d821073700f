"""Skip an unchanged run: what decides whether a run's results would change, in one place.

* :mod:`include.reruns.fingerprint`: run fingerprints (over :mod:`include.datasets.manifest`),
  the record format.
* :mod:`include.reruns.history`: the last-success record and its stores (local, S3), the
  decision (``decide``), checksums, ``write_json_atomic``.
* :mod:`include.reruns.skip`: the ``check_unchanged`` task bodies of the three DAGs.
"""
