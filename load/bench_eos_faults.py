"""The exactly-once fault run at benchmark size (``make bench``): 300k records by default,
three worker ``kill -9`` and two broker SIGKILL + restart, on a broker of its own.

Prints lost / duplicated source offsets as a read_committed consumer sees them (sink + DLQ)
and the run's wall time. The scenario is the integration test's (tests/integration/eos_faults).

Usage: python -m load.bench_eos_faults [--records 300000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.integration.eos_faults import run_scenario


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=300_000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-eos-"))
    print(f"worker log: {work / 'worker.log'}")
    out = run_scenario(args.records, work)
    print(
        f"exactly_once faults: {args.records} records, {', '.join(out.faults)}: "
        f"{out.lost} lost, {out.duplicates} duplicates, {out.unexpected} unexpected, "
        f"{out.dead_letters} dead letters, {out.restarts} self-exits restarted, "
        f"{out.seconds:.0f} s (busy machine: indicative); k_min {out.k_min} over the sink "
        f"(schema k = 5), {out.suppressed} suppressed"
    )
    return 0 if out.lost == out.duplicates == out.unexpected == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
