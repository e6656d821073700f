"""Read-only access of the EMR nodes to a dataset outside the project's bucket/prefix.

When ``dataset_uri`` (``FRUITS_DATASET_URI`` or ``--dataset-uri``) names a bucket or a
prefix the project's own policy does not cover, :func:`dataset_read_statements` gives the
two statements the EC2 instance profile needs to read it in place, and nothing more:

* ``s3:ListBucket`` on that bucket, only for keys under the prefix (``s3:prefix``
  condition), so Spark can list the dataset;
* ``s3:GetObject`` on ``arn:...:s3:::bucket/prefix/*``.

No write, no delete, no other prefix. The Airflow identity gets the listing statement only
(the DAG's ``validate_dataset`` lists the dataset; Airflow never reads its objects).
"""

from __future__ import annotations

from typing import Any

from include.params.dataset_uri import outside_project, parse_dataset_uri

LIST_SID = "ListTheDatasetPrefix"
READ_SID = "ReadTheDatasetPrefix"


def dataset_read_statements(
    dataset_uri: str | None, *, bucket: str, prefix: str, partition: str = "aws"
) -> list[dict[str, Any]]:
    """The statements to add to the instance profile's policy ([] when none are needed).

    Raises ValueError for a malformed ``dataset_uri``.
    """
    if not dataset_uri:
        return []
    data_bucket, data_prefix = parse_dataset_uri(dataset_uri)
    if not outside_project(dataset_uri, bucket=bucket, prefix=prefix):
        return []  # the project's own statements already cover it
    bucket_arn = f"arn:{partition}:s3:::{data_bucket}"
    listing: dict[str, Any] = {
        "Sid": LIST_SID,
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": bucket_arn,
    }
    if data_prefix:
        listing["Condition"] = {"StringLike": {"s3:prefix": [data_prefix, f"{data_prefix}/*"]}}
    objects = f"{bucket_arn}/{data_prefix}/*" if data_prefix else f"{bucket_arn}/*"
    return [
        listing,
        {"Sid": READ_SID, "Effect": "Allow", "Action": "s3:GetObject", "Resource": objects},
    ]
