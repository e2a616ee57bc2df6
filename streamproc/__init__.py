"""streamproc: a streaming privacy gateway for machine-learning data on Kafka."""

from __future__ import annotations

__version__ = "0.1.0"
