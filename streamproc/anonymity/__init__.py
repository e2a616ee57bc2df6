"""k-anonymity and l-diversity over generalization ladders, batch and delay-bounded stream.

Pure engines (no Kafka, no Faust): :mod:`.ladder` parses and applies ladders, :mod:`.plan`
reads the bound and the ladders from a schema, :mod:`.batch` anonymizes a whole file,
:mod:`.stream` releases a stream in k-groups within a delay bound.
Design note: docs/anonymity.md.
"""

from streamproc.anonymity.batch import BatchResult, anonymize, combination_counts
from streamproc.anonymity.ladder import (
    CategoryLadder,
    Cell,
    Domain,
    IntervalLadder,
    KeepLadder,
    Ladder,
    PrefixLadder,
    derived_type,
    is_ladder,
    parse_ladder,
)
from streamproc.anonymity.spec import PrivacySpec, parse_privacy
from streamproc.anonymity.stream import Buffered, Release, StreamAnonymizer

__all__ = [
    "BatchResult",
    "Buffered",
    "CategoryLadder",
    "Cell",
    "Domain",
    "IntervalLadder",
    "KeepLadder",
    "Ladder",
    "PrefixLadder",
    "PrivacySpec",
    "Release",
    "StreamAnonymizer",
    "anonymize",
    "combination_counts",
    "derived_type",
    "is_ladder",
    "parse_ladder",
    "parse_privacy",
]
