"""CPU per record of ``SanitizeFlow`` in-process, against fastavro passthrough in the same run.

Run: ``.venv/bin/python load/bench_flow_cpu.py [--records N] [--repeat R] [--json OUT]
[--against BEFORE.json]``

For the flat ``customers`` topology (``schemas/customer_profile.avsc``) and the nested
``claims`` one (``schemas/claims.avsc``) it builds the worker's flow, encodes N sample records
(``streamproc.testing``) as single-object Avro and measures CPU time (``process_time``, best of
R rounds, the variants interleaved within a round so a busy machine hurts them alike):

- ``fastavro passthrough``: decode with the writer schema and encode again (the codec alone);
- ``flow.process``: what the hot path calls per record (decode with bounds, plan, encode,
  exposure, key pseudonym, lineage headers);
- ``flow.process_many``: the same batch in one call, when the flow has it;
- the stages of ``process`` one at a time: bounds scan, fastavro decode, ``plan.sanitize``,
  encode, exposure update, key pseudonym + headers.

``--json`` saves the figures; ``--against`` prints each next to the one saved earlier (for
example by this script at the commit before a change), so a before/after needs no switch in
the code. The load average is printed: the machine is shared.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from streamproc.avro.framing import parse_frame
from streamproc.config.topology import load_topology
from streamproc.keys import Keyring
from streamproc.pipeline import SanitizeFlow
from streamproc.pipeline.build import history_schemas
from streamproc.policy import compile_plan
from streamproc.testing import claims as claim_samples
from streamproc.testing.customers import customer_records, single_object

ROOT = Path(__file__).resolve().parents[1]
TS = 1_760_000_000_000


def build(kind: str, n: int) -> tuple[SanitizeFlow, list[bytes]]:
    keyring = Keyring.generate()
    topo = load_topology(ROOT / "topologies" / f"{kind}.yaml")
    plan = compile_plan(topo.source.schema, keyring, strict=topo.strict)
    flow = SanitizeFlow(topo, plan, keyring, history=history_schemas(topo))
    schema = plan.source_schema
    if kind == "claims":
        rng = random.Random(7)
        recs = [claim_samples.claim_record(i, rng) for i in range(n)]
    else:
        recs = [r for r, _ in customer_records(n, seed=7)]
    return flow, [single_object(schema, r) for r in recs]


def variants(flow: SanitizeFlow, payloads: list[bytes]) -> dict[str, Callable[[], Any]]:
    """Name -> a callable doing the variant over the whole batch once."""
    n = len(payloads)
    keys = [b"key-%d" % i for i in range(n)]
    items = [(v, keys[i], "src", i % 6, i, TS + i) for i, v in enumerate(payloads)]
    decode = flow.decoder.decode
    ws = decode(payloads[0])[1]
    bodies = [p[parse_frame(p, "auto").body_offset :] for p in payloads]
    records = [decode(p)[0] for p in payloads]
    sanitize = flow._sanitize
    cleans = [sanitize(r) for r in records]
    writer = ws.parsed

    def passthrough() -> None:
        for b in bodies:
            out = io.BytesIO()
            schemaless_writer(out, writer, schemaless_reader(io.BytesIO(b), writer, None))

    def process() -> None:
        p = flow.process
        for v, k, t, part, o, ts in items:
            p(v, key=k, topic=t, partition=part, offset=o, timestamp_ms=ts)

    out: dict[str, Callable[[], Any]] = {
        "fastavro passthrough": passthrough,
        "flow.process": process,
    }
    many = getattr(flow, "process_many", None)
    if many is not None:
        out["flow.process_many"] = lambda: many(items)
    if ws.check is not None:
        check = ws.check
        out["stage: bounds scan"] = lambda: [check(b) for b in bodies]
    out["stage: fastavro decode"] = lambda: [
        schemaless_reader(io.BytesIO(b), writer, None) for b in bodies
    ]
    out["stage: plan.sanitize"] = lambda: [sanitize(r) for r in records]
    encode = flow.encoder.encode
    out["stage: encode"] = lambda: [encode(c) for c in cleans]
    if flow.exposure is not None:
        add = flow.exposure.add
        out["stage: exposure"] = lambda: [add(c) for c in cleans]
    sanitized_headers = flow.sanitized_headers
    key_pseudonym = flow.key_pseudonym
    out["stage: key + headers"] = lambda: [
        (key_pseudonym(k), sanitized_headers(t, part, o, ws.fingerprint, ts))
        for _, k, t, part, o, ts in items
    ]
    return out


def measure(fns: dict[str, Callable[[], Any]], n: int, repeat: int) -> dict[str, float]:
    """Best CPU µs per record of each variant over ``repeat`` interleaved rounds."""
    best = {name: float("inf") for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - t0)
    return {name: 1e6 * s / n for name, s in best.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--json", help="save the figures here")
    ap.add_argument("--against", help="figures saved earlier by --json, printed alongside")
    args = ap.parse_args()
    before = json.loads(Path(args.against).read_text()) if args.against else {}
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {args.records} records, "
          f"best of {args.repeat} rounds, CPU µs per record")  # fmt: skip
    saved: dict[str, dict[str, float]] = {}
    for kind in ("customers", "claims"):
        flow, payloads = build(kind, args.records)
        fig = saved[kind] = measure(variants(flow, payloads), args.records, args.repeat)
        base = fig["fastavro passthrough"]
        print(f"\n{kind}: {len(payloads[0])}-{max(map(len, payloads))} B per record")
        head = f"{'variant':28s} {'µs/rec':>8s} {'x passthrough':>14s}"
        print(head + (f" {'before':>8s} {'after/before':>13s}" if before else ""))
        for name, us in fig.items():
            line = f"{name:28s} {us:8.1f} {us / base:14.2f}"
            was = before.get(kind, {}).get(name)
            if before:
                line += f" {was:8.1f} {us / was:13.2f}" if was else f" {'-':>8s} {'-':>13s}"
            print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(saved, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
