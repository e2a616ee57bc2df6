"""One ACL binding as a frozen value, convertible to and from confluent-kafka's ``AclBinding``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

ResourceKind = Literal["TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID"]
PatternKind = Literal["LITERAL", "PREFIXED"]
Permission = Literal["ALLOW", "DENY"]
CLUSTER_NAME = "kafka-cluster"


def kafka_principal(name: str) -> str:
    """``alice`` -> ``User:alice``; a name that already has a type (``User:``...) is kept."""
    name = name.strip()
    return name if ":" in name else f"User:{name}"


@dataclass(frozen=True, order=True)
class Binding:
    """``principal`` may ``operation`` on ``resource_type``/``name`` (``pattern``) from ``host``."""

    principal: str
    resource_type: ResourceKind
    name: str
    pattern: PatternKind
    operation: str  # READ, WRITE, CREATE, DESCRIBE, ... (confluent_kafka.admin.AclOperation)
    permission: Permission = "ALLOW"
    host: str = "*"

    def __str__(self) -> str:
        pat = "" if self.pattern == "LITERAL" else f" ({self.pattern.lower()})"
        return (
            f"{self.permission:<5} {self.principal:<24} {self.operation:<8} "
            f"{self.resource_type}:{self.name}{pat}"
        )

    def to_kafka(self) -> Any:
        """The confluent-kafka ``AclBinding``."""
        return self._build(AclBinding)

    def to_filter(self) -> Any:
        """An ``AclBindingFilter`` matching exactly this binding (for ``delete_acls``)."""
        return self._build(AclBindingFilter)

    def _build(self, cls: Any) -> Any:
        return cls(
            ResourceType[self.resource_type],
            self.name,
            ResourcePatternType[self.pattern],
            self.principal,
            self.host,
            AclOperation[self.operation],
            AclPermissionType[self.permission],
        )

    @classmethod
    def from_kafka(cls, acl: Any) -> Binding:
        return cls(
            principal=acl.principal,
            resource_type=acl.restype.name,
            name=acl.name,
            pattern=acl.resource_pattern_type.name,
            operation=acl.operation.name,
            permission=acl.permission_type.name,
            host=acl.host,
        )

    def as_dict(self) -> dict[str, str]:
        return {
            "principal": self.principal,
            "resource_type": self.resource_type,
            "name": self.name,
            "pattern": self.pattern,
            "operation": self.operation,
            "permission": self.permission,
            "host": self.host,
        }
