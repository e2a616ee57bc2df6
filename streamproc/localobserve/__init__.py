"""Local Prometheus + Alertmanager on loopback; see :mod:`streamproc.localobserve.servers`."""

from __future__ import annotations

from streamproc.localobserve.servers import (
    DEFAULT_ALERTMANAGER_PORT,
    DEFAULT_PROMETHEUS_PORT,
    LocalObserve,
    ObserveSpec,
    find_binary,
    render_alertmanager,
    render_prometheus,
)

__all__ = [
    "DEFAULT_ALERTMANAGER_PORT",
    "DEFAULT_PROMETHEUS_PORT",
    "LocalObserve",
    "ObserveSpec",
    "find_binary",
    "render_alertmanager",
    "render_prometheus",
]
