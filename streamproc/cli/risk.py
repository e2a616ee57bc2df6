"""``streamproc risk``: how re-identifiable is a file or the tail of a topic?

    streamproc risk --schema SCHEMA.avsc IN.avro [--quasi F1,F2] [--sensitive F] [--k 5] [--json]
    streamproc risk --schema SCHEMA.avsc --topic T [--broker B] [--window N] [--quasi ...] [--json]

Quasi-identifiers default to the fields of class ``quasi`` in ``--schema`` (annotated or
derived); ``--quasi`` overrides. A container file is read with its own writer schema, so a
raw file and a sanitized one are measured alike; quasi-identifiers the policy dropped are
listed as absent. A topic is read over its last ``--window`` records across partitions
(read_committed), each decoded with ``--schema`` or, for a sanitized topic, the schema it
derives. Output holds counts, shares and field names, never a value.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro

from streamproc.avro.codec import Decoder, WriterSchemas
from streamproc.avro.container import container_records
from streamproc.avro.schema import parse, read_schema_json
from streamproc.cli._topics import read_topic
from streamproc.config import load_settings
from streamproc.errors import DecodeError, PolicyError, SchemaError
from streamproc.pipeline.build import registry_client
from streamproc.policy import derive_schema
from streamproc.risk import RiskError, RiskReport, field_paths, measure, quasi_fields

log = logging.getLogger("streamproc.risk")

DEFAULT_WINDOW = 100_000
FRAMINGS = ("single-object", "confluent", "auto")


def register(sub: Any) -> None:
    p = sub.add_parser("risk", help="measure re-identification risk (k-anonymity, l-diversity)")
    p.add_argument("--schema", required=True, type=Path, help="annotated or derived .avsc")
    p.add_argument("input", nargs="?", type=Path, metavar="IN.avro", help="container file")
    p.add_argument("--topic", help="measure the last --window records of this topic instead")
    p.add_argument("--broker", help="bootstrap servers (default STREAMPROC_BROKER)")
    p.add_argument(
        "--window", type=int, default=DEFAULT_WINDOW, help="newest records read from --topic"
    )
    p.add_argument("--framing", choices=FRAMINGS, default="single-object", help="of --topic")
    p.add_argument("--registry", help="schema registry URL for confluent framing")
    p.add_argument(
        "--history",
        type=Path,
        action="append",
        default=[],
        help="older writer schema of --topic records (repeatable, as a topology's history)",
    )
    p.add_argument("--quasi", help="comma-separated field paths (default: class quasi)")
    p.add_argument("--sensitive", help="field path of the sensitive value (adds l-diversity)")
    p.add_argument("--k", type=int, default=5, help="class size counted as safe (default 5)")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument("--fail-below-k", action="store_true", help="exit 1 when k_min < k")
    p.set_defaults(func=run)


@dataclass
class Source:
    """Records to measure, the schema they are read with and what was skipped."""

    name: str  # file path or topic name
    schema_label: str
    paths: list[str]  # field paths of the records
    records: Iterable[Mapping[str, Any]]
    undecodable: int = 0  # counted while the records are read


def run(args: argparse.Namespace) -> int:
    if (args.input is None) == (args.topic is None):
        raise RiskError("give either IN.avro or --topic")
    if args.window < 1:
        raise RiskError(f"--window must be at least 1 (got {args.window})")
    schema_json, label = read_schema_json(args.schema)
    if args.input is not None:
        try:
            fin = args.input.open("rb")
        except OSError as exc:
            raise SchemaError(f"input {args.input}: cannot be read ({exc.strerror})") from None
        with fin:
            return _report(args, schema_json, label, _file_source(args.input, fin))
    return _report(args, schema_json, label, _topic_source(args, schema_json, label))


def _report(args: argparse.Namespace, schema_json: Any, label: str, source: Source) -> int:
    quasi, absent = _quasi(args.quasi, schema_json, label, source)
    sensitive = args.sensitive
    if sensitive is not None and sensitive not in source.paths:
        raise RiskError(f"--sensitive: field {sensitive} is not in schema {source.schema_label}")
    report = measure(source.records, quasi, sensitive=sensitive, k=args.k)
    if args.json:
        doc = {
            "source": source.name,
            **report.to_json(),
            "absent_quasi_identifiers": absent,
            "undecodable": source.undecodable,
        }
        print(json.dumps(doc, indent=2))
    else:
        print("\n".join(render(report, source.name, absent, source.undecodable)))
    if args.fail_below_k and report.k_min is not None and report.k_min < args.k:
        return 1
    return 0


def _quasi(
    given: str | None, schema_json: Any, label: str, source: Source
) -> tuple[list[str], list[str]]:
    """``(quasi-identifiers to measure, declared ones absent from the records)``."""
    if given is not None:
        quasi = [q.strip() for q in given.split(",") if q.strip()]
        for q in quasi:
            if q not in source.paths:
                raise RiskError(f"--quasi: field {q} is not in schema {source.schema_label}")
        return quasi, []
    declared = quasi_fields(schema_json)
    if not declared:
        raise RiskError(f"schema {label} marks no field as class quasi; name them with --quasi")
    present = [q for q in declared if q in source.paths]
    if not present:
        raise RiskError(
            f"none of the quasi-identifiers of schema {label} ({', '.join(declared)}) is in "
            f"{source.name}; name them with --quasi"
        )
    return present, [q for q in declared if q not in present]


# --- sources ---------------------------------------------------------------------------------


def _file_source(path: Path, fin: Any) -> Source:
    try:
        reader = fastavro.reader(fin)
        writer_json = json.loads(reader.metadata["avro.schema"])
    except (ValueError, EOFError, TypeError, KeyError):
        raise DecodeError(f"input {path}: not an Avro object container file") from None
    label = f"{writer_json.get('name', '?')} (writer schema of {path})"
    return Source(str(path), label, field_paths(writer_json), _file_records(reader, path))


def _file_records(reader: Any, path: Path) -> Iterator[dict[str, Any]]:
    return container_records(reader, path)


def _topic_source(args: argparse.Namespace, schema_json: Any, label: str) -> Source:
    settings = load_settings(broker=args.broker)
    payloads = read_tail(settings.kafka_config(), args.topic, args.window)
    registry = registry_client(args.registry or settings.schema_registry_url)
    history = [parse(*read_schema_json(h)) for h in args.history]
    candidates = [(label, schema_json, history)]
    derived = _derived(args.schema)
    if derived is not None:
        candidates.append((f"{label} (derived)", derived, []))
    decoders = [
        (lab, sj, Decoder(WriterSchemas(parse(sj, lab), old, registry=registry), args.framing))
        for lab, sj, old in candidates
    ]
    # The first decodable record says which schema the topic carries (raw or sanitized).
    chosen = None
    for payload in payloads:
        chosen = next((d for d in decoders if _decodes(d[2], payload)), None)
        if chosen is not None:
            break
    if chosen is None and payloads:
        # Nothing decodes (wrong schema, framing or registry): a report of 0 records would
        # read as "no risk"; fail instead.
        raise RiskError(
            f"topic {args.topic}: none of its last {len(payloads)} records decodes with schema "
            f"{label} (or its derived schema) and framing {args.framing}"
        )
    schema_label, chosen_json, decoder = chosen or decoders[0]
    source = Source(f"topic {args.topic}", schema_label, field_paths(chosen_json), ())
    source.records = _decoded(decoder, payloads, source)
    return source


def _derived(schema_path: Path) -> Any | None:
    """The derived schema of an annotated one (None when it has no annotations to derive)."""
    try:
        plan = derive_schema(schema_path)
    except (PolicyError, SchemaError):
        return None
    return plan.derived_schema_json


def _decodes(decoder: Decoder, payload: bytes | None) -> bool:
    if payload is None:
        return False
    try:
        decoder.decode(payload)
    except DecodeError:
        return False
    return True


def _decoded(
    decoder: Decoder, payloads: Sequence[bytes | None], source: Source
) -> Iterator[dict[str, Any]]:
    """The records that decode; tombstones and undecodable payloads are only counted."""
    for payload in payloads:
        if payload is None:
            source.undecodable += 1
            continue
        try:
            record, _ = decoder.decode(payload)
        except DecodeError:
            source.undecodable += 1
            continue
        yield record


def read_tail(conf: Mapping[str, Any], topic: str, window: int) -> list[bytes | None]:
    """The values of the last ``window`` records of ``topic`` over all partitions, oldest
    first by timestamp (each partition read from ``end - window``; read_committed)."""
    got = [
        (m.timestamp()[1], int(m.partition() or 0), int(m.offset() or 0), m.value())
        for m in read_topic(conf, topic, last=window, purpose="risk")
    ]
    got.sort(key=lambda t: t[:3])
    return [value for *_, value in got[-window:]]


# --- output ----------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return f"{100 * x:6.2f} %"


def render(report: RiskReport, source: str, absent: Sequence[str], undecodable: int) -> list[str]:
    """The readable table: the headline risks, then class sizes and fields, riskiest first."""
    r = report
    n = r.records
    lines = [
        f"re-identification risk of {n:,} records from {source}",
        f"quasi-identifiers: {', '.join(r.quasi_identifiers)}   (k = {r.k})",
    ]
    if absent:
        lines.append(f"absent from the records (dropped): {', '.join(absent)}")
    rows = [
        (f"records in classes smaller than {r.k}", _pct(r.below_k_share)),
        ("records unique on the quasi-identifiers", _pct(r.unique_share)),
        ("smallest class (k_min)", f"{r.k_min if r.k_min is not None else '-':>8}"),
        ("highest re-identification risk (1/k_min)", _pct(r.max_risk)),
        ("mean re-identification risk", _pct(r.mean_risk)),
        ("classes", f"{r.classes:>8,}"),
        ("suppressed (every quasi-identifier null)", f"{r.suppressed:>8,}"),
    ]
    if r.sensitive is not None:
        rows.append((f"l-diversity of {r.sensitive} (l_min)", f"{r.l_min or '-':>8}"))
        rows.append(("classes with one sensitive value", f"{r.below_l_classes or 0:>8,}"))
    if undecodable:
        rows.append(("records skipped (did not decode)", f"{undecodable:>8,}"))
    lines += [f"  {name:<42} {value}" for name, value in rows]
    if r.size_histogram:
        lines += [
            "",
            "class sizes, smallest first:",
            f"  {'size':<8} {'classes':>9} {'records':>9} {'share':>9}",
        ]
        lines += [
            f"  {b.label:<8} {b.classes:>9,} {b.records:>9,} {_pct(b.records / n)}"
            for b in r.size_histogram
        ]
    if r.contributions:
        lines += ["", "without each quasi-identifier, the one adding most risk first:"]
        lines.append(f"  {'field':<24} {'unique':>9} {'below k':>9} {'k_min':>6}")
        lines += [
            f"  {c.field:<24} {_pct(c.unique_share_without)} {_pct(c.below_k_share_without)} "
            f"{c.k_min_without if c.k_min_without is not None else '-':>6}"
            for c in r.contributions
        ]
    return lines
