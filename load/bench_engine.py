"""Engine benchmark: records/s of the batch sanitize path against the codec and presidio.

Run: ``.venv/bin/python load/bench_engine.py [--records N] [--repeat R]``

For two record shapes (``schemas/customer_profile.avsc``: 15 fields, 6 transformed, 3 dropped;
``schemas/claims.avsc``: nested records, arrays, maps, nullable unions, logical types) it
writes N records to an Avro container file and times, best of R runs:

- ``fastavro passthrough``: read the file and write it back (the codec's limit);
- ``streamproc sanitize``: the ``streamproc sanitize`` path (read with schema resolution to
  the annotated reader schema, compiled plan, write with the derived schema);
- ``plan.sanitize only``: the engine alone over records already in memory;
- ``presidio-structured``: read, ``StructuredEngine`` with ``JsonDataProcessor`` doing the
  closest equivalent operators per record (hash, mask, AES encrypt, redact, custom lambdas for
  generalize/date shift/noise), write (skipped if presidio-structured is not installed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fastavro

from streamproc.cli.sanitize import sanitize_file, sanitize_file_parallel
from streamproc.keys import Keyring
from streamproc.policy import Plan, compile_plan

ROOT = Path(__file__).resolve().parents[1]

SCHEMAS = ROOT / "schemas"
FIRST = ["Ann", "Bob", "Chen", "Dana", "Eli", "Fatima", "Goran", "Hana"]
LAST = ["Lee", "Okafor", "Schmidt", "Garcia", "Novak", "Tanaka"]
CITIES = [("London", "SW1A 1AA"), ("Leeds", "LS1 4AP"), ("York", "YO1 7HH"), ("Bath", "BA1 1LT")]


def profile_records(n: int, rnd: random.Random) -> Iterator[dict[str, Any]]:
    for i in range(n):
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        city, pc = rnd.choice(CITIES)
        yield {
            "customer_id": f"C{i:09d}",
            "full_name": f"{first} {last}",
            "email": f"{first.lower()}.{last.lower()}{i}@example.com",
            "phone": None if i % 5 == 0 else f"+44 7700 {rnd.randrange(10**6):06d}",
            "national_id": f"QQ{rnd.randrange(10**6):06d}C",
            "birth_date": dt.date(
                1940 + rnd.randrange(65), 1 + rnd.randrange(12), 1 + rnd.randrange(28)
            ),
            "postcode": pc,
            "city": city,
            "country": "GB",
            "gender": rnd.choice(["FEMALE", "MALE", "OTHER", "UNKNOWN"]),
            "annual_income": round(rnd.uniform(15_000, 150_000), 2),
            "credit_score": rnd.randrange(300, 850),
            "signup_ts": dt.datetime(2015, 1, 1, tzinfo=dt.UTC)
            + dt.timedelta(seconds=rnd.randrange(10**8)),
            "marketing_opt_in": rnd.random() < 0.4,
            "segment": rnd.choice([None, "BASIC", "SILVER", "GOLD", "PLATINUM"]),
        }


def claim_records(n: int, rnd: random.Random) -> Iterator[dict[str, Any]]:
    for i in range(n):
        city, pc = rnd.choice(CITIES)
        address = {"street": f"{rnd.randrange(200)} High St", "city": city, "postcode": pc}
        lines = [
            {
                "line_no": k + 1,
                "procedure_code": f"99{rnd.randrange(200, 500)}",
                "diagnosis_codes": [f"E{rnd.randrange(10, 99)}.{rnd.randrange(10)}"],
                "service_date": dt.date(2024, 1 + rnd.randrange(12), 1 + rnd.randrange(28)),
                "amount": decimal.Decimal(rnd.randrange(1000, 100000)) / 100,
                "notes": None if rnd.random() < 0.7 else "follow-up requested",
            }
            for k in range(1 + rnd.randrange(3))
        ]
        yield {
            "claim_id": uuid.UUID(int=rnd.getrandbits(128)),
            "patient_id": f"C{rnd.randrange(10**6):09d}",
            "member_email": None if i % 3 else f"member{i}@example.com",
            "patient": {
                "name": f"{rnd.choice(FIRST)} {rnd.choice(LAST)}",
                "date_of_birth": dt.date(1940 + rnd.randrange(65), 1 + rnd.randrange(12), 1),
                "address": address if i % 4 else None,
                "phone_numbers": [f"+44 7700 {rnd.randrange(10**6):06d}"],
            },
            "provider": {
                "npi": f"{rnd.randrange(10**10):010d}",
                "name": "Dr Who",
                "specialty": "GP",
            },
            "billing_address": address if i % 2 else None,
            "submitted_at": dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
            + dt.timedelta(seconds=rnd.randrange(10**7)),
            "lines": lines,
            "total_amount": sum((ln["amount"] for ln in lines), decimal.Decimal(0)),
            "status": rnd.choice(["SUBMITTED", "APPROVED", "DENIED", "PAID"]),
            "adjuster_notes": {} if i % 2 else {"adjuster": "called the member"},
            "risk_score": None if i % 2 else rnd.random(),
        }


# --- variants -----------------------------------------------------------------------------


def passthrough(src: Path, dst: Path) -> int:
    with src.open("rb") as fin, dst.open("wb") as fout:
        reader = fastavro.reader(fin)
        count = [0]

        def counted() -> Iterator[Any]:
            for r in reader:
                count[0] += 1
                yield r

        fastavro.writer(fout, reader.writer_schema, counted(), codec="null")
    return count[0]


def streamproc_sanitize(plan: Plan) -> Callable[[Path, Path], int]:
    def run(src: Path, dst: Path) -> int:
        return sanitize_file(plan, src, dst, codec="null")

    return run


def streamproc_sanitize_parallel(
    plan: Plan, schema: Path, keyring_path: Path, workers: int
) -> Callable[[Path, Path], int]:
    def run(src: Path, dst: Path) -> int:
        return sanitize_file_parallel(
            plan, src, dst, workers=workers, keyring=keyring_path, codec="null"
        )

    return run


def engine_only(plan: Plan, records: list[dict[str, Any]]) -> Callable[[Path, Path], int]:
    def run(src: Path, dst: Path) -> int:
        sanitize = plan.sanitize
        for r in records:
            sanitize(r)
        return len(records)

    return run


def presidio_variant(plan: Plan) -> Callable[[Path, Path], int] | None:
    try:
        from presidio_anonymizer.entities import OperatorConfig
        from presidio_structured import StructuredEngine
        from presidio_structured.config import StructuredAnalysis
        from presidio_structured.data.data_processors import JsonDataProcessor
    except ImportError:
        return None

    import base64

    key = base64.b64encode(os.urandom(24)).decode()[:32]  # AES-256 key as 32 chars
    rnd = random.Random(0)
    leaf_kinds = _leaf_kinds(plan.source_schema_json)
    mapping: dict[str, str] = {}
    operators: dict[str, Any] = {}
    for item in plan.lineage:
        if item.origin in ("container", "unannotated") or item.action == "keep":
            continue
        path = item.source_path.replace("[]", "")
        if "{}" in path or leaf_kinds.get(path) in ("array", "map"):
            continue  # presidio-structured cannot operate on arrays/maps of values
        entity = "E_" + path.replace(".", "_")
        mapping[path] = entity
        operators[entity] = _presidio_operator(
            item.action, item.transform, key, rnd, OperatorConfig
        )
    analysis = StructuredAnalysis(entity_mapping=mapping)
    engine = StructuredEngine(data_processor=JsonDataProcessor())
    out_schema = fastavro.parse_schema(_stringified(plan.source_schema_json, set(mapping)))

    def run(src: Path, dst: Path) -> int:
        with src.open("rb") as fin, dst.open("wb") as fout:
            reader = fastavro.reader(fin)
            count = [0]

            def records() -> Iterator[Any]:
                for r in reader:
                    count[0] += 1
                    yield engine.anonymize(r, analysis, dict(operators))

            fastavro.writer(fout, out_schema, records(), codec="null")
        return count[0]

    return run


def _presidio_operator(action: str, desc: str, key: str, rnd: random.Random, cfg: Any) -> Any:
    if action == "pseudonymize":
        return cfg("hash", {"hash_type": "sha256", "salt": "bench-salt-0123456789"})
    if action == "mask":
        return cfg("mask", {"masking_char": "*", "chars_to_mask": 12, "from_end": True})
    if action == "encrypt":
        return cfg("encrypt", {"key": key})
    if action in ("drop", "redact"):
        return cfg("redact", {})
    if action == "generalize":
        if "to=" in desc:
            return cfg("custom", {"lambda": lambda v: str(v.year)})
        if "prefix=" in desc:
            return cfg("custom", {"lambda": lambda v: str(v)[:3]})
        return cfg("custom", {"lambda": lambda v: str(int(v // 10 * 10))})
    if action == "date_shift":
        return cfg("custom", {"lambda": lambda v: str(v + dt.timedelta(days=7))})
    if action == "noise":  # presidio has no DP mechanism: a plain float sampler stands in
        return cfg("custom", {"lambda": lambda v: str(v + rnd.gauss(0, 1000.0))})
    raise ValueError(action)


def _leaf_kinds(schema: dict[str, Any]) -> dict[str, str]:
    """Dotted field path (arrays of records flattened) -> 'array' | 'map' | 'other'."""
    named: dict[str, Any] = {}
    out: dict[str, str] = {}

    def walk(t: Any, path: str) -> None:
        if isinstance(t, str) and t in named:
            t = named[t]
        if isinstance(t, list):
            for b in t:
                walk(b, path)
            return
        if isinstance(t, dict) and t.get("type") == "record":
            named.setdefault(t["name"], t)
            for f in t["fields"]:
                sub = f"{path}.{f['name']}" if path else f["name"]
                ft = f["type"]
                nonnull = [b for b in ft if b != "null"] if isinstance(ft, list) else [ft]
                kind = nonnull[0].get("type") if isinstance(nonnull[0], dict) else None
                is_rec_array = (
                    kind == "array"
                    and isinstance(nonnull[0]["items"], dict)
                    and (nonnull[0]["items"].get("type") == "record")
                )
                out[sub] = kind if kind in ("array", "map") and not is_rec_array else "other"
                walk(nonnull[0]["items"] if is_rec_array else ft, sub)

    walk(schema, "")
    return out


def _stringified(schema: dict[str, Any], paths: set[str]) -> dict[str, Any]:
    """The source schema with every field presidio rewrites typed as (nullable) string."""
    seen: set[str] = set()

    def typ(t: Any, path: str, transformed: bool) -> Any:
        if isinstance(t, list):
            return [typ(b, path, transformed) for b in t]
        if isinstance(t, dict) and t.get("type") == "array":
            return {"type": "array", "items": typ(t["items"], path, transformed)}
        if isinstance(t, dict) and t.get("type") == "map":
            return {"type": "map", "values": typ(t["values"], path, transformed)}
        if isinstance(t, dict) and t.get("type") == "record":
            if t["name"] in seen:
                return t["name"]
            seen.add(t["name"])
            return {**t, "fields": [fld(f, path) for f in t["fields"]]}
        if isinstance(t, str) and t not in ("null",) and t[0].isupper():
            return t  # a named type already defined
        if t == "null":
            return t
        return "string" if transformed else t

    def fld(f: dict[str, Any], prefix: str) -> dict[str, Any]:
        path = f"{prefix}.{f['name']}" if prefix else f["name"]
        out = {k: v for k, v in f.items() if k != "default"}
        out["type"] = typ(f["type"], path, path in paths)
        return out

    return {**schema, "fields": [fld(f, "") for f in schema["fields"]]}


# --- harness ------------------------------------------------------------------------------


def timed(fn: Callable[[Path, Path], int], src: Path, dst: Path, repeat: int) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        count = fn(src, dst)
        best = min(best, time.perf_counter() - start)
    return count / best, count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-presidio", action="store_true")
    args = parser.parse_args(argv)
    keyring = Keyring.generate()
    rows: list[tuple[str, str, float, int]] = []
    workers = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        keyring_path = Path(tmp) / "keyring.json"
        keyring.save(keyring_path)
        for label, schema_file, gen in (
            (
                "customer_profile (15 fields, 6 transformed)",
                "customer_profile.avsc",
                profile_records,
            ),
            ("claims (nested)", "claims.avsc", claim_records),
        ):
            plan = compile_plan(SCHEMAS / schema_file, keyring)
            records = list(gen(args.records, random.Random(1)))
            src = Path(tmp) / f"{schema_file}.avro"
            with src.open("wb") as fh:
                fastavro.writer(fh, plan.source_schema, records, codec="null")
            dst = Path(tmp) / "out.avro"
            variants: list[tuple[str, Callable[[Path, Path], int] | None]] = [
                ("fastavro read+write passthrough", passthrough),
                ("streamproc sanitize --workers 1 (inline)", streamproc_sanitize(plan)),
                (
                    f"streamproc sanitize (default: --workers {workers})",
                    streamproc_sanitize_parallel(
                        plan, SCHEMAS / schema_file, keyring_path, workers
                    ),
                ),
                ("plan.sanitize only (in memory)", engine_only(plan, records)),
                (
                    "presidio-structured (read+anonymize+write)",
                    None if args.no_presidio else presidio_variant(plan),
                ),
            ]
            for name, fn in variants:
                if fn is None:
                    rows.append((label, name + " [not installed/skipped]", float("nan"), 0))
                    continue
                rate, count = timed(fn, src, dst, args.repeat if "presidio" not in name else 1)
                rows.append((label, name, rate, count))
                print(f"  {label:<45} {name:<45} {rate:>12,.0f} rec/s", file=sys.stderr)
    print_table(rows)
    return 0


def print_table(rows: list[tuple[str, str, float, int]]) -> None:
    print()
    print(f"{'record':<45} {'variant':<47} {'records':>8} {'records/s':>12} {'vs passthrough':>15}")
    print("-" * 131)
    base: dict[str, float] = {}
    for label, name, rate, count in rows:
        if name.startswith("fastavro"):
            base[label] = rate
        ratio = rate / base[label] if label in base and rate == rate else float("nan")
        rate_s = f"{rate:,.0f}" if rate == rate else "-"
        ratio_s = f"{ratio:.2f}x" if ratio == ratio else "-"
        print(f"{label:<45} {name:<47} {count:>8} {rate_s:>12} {ratio_s:>15}")
    print(json.dumps({"python": sys.version.split()[0], "fastavro": fastavro.__version__}))


if __name__ == "__main__":
    sys.exit(main())
