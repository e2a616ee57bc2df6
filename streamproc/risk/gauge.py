"""The hook a worker calls with each sanitized record to export its output's risk.

``observer(metrics, topology, rolling)`` returns ``observe(record) -> None``: it adds the
record to the rolling window and, every ``every`` records, sets the topology's
``streamproc_output_k_min`` / ``_unique_share`` / ``_below_k_share`` gauges. Gauges carry the
topology name only. The worker wires it after ``plan.sanitize``; nothing here imports Faust.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from streamproc.risk.rolling import RollingRisk

if TYPE_CHECKING:
    from streamproc.metrics import WorkerMetrics


def observer(
    metrics: WorkerMetrics, topology: str, rolling: RollingRisk, *, every: int = 100
) -> Callable[[Mapping[str, Any]], None]:
    """``observe(sanitized record)``: update ``rolling``, refresh the gauges every ``every``."""
    k_min = metrics.output_k_min.labels(topology=topology)
    unique = metrics.output_unique_share.labels(topology=topology)
    below = metrics.output_below_k_share.labels(topology=topology)
    seen = 0

    def publish() -> None:
        k_min.set(rolling.k_min or 0)
        unique.set(rolling.unique_share)
        below.set(rolling.below_k_share)

    def observe(record: Mapping[str, Any]) -> None:
        nonlocal seen
        rolling.add(record)
        seen += 1
        if seen % every == 0 or seen == 1:
            publish()

    return observe
