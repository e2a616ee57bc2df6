"""The record-level ``privacy`` annotation (k, l, sensitive fields, delay, suppression budget).

>>> parse_privacy({"k": 5, "l": 2, "sensitive": ["diagnosis_code"]}, schema_file="s.avsc")
PrivacySpec(k=5, l=2, sensitive=('diagnosis_code',), max_delay_ms=60000, max_suppressed=0.05)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamproc.errors import PolicyError

_KEYS = ("k", "l", "sensitive", "max_delay_ms", "max_suppressed")


@dataclass(frozen=True)
class PrivacySpec:
    """What a schema owner bounds: every published QI combination has >= k records and >= l
    distinct values of each sensitive field; a stream record waits at most ``max_delay_ms``;
    a suppressed share above ``max_suppressed`` is a warning (and a metric), not an error."""

    k: int
    l: int = 1  # noqa: E741 - the letter the literature uses
    sensitive: tuple[str, ...] = ()
    max_delay_ms: int = 60_000
    max_suppressed: float = 0.05


def _int(raw: Any, name: str, minimum: int, where: str) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < minimum:
        raise PolicyError(f"{where}: privacy {name!r} must be an integer >= {minimum}")
    return raw


def parse_privacy(
    annotation: Mapping[str, Any], *, schema_file: str, path: str = ""
) -> PrivacySpec:
    """Validate a record schema's ``privacy`` attribute once (errors name the schema path)."""
    where = f"schema {schema_file}: record {path or '<root>'}"
    unknown = sorted(set(annotation) - set(_KEYS))
    if unknown:
        raise PolicyError(f"{where}: privacy: unknown key(s) {', '.join(unknown)}")
    if "k" not in annotation:
        raise PolicyError(f"{where}: privacy needs 'k'")
    k = _int(annotation["k"], "k", 2, where)
    l_div = _int(annotation.get("l", 1), "l", 1, where)
    sens = annotation.get("sensitive", [])
    if not isinstance(sens, list) or not all(isinstance(s, str) and s for s in sens):
        raise PolicyError(f"{where}: privacy 'sensitive' must be a list of field paths")
    if l_div > 1 and not sens:
        raise PolicyError(f"{where}: privacy 'l' > 1 needs 'sensitive' fields")
    delay = _int(annotation.get("max_delay_ms", 60_000), "max_delay_ms", 0, where)
    share = annotation.get("max_suppressed", 0.05)
    if not isinstance(share, int | float) or isinstance(share, bool) or not 0 <= share <= 1:
        raise PolicyError(f"{where}: privacy 'max_suppressed' must be a share in [0, 1]")
    return PrivacySpec(
        k=k, l=l_div, sensitive=tuple(sens), max_delay_ms=delay, max_suppressed=float(share)
    )
