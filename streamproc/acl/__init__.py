"""Least-privilege ACLs derived from topologies, and containment through DENY ACLs.

``plan_acls(topologies, principals)`` is pure; ``apply_plan`` and the containment functions
talk to the broker through confluent-kafka's ``AdminClient``.
"""

from __future__ import annotations

from streamproc.acl.admin import AclDiff, admin_client, apply_plan, current_managed, describe, diff
from streamproc.acl.bindings import Binding, kafka_principal
from streamproc.acl.containment import (
    ContainmentResult,
    Enforcer,
    contained,
    data_topics,
    deny_bindings,
    enforce,
    release,
)
from streamproc.acl.plan import AclPlan, TopicRoles, plan_acls
from streamproc.acl.principals import Principals, load_principals

__all__ = [
    "AclDiff",
    "AclPlan",
    "Binding",
    "ContainmentResult",
    "Enforcer",
    "Principals",
    "TopicRoles",
    "admin_client",
    "apply_plan",
    "contained",
    "current_managed",
    "data_topics",
    "deny_bindings",
    "describe",
    "diff",
    "enforce",
    "kafka_principal",
    "load_principals",
    "plan_acls",
    "release",
]
