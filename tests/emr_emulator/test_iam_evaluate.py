"""The emulator's policy evaluator against the cases of AWS's IAM User Guide.

"Policy evaluation logic" (explicit deny > allow > implicit deny), "IAM JSON policy elements"
(Action/NotAction, Resource/NotResource, wildcards), "Condition operators" and "Single-valued
vs. multivalued context keys" (ForAllValues / ForAnyValue, missing keys, IfExists, Null).
"""

from __future__ import annotations

import pytest

from emr_emulator.iam.evaluate import Decision, PolicyError, evaluate, wildcard_match

BUCKET = "arn:aws:s3:::amzn-s3-demo-bucket"


def policy(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action, resource="*", **extra):
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action, resource="*", **extra):
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def test_nothing_allows_is_an_implicit_deny():
    assert evaluate([], "s3:GetObject", f"{BUCKET}/k", {}) is Decision.IMPLICIT_DENY
    other = policy(allow("s3:PutObject", f"{BUCKET}/*"))
    assert evaluate([other], "s3:GetObject", f"{BUCKET}/k", {}) is Decision.IMPLICIT_DENY


def test_an_explicit_deny_overrides_an_allow_in_any_policy():
    allowing = policy(allow("s3:*", f"{BUCKET}/*"))
    denying = policy(deny("s3:DeleteObject", f"{BUCKET}/*"))
    assert evaluate([allowing], "s3:DeleteObject", f"{BUCKET}/k", {}) is Decision.ALLOW
    assert evaluate([allowing, denying], "s3:DeleteObject", f"{BUCKET}/k", {}) is (
        Decision.EXPLICIT_DENY
    )
    assert evaluate([denying, allowing], "s3:GetObject", f"{BUCKET}/k", {}) is Decision.ALLOW


def test_actions_match_case_insensitively_with_wildcards_resources_case_sensitively():
    doc = policy(allow("elasticmapreduce:Describe*", "arn:aws:elasticmapreduce:*:*:cluster/*"))
    arn = "arn:aws:elasticmapreduce:eu-west-1:123456789012:cluster/j-1"
    assert evaluate([doc], "ElasticMapReduce:describecluster", arn, {}) is Decision.ALLOW
    assert evaluate([doc], "elasticmapreduce:ListSteps", arn, {}) is Decision.IMPLICIT_DENY
    prefix = policy(allow("s3:GetObject", f"{BUCKET}/Data/*"))
    assert evaluate([prefix], "s3:GetObject", f"{BUCKET}/Data/x", {}) is Decision.ALLOW
    assert evaluate([prefix], "s3:GetObject", f"{BUCKET}/data/x", {}) is Decision.IMPLICIT_DENY
    # '?' is one character; '*' crosses '/' and ':' in a Resource.
    assert wildcard_match("arn:aws:s3:::b/?.txt", "arn:aws:s3:::b/a.txt")
    assert not wildcard_match("arn:aws:s3:::b/?.txt", "arn:aws:s3:::b/ab.txt")
    assert wildcard_match("arn:aws:s3:::b/[x]*", "arn:aws:s3:::b/[x]/y")  # [] are literal


