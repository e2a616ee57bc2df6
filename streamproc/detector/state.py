"""Per-principal state as it travels with a model: encoding, verification, seeding.

``detector train`` keeps the state every principal reached at the end of its training
events, so scoring (CLI or agent) starts where training stopped instead of blind. The
states are stored inside the model file as one JSON document plus its SHA-256, checked on
load. :func:`seed_state` is the rule the agent applies per principal: the model's state is
used only where the agent has nothing newer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace

from streamproc.detector.features import PrincipalState
from streamproc.errors import DetectorError


def encode_states(states: Mapping[str, PrincipalState]) -> tuple[str, str]:
    """``(json, sha256 hex)`` of ``states`` (principals sorted, so equal states encode alike)."""
    doc = json.dumps(
        {p: states[p].to_dict() for p in sorted(states)}, separators=(",", ":"), sort_keys=True
    )
    return doc, hashlib.sha256(doc.encode()).hexdigest()


def decode_states(doc: str, digest: str) -> dict[str, PrincipalState]:
    """The states of :func:`encode_states`; raises DetectorError on a digest mismatch."""
    if hashlib.sha256(doc.encode()).hexdigest() != digest:
        raise DetectorError("principal states do not match their recorded digest")
    try:
        raw = json.loads(doc)
    except json.JSONDecodeError:
        raise DetectorError("principal states are not JSON") from None
    if not isinstance(raw, dict):
        raise DetectorError("principal states are not a mapping")
    return {str(p): PrincipalState.from_dict(d) for p, d in raw.items()}


def copy_state(state: PrincipalState) -> PrincipalState:
    """A deep copy (the state's maps and lists are mutated in place by the extractor)."""
    return PrincipalState.from_dict(state.to_dict())


def seed_state(
    current: PrincipalState | None, from_model: PrincipalState | None
) -> PrincipalState | None:
    """The state to continue from for one principal, given the agent's and the model's.

    The agent's own state wins when it has seen events at least as recent as the model's
    (it is never overwritten by older knowledge). A missing state, or one older than what
    the model was trained on (a lost or restored table), is replaced by a copy of the
    model's, keeping the agent's decision bookkeeping (cooldown, flagged ids, actions sent,
    own scores) so an open incident does not alert twice. Returns ``None`` when neither exists.

    Only a model state that covers the agent's is a continuation of it: one whose history
    starts after the agent's first event of the principal is another history under the same
    name (a reused account name, a model trained on another population), so the agent keeps
    its own.
    """
    if from_model is None:
        return current
    if (
        current is not None
        and current.n > 0
        and (current.last_ts >= from_model.last_ts or from_model.first_ts > current.first_ts)
    ):
        return current
    seeded = copy_state(from_model)
    if current is None:
        return seeded
    # the actions sent belong to the incident of the later alert (the agent's on a tie)
    newer = current if current.alert_ts >= seeded.alert_ts else seeded
    return replace(
        seeded,
        alert_ts=max(current.alert_ts, seeded.alert_ts),
        flagged=[list(f) for f in current.flagged] or seeded.flagged,
        reported=list(newer.reported),
        scores=list(current.scores) or seeded.scores,
    )
