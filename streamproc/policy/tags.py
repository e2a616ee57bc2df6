"""Confluent Data Contract tags (``confluent:tags``) -> privacy annotations.

A mapping ``{tag: annotation}`` may come from the topology (``tag_actions``) or from a record's
own ``"privacy": {"tags": {...}}`` attribute (which wins, and applies to nested records too).
An annotation may be written in full (``{"action": "mask", "keep_last": 4}``) or as the bare
action name (``"drop"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamproc.errors import PolicyError

TAGS_ATTRIBUTE = "confluent:tags"

TagActions = Mapping[str, Mapping[str, Any]]


def normalize_annotation(raw: Any, where: str) -> dict[str, Any]:
    """An annotation as a dict with an ``action``; :class:`PolicyError` naming ``where``."""
    if isinstance(raw, str):
        return {"action": raw}
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{where}: a privacy annotation must be an object or an action name")
    if not isinstance(raw.get("action"), str):
        raise PolicyError(f"{where}: a privacy annotation needs an 'action'")
    return dict(raw)


def normalize_tag_actions(raw: Mapping[str, Any] | None, where: str) -> dict[str, dict[str, Any]]:
    """Validate a ``{tag: annotation}`` mapping."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{where}: tag actions must map tag names to annotations")
    out = {}
    for tag, ann in raw.items():
        if not isinstance(tag, str) or not tag:
            raise PolicyError(f"{where}: tag names must be non-empty strings")
        out[tag] = normalize_annotation(ann, f"{where}: tag {tag!r}")
    return out


def field_tags(field: Mapping[str, Any], where: str) -> tuple[str, ...]:
    raw = field.get(TAGS_ATTRIBUTE)
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
        raise PolicyError(f"{where}: '{TAGS_ATTRIBUTE}' must be a list of strings")
    return tuple(raw)


def annotation_from_tags(
    tags: tuple[str, ...], mapping: Mapping[str, dict[str, Any]], where: str
) -> tuple[dict[str, Any], str] | None:
    """``(annotation, tag)`` for the field's tags, None if no tag is mapped.

    Several mapped tags must agree; conflicting ones are an error (never a silent choice).
    """
    found = [(t, mapping[t]) for t in tags if t in mapping]
    if not found:
        return None
    first_tag, first = found[0]
    for tag, ann in found[1:]:
        if ann != first:
            raise PolicyError(
                f"{where}: tags {first_tag!r} and {tag!r} map to different actions; "
                "annotate the field explicitly"
            )
    return dict(first), first_tag