def test_not_action_and_not_resource():
    doc = policy(
        {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:*", "NotResource": [BUCKET, f"{BUCKET}/*"]},
    )
    assert evaluate([doc], "ec2:DescribeSubnets", "*", {}) is Decision.ALLOW
    assert evaluate([doc], "iam:GetRole", "arn:aws:iam::1:role/r", {}) is Decision.IMPLICIT_DENY
    assert evaluate([doc], "s3:GetObject", f"{BUCKET}/k", {}) is Decision.ALLOW
    assert evaluate([doc], "s3:GetObject", "arn:aws:s3:::other/k", {}) is Decision.EXPLICIT_DENY


def test_string_equals_on_request_and_resource_tags():
    doc = policy(
        allow(
            "elasticmapreduce:RunJobFlow",
            Condition={"StringEquals": {"aws:RequestTag/Project": "fruits"}},
        )
    )
    tagged = {"aws:RequestTag/Project": "fruits"}
    assert evaluate([doc], "elasticmapreduce:RunJobFlow", "*", tagged) is Decision.ALLOW
    assert (
        evaluate([doc], "elasticmapreduce:RunJobFlow", "*", {"aws:requesttag/project": "fruits"})
        is Decision.ALLOW
    )  # key names are case-insensitive
    for context in ({}, {"aws:RequestTag/Project": "Fruits"}, {"aws:RequestTag/Team": "fruits"}):
        assert evaluate([doc], "elasticmapreduce:RunJobFlow", "*", context) is (
            Decision.IMPLICIT_DENY
        )


def test_conditions_and_between_operators_and_keys_or_between_values():
    doc = policy(
        allow(
            "iam:PassRole",
            "arn:aws:iam::1:role/*",
            Condition={
                "StringLike": {"iam:PassedToService": ["elasticmapreduce.amazonaws.com*", "ec2.*"]},
                "StringEquals": {"aws:RequestedRegion": "eu-west-1"},
            },
        )
    )
    role = "arn:aws:iam::1:role/r"
    ok = {"iam:PassedToService": "ec2.amazonaws.com", "aws:RequestedRegion": "eu-west-1"}
    assert evaluate([doc], "iam:PassRole", role, ok) is Decision.ALLOW
    wrong_service = {**ok, "iam:PassedToService": "lambda.amazonaws.com"}
    assert evaluate([doc], "iam:PassRole", role, wrong_service) is Decision.IMPLICIT_DENY
    wrong_region = {**ok, "aws:RequestedRegion": "us-east-1"}
    assert evaluate([doc], "iam:PassRole", role, wrong_region) is Decision.IMPLICIT_DENY


def test_negated_operators_are_true_for_a_missing_key_positive_ones_false():
    negated = policy(
        allow("s3:ListBucket", BUCKET, Condition={"StringNotLike": {"s3:prefix": "secret/*"}})
    )
    assert evaluate([negated], "s3:ListBucket", BUCKET, {}) is Decision.ALLOW
    assert evaluate([negated], "s3:ListBucket", BUCKET, {"s3:prefix": "secret/x"}) is (
        Decision.IMPLICIT_DENY
    )
    positive = policy(
        allow("s3:ListBucket", BUCKET, Condition={"StringLike": {"s3:prefix": ["fruits/*"]}})
    )
    assert evaluate([positive], "s3:ListBucket", BUCKET, {}) is Decision.IMPLICIT_DENY
    if_exists = policy(
        allow("s3:ListBucket", BUCKET, Condition={"StringLikeIfExists": {"s3:prefix": "fruits*"}})
    )
    assert evaluate([if_exists], "s3:ListBucket", BUCKET, {}) is Decision.ALLOW
    assert evaluate([if_exists], "s3:ListBucket", BUCKET, {"s3:prefix": "other"}) is (
        Decision.IMPLICIT_DENY
    )


def test_for_all_values_and_for_any_value_on_tag_keys():
    only = policy(
        allow(
            "emr-serverless:TagResource",
            Condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["Project", "Run"]}},
        )
    )
    action = "emr-serverless:TagResource"
    assert evaluate([only], action, "*", {"aws:TagKeys": ["Project"]}) is Decision.ALLOW
    assert evaluate([only], action, "*", {"aws:TagKeys": ["Project", "Owner"]}) is (
        Decision.IMPLICIT_DENY
    )
    # ForAllValues is true when the key is missing (the documented trap).
    assert evaluate([only], action, "*", {}) is Decision.ALLOW
    anyone = policy(
        deny(action, Condition={"ForAnyValue:StringEquals": {"aws:TagKeys": ["Project"]}}),
        allow(action),
    )
    assert evaluate([anyone], action, "*", {"aws:TagKeys": ["Owner", "Project"]}) is (
        Decision.EXPLICIT_DENY
    )
    assert evaluate([anyone], action, "*", {"aws:TagKeys": ["Owner"]}) is Decision.ALLOW
    assert evaluate([anyone], action, "*", {}) is Decision.ALLOW  # ForAnyValue: false if missing


def test_null_bool_and_arn_like():
    doc = policy(
        deny("elasticmapreduce:*", Condition={"Null": {"aws:ResourceTag/Project": "true"}}),
        allow(
            "elasticmapreduce:*",
            Condition={
                "Bool": {"aws:SecureTransport": "true"},
                "ArnLike": {"aws:SourceArn": "arn:aws:emr-serverless:*:1:/applications/*"},
            },
        ),
    )
    context = {
        "aws:ResourceTag/Project": "x",
        "aws:SecureTransport": "True",
        "aws:SourceArn": "arn:aws:emr-serverless:eu-west-1:1:/applications/00abc",
    }
    assert evaluate([doc], "elasticmapreduce:AddTags", "*", context) is Decision.ALLOW
    untagged = {k: v for k, v in context.items() if k != "aws:ResourceTag/Project"}
    assert evaluate([doc], "elasticmapreduce:AddTags", "*", untagged) is Decision.EXPLICIT_DENY
    plain = {**context, "aws:SecureTransport": "false"}
    assert evaluate([doc], "elasticmapreduce:AddTags", "*", plain) is Decision.IMPLICIT_DENY


def test_policy_variables_in_resources():
    doc = policy(allow("s3:GetObject", f"{BUCKET}/home/${{aws:username}}/*"))
    mine = f"{BUCKET}/home/ana/x"
    assert evaluate([doc], "s3:GetObject", mine, {"aws:username": "ana"}) is Decision.ALLOW
    assert evaluate([doc], "s3:GetObject", mine, {"aws:username": "bob"}) is (
        Decision.IMPLICIT_DENY
    )
    assert evaluate([doc], "s3:GetObject", mine, {}) is Decision.IMPLICIT_DENY


def test_an_operator_the_emulator_does_not_know_is_a_clear_error():
    doc = policy(allow("s3:*", Condition={"DateGreaterThan": {"aws:CurrentTime": "2020-01-01"}}))
    with pytest.raises(PolicyError, match="DateGreaterThan"):
        evaluate([doc], "s3:GetObject", "*", {"aws:CurrentTime": "2026-01-01"})
