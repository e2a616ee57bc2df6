"""Topologies + principals -> the least-privilege ACL bindings they imply (pure).

Kafka lets READ, WRITE, CREATE and the other operations imply DESCRIBE, so no DESCRIBE
binding is planned. What the Faust worker needs was measured on the secured local broker
(``tests/integration/security``): READ on its source topics and on its consumer group (= app
id); WRITE on every topic it produces to; CREATE on the output topics its agents declare
(sink, dead letter: Faust's ``maybe_declare`` asks CreateTopics even when the topic exists,
and Kafka checks CREATE before answering "already exists"; the audit topic likewise, which
the audit log creates at start when the trail is on; besides the topologies' audit topics,
each app id's default trail ``streamproc.audit.<app_id>``, which on-call reads); CREATE,
READ and WRITE on topics prefixed ``<app_id>-`` (table changelogs, repartition and leader
topics). The detect hot path (:mod:`streamproc.runtime.detecthot`) uses the same: group
``<app_id>``, its state topic ``<app_id>-<topology>-principals-changelog`` (the Faust
table's changelog). An idempotent producer needs no cluster IDEMPOTENT_WRITE on Kafka 3.x:
WRITE on a topic suffices.

With a ``detect_worker`` in the principals file, the detect topologies' bindings go to that
principal instead, and narrower: its state topics are literal (the hot path and the agent
create and use ``<app_id>-<topology>-principals-changelog`` only), no ``-sanitize`` group, no
transactional id (the detect engines do not use transactions). So a detector's credentials
never read a raw topic of a sanitize topology, nor write a sanitized one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from streamproc.acl.bindings import Binding, PatternKind, ResourceKind
from streamproc.acl.principals import Principals, Worker
from streamproc.audit import trail_topic
from streamproc.config.topology import Topology
from streamproc.errors import AclError


@dataclass(frozen=True)
class TopicRoles:
    """The topics of a set of topologies, by role."""

    raw: tuple[str, ...]
    sanitized: tuple[str, ...]
    containment: tuple[str, ...]
    dead_letter: tuple[str, ...]
    lineage: tuple[str, ...]
    audit: tuple[str, ...]
    exactly_once: bool = False

    @classmethod
    def of(cls, topologies: Sequence[Topology]) -> TopicRoles:
        def uniq(items: Iterable[str | None]) -> tuple[str, ...]:
            return tuple(sorted({i for i in items if i}))

        return cls(
            raw=uniq(t.source.topic for t in topologies),
            sanitized=uniq(t.sink.topic for t in topologies if t.kind == "sanitize"),
            containment=uniq(t.sink.topic for t in topologies if t.kind == "detect"),
            dead_letter=uniq(t.dead_letter for t in topologies),
            lineage=uniq(t.lineage_topic for t in topologies),
            audit=uniq(t.audit_topic for t in topologies),
            exactly_once=any(t.processing_guarantee == "exactly_once" for t in topologies),
        )

    def data_topics(self) -> tuple[str, ...]:
        """Topics holding customer data: raw, sanitized and dead-letter (sealed raw) topics."""
        return tuple(sorted({*self.raw, *self.sanitized, *self.dead_letter}))


@dataclass(frozen=True)
class AclPlan:
    """The bindings to hold, and the principals whose ALLOW bindings ``apply`` manages."""

    bindings: frozenset[Binding]
    managed: frozenset[str]

    def sorted(self) -> list[Binding]:
        return sorted(self.bindings)


def _allow(
    principal: str,
    rtype: ResourceKind,
    name: str,
    ops: Iterable[str],
    pattern: PatternKind = "LITERAL",
) -> list[Binding]:
    return [Binding(principal, rtype, name, pattern, op) for op in ops]


def plan_acls(topologies: Sequence[Topology], principals: Principals) -> AclPlan:
    """Derive the least-privilege bindings; raises :class:`AclError` naming the file and key."""
    if not topologies:
        raise AclError("an ACL plan needs at least one topology")
    roles = TopicRoles.of(topologies)
    err_path = principals.path
    out: list[Binding] = []

    dw = principals.detect_worker
    detect = [t for t in topologies if t.kind == "detect"]
    worker_topologies = [t for t in topologies if dw is None or t.kind != "detect"]
    if worker_topologies:
        out += _worker_bindings(principals.worker, TopicRoles.of(worker_topologies))
    if dw is not None and detect:
        out += _detect_worker_bindings(dw, detect)

    for i, prod in enumerate(principals.producers):
        for j, t in enumerate(prod.topics):
            if t not in roles.raw:
                raise AclError(
                    f"{err_path}: key 'producers[{i}].topics[{j}]': {t!r} is not the source "
                    f"topic of any topology ({', '.join(roles.raw)})"
                )
            out += _allow(prod.principal, "TOPIC", t, ["WRITE"])

    for i, cons in enumerate(principals.training_consumers):
        topics = cons.topics if cons.topics is not None else roles.sanitized
        for j, t in enumerate(topics):
            if t not in roles.sanitized:
                raise AclError(
                    f"{err_path}: key 'training_consumers[{i}].topics[{j}]': {t!r} is not a "
                    "sanitized topic; training consumers read sanitized topics only "
                    f"({', '.join(roles.sanitized) or 'none'})"
                )
            out += _allow(cons.principal, "TOPIC", t, ["READ"])
        out += _allow(cons.principal, "GROUP", cons.group_prefix, ["READ"], "PREFIXED")

    # The workers' default trails (streamproc.audit.trail_topic), beside the topologies'
    # audit topics (for a deployment that sets STREAMPROC_AUDIT_TOPIC to one of those).
    trails = [trail_topic(a) for a in principals.worker.app_ids]
    if dw is not None and detect:
        trails += [trail_topic(a) for a in dw.app_ids]
    for oc in principals.on_call:
        for t in (*roles.containment, *roles.audit, *trails):
            out += _allow(oc.principal, "TOPIC", t, ["READ"])
        out += _allow(oc.principal, "GROUP", oc.group_prefix, ["READ"], "PREFIXED")

    return AclPlan(frozenset(out), principals.managed())


def _outputs(w: str, roles: TopicRoles) -> list[Binding]:
    """READ on the sources, WRITE (and CREATE, declared at start) on the outputs."""
    out: list[Binding] = []
    for t in roles.raw:
        out += _allow(w, "TOPIC", t, ["READ"])
    for t in (*roles.sanitized, *roles.containment, *roles.dead_letter):
        out += _allow(w, "TOPIC", t, ["WRITE", "CREATE"])
    for t in roles.lineage:
        out += _allow(w, "TOPIC", t, ["WRITE"])
    for t in roles.audit:
        # CREATE too: the audit log creates its topic at start if absent (audit.sinks), and
        # Kafka checks CREATE before answering "already exists".
        out += _allow(w, "TOPIC", t, ["WRITE", "CREATE"])
    return out


def _worker_bindings(worker: Worker, roles: TopicRoles) -> list[Binding]:
    w = worker.principal
    out = _outputs(w, roles)
    for app_id in worker.app_ids:
        out += _allow(w, "GROUP", app_id, ["READ"])
        out += _allow(w, "TOPIC", trail_topic(app_id), ["WRITE", "CREATE"])
        # The sanitize hot path's own group (streamproc.runtime.hotapp.hot_path_group).
        out += _allow(w, "GROUP", f"{app_id}-sanitize", ["READ"])
        out += _allow(w, "TOPIC", f"{app_id}-", ["CREATE", "READ", "WRITE"], "PREFIXED")
        if roles.exactly_once:
            # The hot path's transactional id is "<app_id>-<instance>" (WRITE implies DESCRIBE).
            out += _allow(w, "TRANSACTIONAL_ID", f"{app_id}-", ["WRITE"], "PREFIXED")
    return out


def _detect_worker_bindings(worker: Worker, detect: Sequence[Topology]) -> list[Binding]:
    w = worker.principal
    # No lineage: only sanitize flows emit lineage events (streamproc.runtime.wiring).
    out = _outputs(w, dataclasses.replace(TopicRoles.of(detect), lineage=()))
    for app_id in worker.app_ids:
        out += _allow(w, "GROUP", app_id, ["READ"])
        out += _allow(w, "TOPIC", trail_topic(app_id), ["WRITE", "CREATE"])
        for t in detect:
            # streamproc.runtime.detecthot.state_topic_name (the agent's table changelog).
            state = f"{app_id}-{t.name}-principals-changelog"
            out += _allow(w, "TOPIC", state, ["CREATE", "READ", "WRITE"])
    return out
