"""Privacy transforms, one module per action; importing this package registers them all."""

from __future__ import annotations

from streamproc.transforms import (  # noqa: F401  (imported to register)
    date_shift,
    drop,
    encrypt,
    generalize,
    keep,
    mask,
    noise,
    pseudonymize,
    redact,
)
from streamproc.transforms.base import (
    FieldContext,
    Params,
    Resources,
    Transform,
    ValueType,
)
from streamproc.transforms.registry import get, register, registered

__all__ = [
    "FieldContext",
    "Params",
    "Resources",
    "Transform",
    "ValueType",
    "get",
    "register",
    "registered",
]
