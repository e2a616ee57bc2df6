"""Privacy policy: annotations in an Avro schema -> a compiled :class:`Plan`."""

from __future__ import annotations

from streamproc.policy.anonymity import PENDING, AnonymitySpec
from streamproc.policy.compiler import compile_plan, derive_schema, describe_plan
from streamproc.policy.plan import FieldLineage, Plan

__all__ = [
    "PENDING",
    "AnonymitySpec",
    "FieldLineage",
    "Plan",
    "compile_plan",
    "derive_schema",
    "describe_plan",
]
