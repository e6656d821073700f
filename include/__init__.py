"""Airflow-side glue of the Fruits-360 feature pipeline: config, pure builders, helpers.

Nothing in this package imports heavy libraries (tensorflow, pyspark, pandas, boto3
clients) at module level: DAG files import it at parse time.
"""
