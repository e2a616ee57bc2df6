"""Read, diff and apply ACL bindings through confluent-kafka's ``AdminClient``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from streamproc.acl.bindings import Binding, Permission
from streamproc.acl.plan import AclPlan
from streamproc.audit import AuditKind
from streamproc.errors import AclError

if TYPE_CHECKING:
    from streamproc.audit import AuditLog

DEFAULT_TIMEOUT = 30.0


def admin_client(config: dict[str, Any]) -> Any:
    """An ``AdminClient`` for a librdkafka config (e.g. ``Settings().kafka_config()``)."""
    return AdminClient(config)


def _result(future: Any, what: str, timeout: float) -> Any:
    try:
        return future.result(timeout=timeout)
    except KafkaException as exc:
        err: Any = exc.args[0] if exc.args else None
        name = err.name() if hasattr(err, "name") else type(exc).__name__
        # Broker error strings name resources and codes, never record values or secrets.
        text = err.str() if hasattr(err, "str") else str(exc)
        raise AclError(f"{what} failed: {name}: {text}") from None
    except TimeoutError:
        raise AclError(f"{what} timed out after {timeout:.0f} s") from None


def describe(
    admin: Any,
    principal: str | None = None,
    *,
    permission: Permission | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> set[Binding]:
    """Bindings on the broker, optionally only one principal's / one permission's."""
    # None matches any name / principal / host (the stubs say str).
    anything: Any = None
    flt = AclBindingFilter(
        ResourceType.ANY,
        anything,
        ResourcePatternType.ANY,
        principal if principal is not None else anything,
        anything,
        AclOperation.ANY,
        AclPermissionType[permission] if permission else AclPermissionType.ANY,
    )
    acls = _result(admin.describe_acls(flt, request_timeout=timeout), "describe ACLs", timeout)
    return {Binding.from_kafka(a) for a in acls}


def create(admin: Any, bindings: Iterable[Binding], *, timeout: float = DEFAULT_TIMEOUT) -> None:
    todo = sorted(bindings)
    if not todo:
        return
    futures = admin.create_acls([b.to_kafka() for b in todo], request_timeout=timeout)
    for b, fut in zip(todo, futures.values(), strict=True):
        _result(fut, f"create ACL [{b}]", timeout)


def delete(admin: Any, bindings: Iterable[Binding], *, timeout: float = DEFAULT_TIMEOUT) -> None:
    todo = sorted(bindings)
    if not todo:
        return
    # A fully specified binding used as a filter matches exactly itself.
    futures = admin.delete_acls([b.to_filter() for b in todo], request_timeout=timeout)
    for b, fut in zip(todo, futures.values(), strict=True):
        _result(fut, f"delete ACL [{b}]", timeout)


@dataclass(frozen=True)
class AclDiff:
    """What ``apply`` does (or did): bindings to create, stale managed bindings to delete."""

    create: tuple[Binding, ...]
    delete: tuple[Binding, ...]
    unchanged: int

    @property
    def changes(self) -> int:
        return len(self.create) + len(self.delete)


def current_managed(
    admin: Any, managed: Iterable[str], *, timeout: float = DEFAULT_TIMEOUT
) -> set[Binding]:
    """ALLOW bindings of the managed principals. DENY bindings belong to containment."""
    found: set[Binding] = set()
    for principal in sorted(managed):
        found |= describe(admin, principal, permission="ALLOW", timeout=timeout)
    return found


def diff(plan: AclPlan, current: set[Binding]) -> AclDiff:
    """Plan vs. what the broker holds for the managed principals (ALLOW only)."""
    mine = {b for b in current if b.principal in plan.managed and b.permission == "ALLOW"}
    return AclDiff(
        create=tuple(sorted(plan.bindings - mine)),
        delete=tuple(sorted(mine - plan.bindings)),
        unchanged=len(plan.bindings & mine),
    )


def apply_plan(
    admin: Any,
    plan: AclPlan,
    *,
    dry_run: bool = False,
    audit: AuditLog | None = None,
    by: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> AclDiff:
    """Create missing bindings, delete stale managed ones; idempotent. Never touches DENY
    bindings or principals the plan does not manage."""
    d = diff(plan, current_managed(admin, plan.managed, timeout=timeout))
    if dry_run or not d.changes:
        return d
    create(admin, d.create, timeout=timeout)
    _record(audit, "create", d.create, by, "acl_apply")
    delete(admin, d.delete, timeout=timeout)
    _record(audit, "delete", d.delete, by, "acl_apply")
    return d


def _record(
    audit: AuditLog | None, action: str, bindings: Iterable[Binding], by: str | None, reason: str
) -> None:
    if audit is None:
        return
    for b in bindings:
        extra = {"by": by} if by else {}
        audit.append(
            AuditKind.ACL_CHANGE,
            action=action,
            principal=b.principal,
            resource_type=b.resource_type,
            resource=b.name,
            operation=b.operation,
            permission=b.permission,
            pattern_type=b.pattern,
            reason=reason,
            **extra,
        )
