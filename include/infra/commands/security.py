"""``create-security-configuration``: the EMR security configuration for encryption at rest.

The document and the KMS grants live in :mod:`include.infra.security_configuration`.
"""

from __future__ import annotations

import argparse

from include.infra.commands.common import aws_context, cli_config
from include.infra.errors import EXIT_OK


def cmd_create_security_configuration(args: argparse.Namespace) -> int:
    """Create the security configuration and print the setting that makes clusters use it."""
    from include.infra.security_configuration import create_security_configuration  # noqa: PLC0415 (lazy: loads botocore)

    config = cli_config()
    ctx = aws_context(args, config)
    result = create_security_configuration(
        ctx,
        name=args.name,
        kms_key_arn=args.kms_key_arn,
        service_role=args.service_role,
        instance_role=args.instance_role,
    )
    state = "created" if result["created"] else "exists (same settings)"
    print(f"security configuration {result['name']}: {state}")
    print(f"  EMRFS objects in S3: {result['s3']}; in transit: not encrypted (needs certificates)")
    if result["local_disk"]:
        print(f"  local disks and EBS volumes: KMS key {args.kms_key_arn}")
        print(f"  the roles {args.instance_role} and {args.service_role} may use that key")
    else:
        print("  local disks: NOT encrypted by it (EMR needs a KMS key: --kms-key-arn). To")
        print("  encrypt new EBS volumes with the AWS-managed key instead, account-wide:")
        print(f"  aws ec2 enable-ebs-encryption-by-default --region {ctx.region}")
    print("Clusters use it once this is set (in .env):")
    print(f"export FRUITS_EMR_SECURITY_CONFIGURATION={result['name']}")
    return EXIT_OK
