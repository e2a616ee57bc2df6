"""Containment that bites: DENY ACLs for a principal on the data topics, and their release.

Kafka evaluates DENY before ALLOW, so a DENY READ/WRITE binding refuses the principal even
where the least-privilege plan allows it, including consumers that are already connected
(every fetch and produce request is authorized). ``acl apply`` never removes DENY bindings;
only :func:`release` does.

The detector agent holds one :class:`Enforcer` (admin client + the topologies' data topics)
and calls ``enforcer.enforce(principal, reason=..., incident=...)`` for each containment
message when run with ``--enforce``. The calls block on the Admin API (well under a second on
a healthy broker); from asyncio code run them in an executor.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streamproc.acl import admin as acl_admin
from streamproc.acl.bindings import Binding, kafka_principal
from streamproc.acl.plan import TopicRoles
from streamproc.audit import AuditKind
from streamproc.errors import AclError

if TYPE_CHECKING:
    from streamproc.audit import AuditLog
    from streamproc.config import Settings
    from streamproc.config.topology import Topology

DENIED_OPERATIONS: tuple[str, ...] = ("READ", "WRITE")


def data_topics(topologies: Sequence[Topology]) -> tuple[str, ...]:
    """Raw, sanitized and dead-letter topics of ``topologies``: what containment denies."""
    return TopicRoles.of(topologies).data_topics()


def deny_bindings(principal: str, topics: Iterable[str]) -> frozenset[Binding]:
    p = kafka_principal(principal)
    return frozenset(
        Binding(p, "TOPIC", t, "LITERAL", op, "DENY") for t in topics for op in DENIED_OPERATIONS
    )


@dataclass(frozen=True)
class ContainmentResult:
    """What one enforce/release did: the principal, its topics, bindings added or removed."""

    principal: str
    topics: tuple[str, ...]
    changed: tuple[Binding, ...]

    @property
    def changes(self) -> int:
        return len(self.changed)


def enforce(
    admin: Any,
    principal: str,
    topics: Iterable[str],
    *,
    reason: str = "anomaly",
    incident: str | None = None,
    score: float | None = None,
    threshold: float | None = None,
    by: str | None = None,
    audit: AuditLog | None = None,
    timeout: float = acl_admin.DEFAULT_TIMEOUT,
) -> ContainmentResult:
    """Deny ``principal`` READ and WRITE on ``topics``; idempotent (already-denied is kept).

    ``principal`` is ``alice`` or ``User:alice``; ``reason`` and ``incident`` are identifiers
    (they go to the audit trail when ``audit`` is given, with the topics and ``by``).
    """
    p = kafka_principal(principal)
    wanted = deny_bindings(p, topics)
    if not wanted:
        raise AclError(f"containment of {p}: no topics to deny")
    held = acl_admin.describe(admin, p, permission="DENY", timeout=timeout)
    todo = wanted - held
    acl_admin.create(admin, todo, timeout=timeout)
    topic_list = tuple(sorted({b.name for b in wanted}))
    if audit is not None:
        acl_admin._record(audit, "create", todo, by, "containment")
        fields: dict[str, Any] = {"enforced": True, "topics": list(topic_list)}
        for key, value in (
            ("incident", incident),
            ("score", score),
            ("threshold", threshold),
            ("by", by),
        ):
            if value is not None:
                fields[key] = value
        audit.append(AuditKind.CONTAINMENT, principal=p, reason=reason, **fields)
    return ContainmentResult(p, topic_list, tuple(sorted(todo)))


def release(
    admin: Any,
    principal: str,
    topics: Iterable[str] | None = None,
    *,
    by: str = "unknown",
    why: str | None = None,
    incident: str | None = None,
    audit: AuditLog | None = None,
    timeout: float = acl_admin.DEFAULT_TIMEOUT,
) -> ContainmentResult:
    """Remove the containment DENY bindings of ``principal`` (on ``topics``, or on every
    topic when None). DENY bindings on other operations or resources are left alone."""
    p = kafka_principal(principal)
    held = acl_admin.describe(admin, p, permission="DENY", timeout=timeout)
    only = None if topics is None else set(topics)
    todo = {
        b
        for b in held
        if b.resource_type == "TOPIC"
        and b.pattern == "LITERAL"
        and b.operation in DENIED_OPERATIONS
        and b.host == "*"
        and (only is None or b.name in only)
    }
    acl_admin.delete(admin, todo, timeout=timeout)
    if audit is not None:
        acl_admin._record(audit, "delete", todo, by, "release")
        fields: dict[str, Any] = {}
        if why is not None:
            fields["why"] = why
        if incident is not None:
            fields["incident"] = incident
        audit.append(AuditKind.RELEASE, principal=p, by=by, **fields)
    return ContainmentResult(p, tuple(sorted({b.name for b in todo})), tuple(sorted(todo)))


def contained(
    admin: Any, principal: str | None = None, *, timeout: float = acl_admin.DEFAULT_TIMEOUT
) -> dict[str, tuple[str, ...]]:
    """Principals under containment -> the topics they are denied (READ or WRITE)."""
    held = acl_admin.describe(
        admin, kafka_principal(principal) if principal else None, permission="DENY", timeout=timeout
    )
    out: dict[str, set[str]] = {}
    for b in held:
        if b.resource_type == "TOPIC" and b.operation in DENIED_OPERATIONS:
            out.setdefault(b.principal, set()).add(b.name)
    return {k: tuple(sorted(v)) for k, v in sorted(out.items())}


class Enforcer:
    """Containment bound to one admin connection and one set of data topics.

    ``protected`` principals (e.g. the streamproc worker itself) are never contained: a
    detector false positive must not stop the privacy pipeline; on-call can still act by hand.
    """

    def __init__(
        self,
        admin: Any,
        topics: Sequence[str],
        *,
        protected: Iterable[str] = (),
        audit: AuditLog | None = None,
        by: str = "streamproc-detector",
        timeout: float = acl_admin.DEFAULT_TIMEOUT,
    ) -> None:
        if not topics:
            raise AclError("an Enforcer needs at least one topic to deny")
        self.admin = admin
        self.topics = tuple(topics)
        self.protected = frozenset(kafka_principal(p) for p in protected)
        self.audit = audit
        self.by = by
        self.timeout = timeout

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        topologies: Sequence[Topology],
        *,
        protected: Iterable[str] = (),
        audit: AuditLog | None = None,
        by: str = "streamproc-detector",
    ) -> Enforcer:
        """Admin connection from ``settings`` (transport checked), topics from topologies."""
        admin = acl_admin.admin_client(settings.kafka_config())
        return cls(admin, data_topics(topologies), protected=protected, audit=audit, by=by)

    def enforce(
        self,
        principal: str,
        *,
        reason: str = "anomaly",
        incident: str | None = None,
        score: float | None = None,
        threshold: float | None = None,
    ) -> ContainmentResult:
        p = kafka_principal(principal)
        if p in self.protected:
            raise AclError(f"{p} is protected from automatic containment")
        return enforce(
            self.admin,
            p,
            self.topics,
            reason=reason,
            incident=incident,
            score=score,
            threshold=threshold,
            by=self.by,
            audit=self.audit,
            timeout=self.timeout,
        )

    def release(
        self, principal: str, *, by: str, why: str | None = None, incident: str | None = None
    ) -> ContainmentResult:
        return release(
            self.admin,
            principal,
            None,
            by=by,
            why=why,
            incident=incident,
            audit=self.audit,
            timeout=self.timeout,
        )
