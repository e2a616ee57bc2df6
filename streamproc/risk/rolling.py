"""Incremental k_min / unique share over the last N records, for a worker's output gauge.

Per record the update is O(1) amortised: a deque holds the window's class keys, a Counter
the size of each class, and a counter of counters how many classes have each size, so the
smallest size (k_min) moves by at most one step per update and the below-k record count is
adjusted on each size change. It agrees with :func:`~streamproc.risk.measure` over the same
window (a property test checks it).

>>> r = RollingRisk(2, ["zip"], k=2)
>>> for zip_ in ("101", "101", "102"):
...     r.add({"zip": zip_})
>>> (r.records, r.classes, r.k_min, r.unique_share)
(2, 2, 1, 1.0)
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping, Sequence
from typing import Any

from streamproc.risk.exceptions import RiskError
from streamproc.risk.paths import key_function

_SUPPRESSED = object()  # deque marker of a record with every quasi-identifier null


class RollingRisk:
    """Re-identification statistics of the last ``window`` records added."""

    def __init__(self, window: int, quasi: Sequence[str], k: int = 5) -> None:
        if window < 1:
            raise RiskError(f"window must be at least 1 record (got {window})")
        if k < 1:
            raise RiskError(f"k must be at least 1 (got {k})")
        if not quasi:
            raise RiskError("no quasi-identifier to measure on")
        self.window = window
        self.quasi = tuple(quasi)
        self.k = k
        self._key = key_function(self.quasi)
        self._keys: deque[Any] = deque()
        self._sizes: Counter[Any] = Counter()  # class key -> records in it
        self._by_size: Counter[int] = Counter()  # class size -> classes of that size
        self._k_min = 0  # 0: unknown / no class
        self._below_k = 0  # records in classes smaller than k
        self.suppressed = 0

    def add(self, record: Mapping[str, Any]) -> None:
        """Take one (sanitized) record into the window, dropping the oldest when full."""
        qi = self._key(record)
        if all(v is None for v in qi):
            self._keys.append(_SUPPRESSED)
            self.suppressed += 1
        else:
            self._keys.append(qi)
            self._resize(qi, +1)
        if len(self._keys) > self.window:
            old = self._keys.popleft()
            if old is _SUPPRESSED:
                self.suppressed -= 1
            else:
                self._resize(old, -1)

    def _resize(self, qi: Any, step: int) -> None:
        before = self._sizes[qi]
        after = before + step
        if before:
            self._by_size[before] -= 1
            if not self._by_size[before]:
                del self._by_size[before]
        if after:
            self._sizes[qi] = after
            self._by_size[after] += 1
        else:
            del self._sizes[qi]
        self._below_k += (after if after < self.k else 0) - (before if before < self.k else 0)
        self._move_min(before, after)

    def _move_min(self, before: int, after: int) -> None:
        if not self._sizes:
            self._k_min = 0
        elif after and (self._k_min == 0 or after < self._k_min):
            self._k_min = after
        elif before == self._k_min and before not in self._by_size:
            # The last class of the smallest size grew (or vanished): scan upwards.
            n = before + 1 if after else before
            while n not in self._by_size:
                n += 1
            self._k_min = n

    @property
    def records(self) -> int:
        return len(self._keys)

    @property
    def classes(self) -> int:
        return len(self._sizes)

    @property
    def k_min(self) -> int | None:
        return self._k_min or None

    @property
    def unique_share(self) -> float:
        n = len(self._keys)
        return self._by_size.get(1, 0) / n if n else 0.0

    @property
    def below_k_share(self) -> float:
        n = len(self._keys)
        return self._below_k / n if n else 0.0
