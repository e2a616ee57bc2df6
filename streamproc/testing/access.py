"""Access-log sample data for the demo, tests and benchmarks: Avro framing of access events
and a staged exfiltration to inject into a normal trace.

Normal traffic comes from :mod:`streamproc.testing.access_traces` (JSON lines, ``ts`` in
epoch millis); :func:`staged_exfiltration` adds one incident of the kind on-call must hear
about: a principal with a history, at night, from an address it never used, exporting large volumes
of datasets it never touched.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_writer

from streamproc.avro.framing import crc64_fingerprint, frame_single_object
from streamproc.avro.schema import read_schema_json
from streamproc.detector.events import DAY_MS, HOUR_MS
from streamproc.examples import schema_path
from streamproc.testing.access_traces import TraceConfig, generate, write_jsonl

ACCESS_SCHEMA = schema_path("access_event.avsc")
CONTAINMENT_SCHEMA = schema_path("containment.avsc")

_FIELDS = ("event_id", "ts", "principal", "dataset", "action", "rows", "bytes", "source_ip")

HOUR = HOUR_MS
DAY = DAY_MS


def baseline_trace(out: Path, *, seed: int, principals: int, days: int) -> list[dict[str, Any]]:
    """A normal-traffic trace from :mod:`streamproc.testing.access_traces` (no incidents),
    written to ``out`` as JSON lines and returned as event dicts."""
    cfg = TraceConfig(seed=seed, n_principals=principals, days=days, incidents_per_kind=0)
    write_jsonl(generate(cfg), str(out))
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def load_schema(path: Path) -> Any:
    """A parsed Avro schema (fastavro)."""
    return parse_schema(read_schema_json(path)[0])


class AccessEncoder:
    """Access events (JSON-lines dicts) -> single-object framed Avro, key = principal."""

    def __init__(self, schema: Any | None = None) -> None:
        self.schema = schema if schema is not None else load_schema(ACCESS_SCHEMA)
        self._fp = crc64_fingerprint(self.schema)

    def encode(self, event: Mapping[str, Any]) -> bytes:
        rec = {name: event[name] for name in _FIELDS}
        rec["success"] = bool(event.get("success", True))
        buf = io.BytesIO()
        schemaless_writer(buf, self.schema, rec)
        return frame_single_object(self._fp, buf.getvalue())

    def key(self, event: Mapping[str, Any]) -> bytes:
        return str(event["principal"]).encode()


def staged_exfiltration(
    trace: Sequence[Mapping[str, Any]],
    principal: str,
    at_ms: int,
    *,
    n: int = 12,
    step_ms: int = 40_000,
    source_ip: str = "203.0.113.77",
    tag: str = "exfil",
) -> list[dict[str, Any]]:
    """``n`` EXPORT events by ``principal`` from ``at_ms`` on: datasets it never touched in
    ``trace`` (sensitive domains first), 100x-1000x its largest export, from ``source_ip``.

    Events carry ``label`` 1 and ``incident_id`` like the generator's incidents.
    """
    own = [e for e in trace if e["principal"] == principal]
    if not own:
        raise ValueError(f"principal {principal!r} has no events in the trace")
    seen = {str(e["dataset"]) for e in own}
    catalog = sorted({str(e["dataset"]) for e in trace} - seen)
    sensitive = [d for d in catalog if d.split(".")[0] in ("hr", "finance", "security", "crm")]
    targets = (sensitive + [d for d in catalog if d not in sensitive]) or sorted(seen)
    rows_max = max((int(e["rows"]) for e in own), default=1000) or 1000
    out = []
    for i in range(n):
        rows = rows_max * (100 + 80 * i)
        out.append(
            {
                "event_id": f"{tag}-{principal}-{i:03d}",
                "ts": at_ms + i * step_ms,
                "principal": principal,
                "dataset": targets[i % len(targets)],
                "action": "EXPORT",
                "rows": rows,
                "bytes": rows * 180,
                "source_ip": source_ip,
                "success": True,
                "label": 1,
                "incident_id": f"{tag}-{principal}",
                "incident_kind": "bulk_export",
            }
        )
    return out


def night_of(trace: Iterable[Mapping[str, Any]], day: int, hour: float = 2.5) -> int:
    """Epoch millis of ``hour`` o'clock on day ``day`` of ``trace`` (day 0 = first event's)."""
    t0 = min(int(e["ts"]) for e in trace)
    return (t0 // DAY + day) * DAY + int(hour * HOUR)


def with_events(
    trace: Sequence[Mapping[str, Any]], extra: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """``trace`` plus ``extra``, sorted by event time (stable)."""
    merged = [dict(e) for e in trace] + [dict(e) for e in extra]
    merged.sort(key=lambda e: int(e["ts"]))
    return merged
