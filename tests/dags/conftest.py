"""Fixtures of the EMR DAG tests, shared with the tests of its scheduled-run guards.

They are defined in ``test_fruits_emr_pipeline.py`` (where they are documented) and
re-exported here so that other test modules of this folder can use them.
"""

from tests.dags.test_fruits_emr_pipeline import (  # noqa: F401
    aws_env,
    emr_dag,
    job_source,
    moto_aws,
)
