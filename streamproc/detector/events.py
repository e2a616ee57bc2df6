"""Access events: one parser for JSON lines (``ts`` in epoch millis) and Avro dicts.

An access event is metadata about an access (who, what, how much, from where), never the
data that was accessed. Errors name the field, never its value.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from streamproc.errors import DetectorError, RecordError

ACTIONS: tuple[str, ...] = ("READ", "WRITE", "EXPORT", "DELETE", "ADMIN")
_ACTION_SET = frozenset(ACTIONS)

#: Event time is epoch milliseconds (UTC); the detector's one copy of these units.
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS


def is_weekend(ts: int) -> bool:
    """True for Saturday and Sunday (UTC) of an epoch-millis time."""
    return ((ts // DAY_MS) + 3) % 7 >= 5  # 1970-01-01 was a Thursday (Monday = 0)


def namespace_of(dataset: str) -> str:
    """The namespace of a dataset name: the text before its last dot (``hr.salaries`` ->
    ``hr``, ``db.schema.table`` -> ``db.schema``); empty for a name without a dot."""
    return dataset.rpartition(".")[0]


@dataclass(frozen=True, slots=True)
class AccessEvent:
    """One access to a dataset, as on the access-log topic (``schemas/access_event.avsc``)."""

    event_id: str
    ts: int  # event time, epoch milliseconds
    principal: str
    dataset: str
    action: str  # one of ACTIONS
    rows: int
    bytes: int
    source_ip: str
    success: bool

    def to_avro_dict(self) -> dict[str, Any]:
        """Dict for fastavro; ``ts`` as epoch millis (fastavro takes int for timestamp-millis)."""
        return {
            "event_id": self.event_id,
            "ts": self.ts,
            "principal": self.principal,
            "dataset": self.dataset,
            "action": self.action,
            "rows": self.rows,
            "bytes": self.bytes,
            "source_ip": self.source_ip,
            "success": self.success,
        }


def _bad(field: str, what: str) -> RecordError:
    return RecordError(f"access event: field {field!r} {what}", reason="bad_access_event")


def _ts_millis(value: Any) -> int:
    if isinstance(value, bool):
        raise _bad("ts", "is not a timestamp")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, datetime):
        # fastavro decodes timestamp-millis into an aware datetime
        if value.tzinfo is None:
            raise _bad("ts", "is a naive datetime")
        return round(value.timestamp() * 1000)
    raise _bad("ts", "is not epoch millis or a datetime")


def parse_event(obj: Mapping[str, Any]) -> AccessEvent:
    """Build an :class:`AccessEvent` from a JSON-lines dict or an Avro-decoded dict.

    Extra keys (labels, incident ids) are ignored. Raises :class:`RecordError`
    (reason ``bad_access_event``) naming the offending field.
    """
    try:
        event_id = obj["event_id"]
        ts = _ts_millis(obj["ts"])
        principal = obj["principal"]
        dataset = obj["dataset"]
        action = obj["action"]
        rows = obj["rows"]
        nbytes = obj["bytes"]
        source_ip = obj["source_ip"]
        success = obj["success"]
    except KeyError as exc:
        raise _bad(str(exc.args[0]), "is missing") from None
    except TypeError:
        raise RecordError("access event is not a mapping", reason="bad_access_event") from None
    for name, val in (
        ("event_id", event_id),
        ("principal", principal),
        ("dataset", dataset),
        ("source_ip", source_ip),
    ):
        if not isinstance(val, str):
            raise _bad(name, "is not a string")
    if action not in _ACTION_SET:
        raise _bad("action", f"is not one of {', '.join(ACTIONS)}")
    for name, val in (("rows", rows), ("bytes", nbytes)):
        if not isinstance(val, int) or isinstance(val, bool) or val < 0:
            raise _bad(name, "is not a non-negative integer")
    if not isinstance(success, bool):
        raise _bad("success", "is not a boolean")
    return AccessEvent(event_id, ts, principal, dataset, action, rows, nbytes, source_ip, success)


def iter_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Dicts of a JSON-lines file (blank lines skipped); errors name the file and line."""
    p = Path(path)
    try:
        fh = p.open(encoding="utf-8")
    except OSError as exc:
        raise DetectorError(f"cannot read events file {p}: {exc.strerror}") from None
    with fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                raise DetectorError(f"{p}:{lineno}: not a JSON object") from None
            if not isinstance(obj, dict):
                raise DetectorError(f"{p}:{lineno}: not a JSON object")
            yield obj


def read_events(path: str | Path) -> list[AccessEvent]:
    """All events of a JSON-lines file, in file order."""
    out = []
    for lineno, obj in enumerate(iter_jsonl(path), 1):
        try:
            out.append(parse_event(obj))
        except RecordError as exc:
            raise DetectorError(f"{path}: event #{lineno}: {exc}") from None
    return out
