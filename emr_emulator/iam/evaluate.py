"""Identity-based policy evaluation, as AWS documents it (no resource policies, boundaries, SCPs).

AWS IAM User Guide, "Policy evaluation logic" (reference_policies_evaluation-logic.html): a
request is denied by default (implicit deny); an ``Allow`` statement that matches allows
it; any matching ``Deny`` statement overrides every allow (explicit deny). A statement
matches when its ``Action``/``NotAction``, ``Resource``/``NotResource`` and every condition
match ("IAM JSON policy elements": ``Condition`` operators are ANDed, the keys of one
operator ANDed, the values of one key ORed).

Condition operators follow "IAM JSON policy elements: Condition operators" and "Single-valued
vs. multivalued context keys" (reference_policies_condition-single-vs-multi-valued-context-
keys.html): a missing key makes a positive operator false and a negated one true, ``...IfExists``
makes a missing key true, ``ForAllValues:`` is true for a missing/empty key, ``ForAnyValue:``
false. Key names are case-insensitive, values case-sensitive (except ``...IgnoreCase``).
Action names match case-insensitively, resources case-sensitively ("IAM JSON policy elements:
Action / Resource"); ``*`` and ``?`` are wildcards in both and in ``...Like`` operators.
"""

from __future__ import annotations

import enum
import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

Context = Mapping[str, str | Sequence[str]]


class Decision(enum.Enum):
    ALLOW = "allow"
    IMPLICIT_DENY = "implicit deny"
    EXPLICIT_DENY = "explicit deny"


class PolicyError(ValueError):
    """A policy the evaluator cannot read (unknown operator, missing element)."""


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


@lru_cache(maxsize=4096)
def _pattern(text: str, ignore_case: bool) -> re.Pattern[str]:
    # fnmatch's [] classes have no meaning in IAM: escape them before translating * and ?.
    escaped = text.replace("[", "[[]")
    return re.compile(fnmatch.translate(escaped), re.IGNORECASE if ignore_case else 0)


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's ``*`` (any run, ``:`` and ``/`` included) and ``?`` (one character)."""
    return _pattern(pattern, ignore_case).match(value) is not None


def _lookup(context: Context, key: str) -> list[str] | None:
    lowered = key.lower()
    for name, value in context.items():
        if name.lower() == lowered:
            return [str(v) for v in _as_list(value)]
    return None


_VARIABLE = re.compile(r"\$\{([^}]+)\}")


def _substitute(text: str, context: Context) -> str | None:
    """Policy variables (``${aws:username}``, ``${*}``...): None if one has no value (the
    statement then does not match: "IAM policy elements: Variables and tags")."""
    missing = False

    def one(match: re.Match[str]) -> str:
        nonlocal missing
        name = match.group(1)
        if name in ("*", "?", "$"):
            return name  # a literal *, ? or $ (escaped wildcards are not modelled)
        name, _, default = name.partition(",")
        values = _lookup(context, name.strip())
        if values and len(values) == 1:
            return values[0]
        if default:
            return default.strip().strip("'")
        missing = True
        return ""

    result = _VARIABLE.sub(one, text)
    return None if missing else result


def _compare(base: str, policy_value: str, value: str, context: Context) -> bool:
    expanded = _substitute(policy_value, context)
    if expanded is None:
        return False
    if base in ("StringEquals", "StringNotEquals", "ArnEquals", "ArnNotEquals"):
        if base.startswith("Arn"):
            return wildcard_match(expanded, value)  # ArnEquals also takes wildcards
        return expanded == value
    if base in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        return expanded.lower() == value.lower()
    if base in ("StringLike", "StringNotLike", "ArnLike", "ArnNotLike"):
        return wildcard_match(expanded, value)
    if base == "Bool":
        return expanded.lower() == value.lower()
    if base.startswith("Numeric"):
        try:
            left, right = float(value), float(expanded)
        except ValueError:
            return False
        return {
            "NumericEquals": left == right,
            "NumericNotEquals": left == right,
            "NumericLessThan": left < right,
            "NumericLessThanEquals": left <= right,
            "NumericGreaterThan": left > right,
            "NumericGreaterThanEquals": left >= right,
        }[base]
    raise PolicyError(f"condition operator {base!r} is not supported by the emulator")


_NEGATED = {
    "StringNotEquals",
    "StringNotEqualsIgnoreCase",
    "StringNotLike",
    "ArnNotEquals",
    "ArnNotLike",
    "NumericNotEquals",
}
_KNOWN = _NEGATED | {
    "StringEquals",
    "StringEqualsIgnoreCase",
    "StringLike",
    "ArnEquals",
    "ArnLike",
    "Bool",
    "Null",
    "NumericEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
}


def _condition_true(operator: str, key: str, policy_values: list[Any], context: Context) -> bool:
    qualifier, _, base = operator.rpartition(":")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    if base not in _KNOWN or qualifier not in ("", "ForAllValues", "ForAnyValue"):
        raise PolicyError(f"condition operator {operator!r} is not supported by the emulator")
    values = _lookup(context, key)
    wanted = [str(v) for v in policy_values]
    if base == "Null":  # "true": the key is absent; "false": present
        return (values is None or values == []) == (wanted[0].lower() == "true")
    negated = base in _NEGATED

    def matches(value: str) -> bool:
        hit = any(_compare(base, w, value, context) for w in wanted)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return values is None or all(matches(v) for v in values)
    if qualifier == "ForAnyValue":
        return values is not None and any(matches(v) for v in values)
    if values is None:
        return if_exists or negated
    if negated:
        return all(matches(v) for v in values)
    return any(matches(v) for v in values)


def conditions_match(condition: Mapping[str, Mapping[str, Any]] | None, context: Context) -> bool:
    for operator, keys in (condition or {}).items():
        for key, policy_values in keys.items():
            if not _condition_true(operator, key, _as_list(policy_values), context):
                return False
    return True


def _element_matches(patterns: Any, value: str, context: Context, *, ignore_case: bool) -> bool:
    for pattern in _as_list(patterns):
        expanded = _substitute(str(pattern), context)
        if expanded is not None and wildcard_match(expanded, value, ignore_case=ignore_case):
            return True
    return False


def statement_matches(
    statement: Mapping[str, Any], action: str, resource: str, context: Context
) -> bool:
    if "Action" in statement:
        if not _element_matches(statement["Action"], action, {}, ignore_case=True):
            return False
    elif "NotAction" in statement:
        if _element_matches(statement["NotAction"], action, {}, ignore_case=True):
            return False
    else:
        raise PolicyError("a statement needs Action or NotAction")
    if "Resource" in statement:
        if not _element_matches(statement["Resource"], resource, context, ignore_case=False):
            return False
    elif "NotResource" in statement:
        if _element_matches(statement["NotResource"], resource, context, ignore_case=False):
            return False
    else:
        raise PolicyError("an identity-based statement needs Resource or NotResource")
    return conditions_match(statement.get("Condition"), context)


def evaluate(
    policies: Iterable[Mapping[str, Any]], action: str, resource: str, context: Context
) -> Decision:
    """The decision of a set of identity-based policies for one action on one resource."""
    allowed = False
    for policy in policies:
        for statement in _as_list(policy.get("Statement", [])):
            if not statement_matches(statement, action, resource, context):
                continue
            effect = statement.get("Effect")
            if effect == "Deny":
                return Decision.EXPLICIT_DENY
            if effect == "Allow":
                allowed = True
            else:
                raise PolicyError(f"Effect must be Allow or Deny, got {effect!r}")
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY
