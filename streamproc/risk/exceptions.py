"""Errors of the risk measurement; messages name fields and schemas, never values."""

from __future__ import annotations

from streamproc.errors import StreamprocError


class RiskError(StreamprocError):
    """A risk measurement cannot be made as asked (unknown field, bad parameter, bad input)."""
