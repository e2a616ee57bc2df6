"""Scoring throughput of the access-anomaly detector on one worker (one process, one core).

Measures, on a generated trace: feature extraction alone, the compiled forest per event and
per micro-batch, sklearn's ``score_samples`` per event for comparison, and the whole stream
path (``Scorer.process``: features + score + decide) at several micro-batch sizes. Goal:
>= 20,000 events/s per worker on the stream path.

    python -m load.bench_detector [--principals 60] [--events 60000]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from streamproc.detector.events import parse_event
from streamproc.detector.features import PrincipalState, featurize
from streamproc.detector.model import Detector
from streamproc.detector.pipeline import Scorer
from streamproc.testing.access_traces import TraceConfig, generate


def rate(n: int, fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--principals", type=int, default=60)
    ap.add_argument("--events", type=int, default=60_000, help="events in the scored slice")
    a = ap.parse_args(argv)
    cfg = TraceConfig(seed=77, n_principals=a.principals, days=14, incidents_per_kind=0)
    det = Detector.train([parse_event(r) for r in generate(cfg)])
    trace = [parse_event(r) for r in generate(replace(cfg, seed=78, incidents_per_kind=4))]
    events = trace[: a.events]
    n = len(events)
    X = featurize(det.extractor(), events).X
    results: list[tuple[str, float]] = []

    def features_only() -> None:
        fx = det.extractor()  # with the baselines, as on the stream path
        st: dict[str, PrincipalState] = {}
        for ev in events:
            s = st.get(ev.principal)
            if s is None:
                s = st[ev.principal] = PrincipalState()
            fx.update(s, ev)

    results.append(("features only (per event)", rate(n, features_only)))
    k = min(n, 3000)
    results.append(
        ("compiled forest, 1 event per call", rate(k, lambda: [det.score(X[i]) for i in range(k)]))
    )
    m = min(n, 200)
    results.append(
        (
            "sklearn score_samples, 1 event per call",
            rate(m, lambda: [det.forest.score_samples(X[i : i + 1]) for i in range(m)], 1),
        )
    )
    for b in (256, 1024):

        def batched(b: int = b) -> None:
            for i in range(0, n, b):
                det.score(X[i : i + b])

        results.append((f"compiled forest, batch {b}", rate(n, batched)))
    for b in (1, 64, 256, 1024):
        nn = n if b > 1 else min(n, 5000)

        def stream(b: int = b, nn: int = nn) -> None:
            scorer = Scorer(det)
            states: dict[str, PrincipalState] = {}
            for i in range(0, nn, b):
                scorer.process(events[i : i + b], states)

        results.append((f"stream path (features+score+decide), batch {b}", rate(nn, stream, 2)))
    width = max(len(r[0]) for r in results)
    print(f"detector {det.model_version}: {det.forest.n_estimators} trees, {n} events")
    for name, r in results:
        print(f"{name:<{width}}  {r:>10,.0f} events/s")
    best_stream = max(r for name, r in results if name.startswith("stream"))
    goal = 20_000
    print(
        f"best stream path {best_stream:,.0f} events/s per worker "
        f"(goal >= {goal:,}): {'OK' if best_stream >= goal else 'BELOW GOAL'}"
    )
    return 0 if np.isfinite(best_stream) else 1


if __name__ == "__main__":
    sys.exit(main())
