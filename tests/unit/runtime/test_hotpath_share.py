"""The hot path's thread takes a share of a route's partitions beside one offload helper."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from streamproc.config.topology import load_topology
from streamproc.keys import Keyring
from streamproc.metrics import WorkerMetrics
from streamproc.pipeline import Sanitized, SanitizeFlow
from streamproc.pipeline.build import history_schemas
from streamproc.policy import compile_plan
from streamproc.runtime.hotpath import HotPath, HotPathSpec, Route, share_thread
from streamproc.testing.claims import claim_record
from streamproc.testing.customers import single_object

ROOT = Path(__file__).resolve().parents[3]
TOPIC = "claims.raw"


class Msg:
    def __init__(self, partition: int, offset: int) -> None:
        self._p, self._o = partition, offset

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o


class Helper:
    """Stands in for BlockingFlowProcess: its own flow (same keys), one batch in flight."""

    def __init__(self, flow: SanitizeFlow) -> None:
        self.flow = flow
        self.seen: list[int] = []
        self.in_flight: list[Any] | None = None

    def submit(self, items: list[Any]) -> None:
        assert self.in_flight is None, "one batch in flight"
        self.in_flight = items
        self.seen += [it[3] for it in items]

    def collect(self, items: list[Any]) -> list[Any]:
        assert self.in_flight is items
        self.in_flight = None
        return self.flow.process_many(items)


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int, bytes | None, dict[str, bytes]]] = []

    def produce(self, topic: str, value: Any, key: Any, partition: int, **kw: Any) -> None:
        self.sent.append((topic, partition, key, dict(kw["headers"])))

    def __len__(self) -> int:
        return 0


@pytest.fixture(scope="module")
def flows() -> tuple[SanitizeFlow, SanitizeFlow]:
    keyring = Keyring.generate()
    topo = load_topology(ROOT / "topologies" / "claims.yaml")

    def one() -> SanitizeFlow:
        plan = compile_plan(topo.source.schema, keyring, strict=topo.strict)
        return SanitizeFlow(topo, plan, keyring, history=history_schemas(topo))

    return one(), one()


def run(flows: tuple[SanitizeFlow, SanitizeFlow], share: bool) -> tuple[Helper, HotPath, list]:
    flow, helper_flow = flows
    helper = Helper(helper_flow)
    route = Route(flow, [helper], sink_partitions=6, dlq_partitions=6, thread_share=share)  # type: ignore[list-item]
    hot = HotPath(HotPathSpec("g", "at_least_once", batch=40), {TOPIC: route}, {}, WorkerMetrics())
    hot.producer = Producer()
    rng = random.Random(5)
    schema = flow.plan.source_schema
    batches = []
    for b in range(3):
        items = [
            (
                single_object(schema, claim_record(i, rng)),
                b"k%d" % i,
                TOPIC,
                i % 6,
                100 * b + i,
                None,
            )
            for i in range(b * 30, b * 30 + 30)
        ]
        batches.append(items)
        hot._offload(route, [Msg(it[3], it[4]) for it in items], items)
    hot._drain_helpers()
    return helper, hot, batches


def test_the_thread_sanitizes_every_other_partition_itself(flows: Any) -> None:
    before = flows[0].stats.records_in
    helper, hot, batches = run(flows, share=True)
    assert set(helper.seen) == {0, 2, 4}
    items = [it for b in batches for it in b]
    sent = hot.producer.sent
    assert len(sent) == len(items)
    # Every record once, per partition in source order, offsets of all six partitions kept.
    for p in range(6):
        want = [str(it[4]).encode() for it in items if it[3] == p]
        got = [h["streamproc.source.offset"] for _, part, _, h in sent if part == p]
        assert got == want
    assert hot._offsets == {
        (TOPIC, p): max(it[4] for it in items if it[3] == p) + 1 for p in range(6)
    }
    # The thread's share ran through its own flow: same outcome as the helper's would be.
    flow, helper_flow = flows
    assert flow.stats.records_in - before == sum(1 for it in items if it[3] % 2 == 1)
    own = [it for it in items if it[3] == 1][:1]
    a, b = flow.process_many(own)[0], helper_flow.process_many(own)[0]
    assert isinstance(a, Sanitized) and isinstance(b, Sanitized)
    assert (a.key, a.headers) == (b.key, b.headers)


def test_without_a_share_the_helper_takes_every_partition(flows: Any) -> None:
    helper, hot, batches = run(flows, share=False)
    assert sorted(set(helper.seen)) == [0, 1, 2, 3, 4, 5]
    assert len(hot.producer.sent) == sum(map(len, batches))


def test_only_a_lone_helper_shares_the_thread() -> None:
    assert [share_thread(n) for n in range(4)] == [False, True, False, False]
