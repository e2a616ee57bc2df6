"""``pseudonymize``: keyed HMAC-SHA256 pseudonym ``ps<version>:<22 base64url chars>``.

Same input -> same pseudonym under one key version and domain. The domain defaults to the
field path, so two fields only link when they share an explicit ``domain``. 128 bits of the
MAC are kept: collisions are negligible far beyond any topic's cardinality.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any, ClassVar

from streamproc.transforms import base
from streamproc.transforms.base import (
    FieldContext,
    Params,
    Resources,
    Transform,
    ValueFn,
    ValueType,
)
from streamproc.transforms.codec import b64url, canonical
from streamproc.transforms.registry import register


@register
@dataclass(frozen=True)
class Pseudonymize(Transform):
    name: ClassVar[str] = "pseudonymize"
    kinds: ClassVar[frozenset[str]] = frozenset(
        {base.STRING, base.UUID, base.BYTES, base.FIXED, base.ENUM, base.INTEGER, base.DECIMAL}
    )
    key: str = "default"
    domain: str = ""

    @classmethod
    def from_params(cls, params: Params, vtype: ValueType, ctx: FieldContext) -> Pseudonymize:
        base.check_kind(cls, vtype, ctx)
        key = params.get_str("key", "default")
        domain = params.get_str("domain", ctx.path)
        params.done()
        return cls(key=key, domain=domain)

    @property
    def key_name(self) -> str | None:
        return self.key

    def output_type(self, vtype: ValueType) -> Any:
        return "string"

    def bind(self, vtype: ValueType, ctx: FieldContext, res: Resources) -> ValueFn:
        keyring = base.require_key(res, self.key, ctx)
        version, key = keyring.subkey(self.key, "pseudonymize")
        prefix = b"streamproc/ps\x00" + self.domain.encode("utf-8") + b"\x00"
        head = f"ps{version}:"
        digest, b64 = hmac.digest, b64url

        kind = vtype.kind

        if kind == base.STRING or kind == base.ENUM:
            string_prefix = prefix + b"s"

            def pseudonymize_str(value: str) -> str:
                mac = digest(key, string_prefix + value.encode("utf-8"), "sha256")
                return head + b64(mac[:16])[:22].decode("ascii")

            return pseudonymize_str

        def pseudonymize(value: Any) -> str:
            mac = digest(key, prefix + canonical(value), "sha256")
            return head + b64(mac[:16])[:22].decode("ascii")

        return pseudonymize
