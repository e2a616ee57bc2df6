"""Coverage-guided fuzzing (atheris / libFuzzer) of the decode + sanitize path.

Every input goes through ``SanitizeFlow.process`` of two flows: customer profiles (flat,
record-size bound only) and claims (nested records, arrays, maps: the compiled bounds scan).
The first input byte picks the flow. Findings:

- a crash: any exception escaping ``process`` or an ``internal_error`` outcome (process
  catches unexpected exceptions so the stream survives; the fuzzer treats them as bugs);
- a slow input: over 1 s (libFuzzer ``-timeout=1`` aborts the run);
- an unaccounted input: every input must end as exactly one Sanitized or DeadLetter outcome.

Usage: python load/fuzz_decode.py --inputs 1000000 [--seed 1] [--quiet]
Prints one summary line: inputs, outcomes by reason, crashes, slowest input, execs/s.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import time
from collections import Counter
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[1]


with atheris.instrument_imports(include=["streamproc"]):
    from streamproc.avro.codec import Decoder, WriterSchemas  # noqa: F401
    from streamproc.config.topology import load_topology
    from streamproc.keys import Keyring
    from streamproc.pipeline import DeadLetter, Sanitized, SanitizeFlow
    from streamproc.policy import compile_plan
    from streamproc.testing.customers import customer_records, single_object

STATS: Counter[str] = Counter()
CRASHES: list[str] = []
SLOWEST = [0.0]
START = [time.monotonic()]


def build_flows() -> list[SanitizeFlow]:
    import yaml

    keyring = Keyring.generate()
    flows = [
        SanitizeFlow(
            load_topology(ROOT / "topologies/customers.yaml"),
            compile_plan(ROOT / "schemas/customer_profile.avsc", keyring),
            keyring,
        )
    ]
    claims_topo = Path(os.environ.get("TMPDIR", "/tmp")) / f"fuzz-claims-{os.getpid()}.yaml"
    claims_topo.write_text(
        yaml.safe_dump(
            {
                "name": "claims",
                "source": {"topic": "claims.raw", "schema": str(ROOT / "schemas/claims.avsc")},
                "sink": {"topic": "claims.clean"},
                "dead_letter": {"topic": "claims.dlq"},
                "limits": {"max_record_bytes": 65536, "max_string_bytes": 4096, "max_items": 1000},
            }
        )
    )
    topo = load_topology(claims_topo)
    claims_topo.unlink()
    flows.append(SanitizeFlow(topo, compile_plan(topo.source.schema, keyring), keyring))
    return flows


def instrument_generated(flows: list[SanitizeFlow]) -> None:
    """Bounds scans and plans are source generated at start-up, which ``instrument_imports``
    never sees: instrument their functions so coverage guides the fuzzer through them too."""
    for flow in flows:
        spaces = [flow.plan.sanitize.__globals__]
        spaces += [ws.check.__globals__ for ws in flow.decoder.schemas._by_fp.values() if ws.check]
        for namespace in spaces:
            for fn in namespace.values():
                code = getattr(fn, "__code__", None)
                if code is not None and code.co_filename.startswith("<streamproc"):
                    atheris.instrument_func(fn)  # in place: every reference sees it


def seeds(flows: list[SanitizeFlow], corpus: Path) -> None:
    """Valid records of both schemas as the starting corpus."""
    from streamproc.testing import claims as claims_samples

    corpus.mkdir(parents=True, exist_ok=True)
    schema = flows[0].plan.source_schema
    for i, (rec, _) in enumerate(customer_records(20, seed=3)):
        (corpus / f"customer-{i}").write_bytes(b"\x00" + single_object(schema, rec))
    rng = random.Random(4)
    for i in range(20):
        rec = claims_samples.claim_record(i, rng)
        (corpus / f"claim-{i}").write_bytes(
            b"\x01" + single_object(flows[1].plan.source_schema, rec)
        )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--inputs", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--corpus", default=str(ROOT / ".cache" / "fuzz-corpus"))
    args, rest = ap.parse_known_args()
    flows = build_flows()
    instrument_generated(flows)
    seeds(flows, Path(args.corpus))

    calls = [0]

    def one_input(data: bytes) -> None:
        calls[0] += 1
        flow = flows[data[0] & 1] if data else flows[0]
        t0 = time.perf_counter()
        try:
            out = flow.process(
                data[1:] if data else b"", key=b"k", topic="fuzz", partition=0, offset=0
            )
        except BaseException as exc:
            CRASHES.append(type(exc).__name__)
            raise
        took = time.perf_counter() - t0
        SLOWEST[0] = max(SLOWEST[0], took)
        if isinstance(out, Sanitized):
            STATS["sanitized"] += 1
        elif isinstance(out, DeadLetter):
            STATS[out.reason] += 1
            if out.reason == "internal_error":
                CRASHES.append(dict(out.headers).get("streamproc.dlq.error", b"?").decode())
                raise RuntimeError("internal_error outcome")
        else:  # pragma: no cover
            raise AssertionError("input not accounted for")
        if calls[0] == args.inputs:
            summary()  # libFuzzer ends the process with _exit: no atexit hooks run

    def summary() -> None:
        total = sum(STATS.values())
        unaccounted = calls[0] - total
        took = time.monotonic() - START[0]
        reasons = ", ".join(f"{r}={n}" for r, n in STATS.most_common())
        print(
            f"\nfuzz summary: {total} inputs accounted for ({reasons}); "
            f"{unaccounted} unaccounted; {len(CRASHES)} crashes; "
            f"slowest input {SLOWEST[0] * 1000:.1f} ms; "
            f"{total / took:,.0f} execs/s",
            flush=True,
        )
        if CRASHES:
            print("crash types: " + ", ".join(sorted(set(CRASHES))), flush=True)

    # libFuzzer checks ru_maxrss, a peak that a child inherits from its parent across fork and
    # exec (a test runner that has grown to 2.5 GB would make every run "out of memory"):
    # allow 2 GB on top of the peak this process starts with.
    inherited_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    artifacts = Path(args.corpus).parent / "fuzz-artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    START[0] = time.monotonic()
    atheris.Setup(
        [
            sys.argv[0],
            f"-runs={args.inputs}",
            f"-seed={args.seed}",
            "-timeout=1",
            f"-rss_limit_mb={2048 + inherited_mb}",
            f"-artifact_prefix={artifacts}/",
            "-max_len=4096",
            "-print_final_stats=0",
            *rest,
            args.corpus,
        ],
        one_input,
    )
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
