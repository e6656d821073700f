"""The file ``spark-submit`` runs; the job itself lives in the ``spark_jobs`` package.

    spark-submit --py-files spark_jobs.zip entrypoint.py --input ... --output ... --run-id ...
    spark-submit --py-files spark_jobs.zip entrypoint.py pack --input ... --output ...

The first form is the feature job (:mod:`spark_jobs.cli`, its flags); the second packs an
image folder into parquet shards on the cluster (:mod:`spark_jobs.pack_step`).
"""

import sys

if __name__ == "__main__":
    if sys.argv[1:2] == ["pack"]:
        from spark_jobs.pack_step import main as pack_main

        raise SystemExit(pack_main(sys.argv[2:]))
    from spark_jobs.cli import main

    raise SystemExit(main())
