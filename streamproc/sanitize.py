"""``sanitize(record, plan) -> record``: the pure entry point the agents and the CLI call."""

from __future__ import annotations

from typing import Any

from streamproc.policy.plan import Plan


def sanitize(record: dict[str, Any], plan: Plan) -> dict[str, Any]:
    """The sanitized form of ``record`` under ``plan`` (a new dict; the input is not changed).

    Raises :class:`~streamproc.errors.TransformError` naming the field path (never the value)
    when a value cannot be transformed.
    """
    return plan.sanitize(record)
