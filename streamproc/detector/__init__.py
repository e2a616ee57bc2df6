"""Access-anomaly detection: features -> isolation-forest score -> decision -> containment.

The detector scores, the decider decides::

    detector = Detector.load("model.skops")
    scorer = Scorer(detector, Decider.from_detector(detector, cooldown_ms=30 * 60_000))
    result = scorer.process(events, states)  # states: principal -> PrincipalState
    for c in result.containments:
        produce(c.to_avro_dict())
"""

from __future__ import annotations

from streamproc.detector.decide import Containment, Decider, RecommendedAction
from streamproc.detector.events import ACTIONS, AccessEvent, parse_event, read_events
from streamproc.detector.explain import Reason
from streamproc.detector.features import (
    FEATURE_NAMES,
    FeatureConfig,
    FeatureExtractor,
    PrincipalState,
    extract,
    featurize,
)
from streamproc.detector.model import Detector, ForestParams
from streamproc.detector.pipeline import BatchResult, Scored, Scorer
from streamproc.detector.state import seed_state

__all__ = [
    "ACTIONS",
    "FEATURE_NAMES",
    "AccessEvent",
    "BatchResult",
    "Containment",
    "Decider",
    "Detector",
    "FeatureConfig",
    "FeatureExtractor",
    "ForestParams",
    "PrincipalState",
    "Reason",
    "RecommendedAction",
    "Scored",
    "Scorer",
    "extract",
    "featurize",
    "parse_event",
    "read_events",
    "seed_state",
]
