"""Transform registry: action name -> transform class."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from streamproc.transforms.base import Transform

_REGISTRY: dict[str, type[Transform]] = {}

T = TypeVar("T", bound=type[Transform])


def register(cls: T) -> T:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"transform {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def get(name: str) -> type[Transform] | None:
    """The transform class for an action name, or None if unknown."""
    return _REGISTRY.get(name)


def registered() -> Mapping[str, type[Transform]]:
    """Every registered transform, by action name."""
    return dict(_REGISTRY)
