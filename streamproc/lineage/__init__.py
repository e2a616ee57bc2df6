"""OpenLineage run events for sanitize flows (column lineage and the policy facet)."""

from __future__ import annotations

from streamproc.lineage.events import MASKING_ACTIONS, StreamprocPolicyFacet, run_event, to_json

__all__ = ["MASKING_ACTIONS", "StreamprocPolicyFacet", "run_event", "to_json"]
