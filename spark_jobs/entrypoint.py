"""The file ``spark-submit`` runs; the job itself lives in the ``spark_jobs`` package.

    spark-submit --py-files spark_jobs.zip entrypoint.py --input ... --output ... --run-id ...

See :mod:`spark_jobs.cli` for the flags.
"""

from spark_jobs.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
