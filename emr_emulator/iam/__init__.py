"""IAM enforcement in the emulator: each request is allowed or denied as AWS would decide it.

* :mod:`emr_emulator.iam.evaluate` — identity-based policy evaluation (explicit deny, allow,
  implicit deny; Action/NotAction, Resource/NotResource, condition operators and qualifiers).
* :mod:`emr_emulator.iam.requests` — a request (EMR JSON, EMR Serverless REST-JSON, S3 REST,
  IAM/STS/EC2 query, other JSON) -> its checks: IAM action, resource ARN, condition keys
  (``aws:RequestTag/*``, ``aws:ResourceTag/*``, ``aws:TagKeys``, ``iam:PassedToService``,
  ``iam:AWSServiceName``, ``s3:prefix``), including the ``iam:PassRole`` of passed roles.
* :mod:`emr_emulator.iam.enforcer` — the caller (an IAM user's or a session's access key;
  other keys are the account's root) and the answer: the request goes on, or fails with the
  service's ``AccessDenied``/``AccessDeniedException`` and AWS's wording. It also opens the
  sessions a job's own S3 traffic runs as (the instance-profile role, the job runtime role).

Turned on by ``EmulatorSettings.enforce_iam`` (``FRUITS_EMU_ENFORCE_IAM=1``). Not modelled:
resource-based policies (bucket policies), permission boundaries, SCPs, session policies.
"""

from emr_emulator.iam.enforcer import IamEnforcer

__all__ = ["IamEnforcer"]
