"""Set-up, inspection and tear-down of the project's AWS resources: ``python -m include.infra``.

One command per job of the seed guide's shell script (create-bucket, upload-dataset, IAM
roles, status, terminate, download-results, cleanup). See ``docs/infra.md`` for the
reference and ``python -m include.infra --help`` for the options. The pipeline DAGs'
``preflight`` tasks run the same checks (:mod:`include.infra.dag_preflight`).
"""
