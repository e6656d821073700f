"""This project's EMR Serverless applications, found by name and tags (one place for the
create-or-reuse operator, the teardown and the sweeper)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

LIVE_STATES = ("CREATING", "CREATED", "STARTING", "STARTED", "STOPPING", "STOPPED")
"""Application states other than TERMINATED (a deleted application)."""


def find_applications(
    client: Any,
    *,
    tags: Mapping[str, str],
    name: str | None = None,
    states: Iterable[str] = LIVE_STATES,
) -> list[dict[str, Any]]:
    """``get_application`` of every application in ``states`` carrying all of ``tags`` (and
    named ``name`` when given), oldest first.

    ``ListApplications`` returns no tags, so each candidate is described (the project has
    a handful of applications, not thousands).
    """
    found = []
    for page in client.get_paginator("list_applications").paginate(states=list(states)):
        for summary in page["applications"]:
            if name is not None and summary.get("name") != name:
                continue
            app = client.get_application(applicationId=summary["id"])["application"]
            app_tags = app.get("tags") or {}
            if all(app_tags.get(key) == value for key, value in tags.items()):
                found.append(app)
    return sorted(found, key=lambda app: str(app.get("createdAt", "")))
