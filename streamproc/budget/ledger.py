"""A per-subject privacy-budget ledger for DP noise (sequential composition, event-time windows).

The ledger is pure state: it never sees a raw subject value, only the keyed pseudonym that
:class:`SubjectPseudonyms` makes of it. Each budgeted field is an *account* with a cost (its
epsilon), a budget and a window. A release at event time ``t`` is granted only if, for every
window ``[s, s + W)`` that contains ``t``, the units already granted in it plus the cost stay
within the budget; a refused release re-uses the subject's last value (or null) upstream.

Amounts are integer nano-epsilons, converted exactly from the decimal form of the parameter
(cost rounded up, budget down), so no float rounding ever lets one more release through.
A record whose event time lies more than one window before the newest one the subject's
account has seen is refused too: the ledger only keeps two windows of history per account.

In the worker the ledger is *keyed* (:meth:`BudgetLedger.keyed`): each record is charged
within its source partition (``at(..., scope=partition, key=record_key)``), its Kafka key
must be its subject (:func:`subject_key`), and a subject stays with the partition it was
first charged on, so that one partition's owner holds, persists and restores the whole of
every budget it charges (a record breaking either rule is a :class:`BudgetKeyError`).
Keyed, each partition also has an event-time watermark (its newest charged record): a record
more than one window older than it is refused, and a subject with no release in the last two
windows before it is :meth:`BudgetLedger.expired` (its history can no longer matter), so the
state of idle subjects can be dropped. A keyed record stamped more than
:data:`FUTURE_TOLERANCE_MS` after the ledger's clock is refused without moving anything: one
producer's wrong clock must not push its partition's watermark ahead and so refuse every
honest record after it.
"""

from __future__ import annotations

import bisect
import json
import math
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from streamproc.errors import BudgetKeyError, StreamprocError

UNITS = 10**9  # ledger units per epsilon
DAY_MS = 86_400_000
FUTURE_TOLERANCE_MS = 3_600_000  # keyed: how far past the clock an event time may lie
_SNAPSHOT_VERSION = 1


class BudgetError(StreamprocError):
    """A budget account is misconfigured or a ledger snapshot cannot be restored."""


def to_units(epsilon: float, *, round_up: bool) -> int:
    """Exact integer units of ``epsilon`` (its shortest decimal form), rounded as asked."""
    exact = Fraction(repr(float(epsilon))) * UNITS
    return math.ceil(exact) if round_up else math.floor(exact)


def subject_key(value: Any) -> bytes | None:
    """The Kafka key a record of this subject carries in the worker: a string's (or a
    uuid's string form's) UTF-8, an int's decimal digits, bytes as they are; None for any
    other type (such a subject cannot be keyed)."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value).encode("ascii")
    if isinstance(value, bytes):
        return value
    if isinstance(value, uuid.UUID):
        return str(value).encode("ascii")
    return None


@dataclass(frozen=True)
class Account:
    """One budgeted field: what a release costs, the budget, the window (all in units/ms)."""

    name: str  # the field path; never a value
    cost: int
    budget: int
    window_ms: int


@dataclass(frozen=True)
class BudgetStats:
    """What metrics export: counts and totals only, never a subject or a value."""

    subjects: int
    exhausted_subjects: int  # refused at least once
    refused: int  # values re-released or nulled
    epsilon_spent: float  # granted, over all subjects and fields
    future_refused: int = 0  # keyed: refused for an event time past the clock's tolerance


@dataclass
class _Spend:
    """One account's history for one subject: granted releases sorted by event time."""

    times: list[int] = field(default_factory=list)
    units: list[int] = field(default_factory=list)
    newest: int | None = None
    last: Any = None
    has_last: bool = False


@dataclass
class _Subject:
    accounts: dict[str, _Spend] = field(default_factory=dict)
    exhausted: bool = False  # refused at least once (counted once per subject)


def _window_fits(spend: _Spend, t: int, cost: int, budget: int, window: int) -> bool:
    """Whether one more release of ``cost`` at ``t`` keeps every window containing ``t``
    within ``budget``. The heaviest such window starts at ``t`` or at a granted release in
    ``(t - W, t]``, so only those starts are tried."""
    times, units = spend.times, spend.units
    if not times or t >= times[-1]:
        # In order (the usual case): nothing lies after t, so the heaviest window containing
        # t is the one ending at it, (t - W, t].
        return sum(units[bisect.bisect_right(times, t - window) :]) + cost <= budget
    prefix = [0]
    for u in units:
        prefix.append(prefix[-1] + u)
    lo = bisect.bisect_right(times, t - window)
    hi = bisect.bisect_right(times, t)
    for start in [*times[lo:hi], t]:
        a = bisect.bisect_left(times, start)
        b = bisect.bisect_left(times, start + window)
        if prefix[b] - prefix[a] + cost > budget:
            return False
    return True


class BudgetLedger:
    """Per-subject, per-account epsilon spent over an event-time window.

    ``clock`` (milliseconds) stands in for the event time when a caller sets none with
    :meth:`at`; by default it is the wall clock. Keys of the state are pseudonyms (bytes).

    >>> ledger = BudgetLedger(clock=lambda: 0)
    >>> acc = ledger.account("amount", epsilon=0.5, budget=1.0, window_days=30)
    >>> [ledger.spend(b"p1", acc) for _ in range(3)]
    [True, True, False]
    >>> ledger.exhausted_subjects, ledger.epsilon_spent
    (1, 1.0)
    """

    def __init__(
        self,
        *,
        clock: Callable[[], int] | None = None,
        future_tolerance_ms: int = FUTURE_TOLERANCE_MS,
    ) -> None:
        self._clock = clock or (lambda: time.time_ns() // 1_000_000)
        self._future_ms = future_tolerance_ms
        self._event_ms: int | None = None
        self._subjects: dict[bytes, _Subject] = {}
        self._accounts: dict[str, Account] = {}
        self._dirty: set[bytes] = set()
        # Keyed (the worker): the current record's partition and key, each subject's partition.
        self._keyed = False
        self._scope: int | None = None
        self._record_key: bytes | None = None
        self._home: dict[bytes, int] = {}
        self._wm: dict[int, int] = {}  # partition -> newest event time charged there
        self.exhausted_subjects = 0
        self.refused = 0
        self.future_refused = 0
        self._spent_units = 0

    # --- configuration -------------------------------------------------------------------

    def account(self, name: str, *, epsilon: float, budget: float, window_days: int) -> Account:
        """Register (or look up, if identical) the account of one budgeted field."""
        acc = Account(
            name,
            to_units(epsilon, round_up=True),
            to_units(budget, round_up=False),
            window_days * DAY_MS,
        )
        if acc.cost > acc.budget:
            raise BudgetError(f"account {name}: budget is smaller than one release's epsilon")
        known = self._accounts.setdefault(name, acc)
        if known != acc:
            raise BudgetError(f"account {name}: registered twice with different parameters")
        return acc

    @property
    def accounts(self) -> tuple[Account, ...]:
        return tuple(self._accounts.values())

    # --- time ----------------------------------------------------------------------------

    def at(
        self, event_ms: int | None, *, scope: int | None = None, key: bytes | None = None
    ) -> None:
        """Set the event time of the records that follow (None: use the clock); keyed, also
        the record's source partition and Kafka key."""
        self._event_ms = event_ms
        self._scope = scope
        self._record_key = key

    def keyed(self) -> None:
        """Charge every record within its partition, and only under its subject's key."""
        self._keyed = True

    @property
    def is_keyed(self) -> bool:
        return self._keyed

    def check_subject(self, value: Any) -> None:
        """Keyed: refuse a record whose Kafka key is not this subject (no value in the error)."""
        if self._keyed and (self._record_key is None or subject_key(value) != self._record_key):
            raise BudgetKeyError(
                "a budgeted record's Kafka key must be its subject: key the source records by "
                "the subject field's value"
            )

    def now_ms(self) -> int:
        return self._clock() if self._event_ms is None else self._event_ms

    # --- the hot path ----------------------------------------------------------------------

    def spend(self, pseudonym: bytes, acc: Account) -> bool:
        """Grant (and record) one release on ``acc`` for the subject, or refuse it."""
        t = self.now_ms()
        if self._keyed:
            home = self._home.get(pseudonym)
            if home is not None and home != self._scope:
                raise BudgetKeyError(
                    "a budgeted subject's records arrive on two source partitions (the "
                    "partitioner differs between producers, or partitions were added)",
                    reason="budget_partition_mismatch",
                )
            if t > self._clock() + self._future_ms:
                # A producer's clock is wrong: no release, and nothing moves (no watermark,
                # no subject state), so the partition's honest records stay accepted.
                self.refused += 1
                self.future_refused += 1
                return False
            self._home[pseudonym] = self._scope  # type: ignore[assignment]
        subject = self._subjects.get(pseudonym)
        if subject is None:
            subject = self._subjects[pseudonym] = _Subject()
        spend = subject.accounts.get(acc.name)
        if spend is None:
            spend = subject.accounts[acc.name] = _Spend()
        self._dirty.add(pseudonym)
        if self._keyed:
            wm = self._wm.get(self._scope)  # type: ignore[arg-type]
            if wm is not None and t <= wm - acc.window_ms:
                return self._refuse(subject)  # too late for its partition (expiry relies on it)
            if wm is None or t > wm:
                self._wm[self._scope] = t  # type: ignore[index]
        newest = spend.newest
        if newest is not None and t <= newest - acc.window_ms:
            return self._refuse(subject)  # too late: its window's history is gone
        if newest is None or t > newest:
            spend.newest = newest = t
            cut = bisect.bisect_right(spend.times, newest - 2 * acc.window_ms)
            if cut:
                del spend.times[:cut], spend.units[:cut]
        if not _window_fits(spend, t, acc.cost, acc.budget, acc.window_ms):
            return self._refuse(subject)
        i = bisect.bisect_right(spend.times, t)
        spend.times.insert(i, t)
        spend.units.insert(i, acc.cost)
        self._spent_units += acc.cost
        return True

    def _refuse(self, subject: _Subject) -> bool:
        self.refused += 1
        if not subject.exhausted:
            subject.exhausted = True
            self.exhausted_subjects += 1
        return False

    def remember(self, pseudonym: bytes, acc: Account, value: Any) -> None:
        """Keep the value just released, for re-release once the budget is spent."""
        spend = self._subjects[pseudonym].accounts[acc.name]
        spend.last, spend.has_last = value, True

    def last(self, pseudonym: bytes, acc: Account) -> tuple[bool, Any]:
        """``(found, value)``: the last value released for the subject on ``acc``."""
        subject = self._subjects.get(pseudonym)
        spend = subject.accounts.get(acc.name) if subject is not None else None
        if spend is None or not spend.has_last:
            return False, None
        return True, spend.last

    # --- metrics -------------------------------------------------------------------------

    @property
    def epsilon_spent(self) -> float:
        """Total epsilon granted over all subjects and accounts in this ledger's life."""
        return self._spent_units / UNITS

    @property
    def subjects(self) -> int:
        return len(self._subjects)

    def stats(self) -> BudgetStats:
        return BudgetStats(
            self.subjects,
            self.exhausted_subjects,
            self.refused,
            self.epsilon_spent,
            self.future_refused,
        )

    def spent(self, pseudonym: bytes, acc: Account, start_ms: int, end_ms: int) -> float:
        """Epsilon granted to the subject on ``acc`` for event times in ``[start, end)``."""
        subject = self._subjects.get(pseudonym)
        spend = subject.accounts.get(acc.name) if subject is not None else None
        if spend is None:
            return 0.0
        a = bisect.bisect_left(spend.times, start_ms)
        b = bisect.bisect_left(spend.times, end_ms)
        return sum(spend.units[a:b]) / UNITS

    # --- persistence ---------------------------------------------------------------------

    def pseudonyms(self) -> Iterator[bytes]:
        return iter(list(self._subjects))

    def drain_dirty(self) -> set[bytes]:
        """Pseudonyms whose state changed since the last call (to write to a changelog)."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    def home(self, pseudonym: bytes) -> int | None:
        """Keyed: the partition the subject is charged on."""
        return self._home.get(pseudonym)

    def held(self, scopes: set[int]) -> list[bytes]:
        """Keyed: the subjects charged on any of ``scopes``."""
        return [p for p, h in self._home.items() if h in scopes]

    def watermark(self, scope: int) -> int | None:
        """Keyed: the newest event time charged on partition ``scope``."""
        return self._wm.get(scope)

    def restore_watermark(self, scope: int, event_ms: int) -> None:
        self._wm[scope] = max(event_ms, self._wm.get(scope, event_ms))

    def drop_watermarks(self, scopes: set[int]) -> None:
        for sc in scopes:
            self._wm.pop(sc, None)

    def expired(self, scopes: set[int]) -> list[tuple[int, bytes]]:
        """Keyed: ``(partition, pseudonym)`` of the subjects of ``scopes`` whose every release
        lies more than two windows before their partition's watermark. No record the ledger
        still accepts there (one window at most before the watermark) has a window reaching
        back to them, so their state can go. One pass over the subjects."""
        wms = {sc: self._wm[sc] for sc in scopes if sc in self._wm}
        if not wms:
            return []
        out = []
        accounts, subjects = self._accounts, self._subjects
        for p, home in self._home.items():
            wm = wms.get(home)
            subject = subjects.get(p)
            if wm is None or subject is None:
                continue
            for name, spend in subject.accounts.items():
                acc = accounts.get(name)
                if acc is None or spend.newest is None or spend.newest >= wm - 2 * acc.window_ms:
                    break
            else:
                out.append((home, p))
        return out

    def forget(self, pseudonyms: list[bytes]) -> None:
        """Drop subjects' state (their partition went to another owner, or is reloaded)."""
        for p in pseudonyms:
            subject = self._subjects.pop(p, None)
            if subject is not None and subject.exhausted:
                self.exhausted_subjects -= 1
            self._home.pop(p, None)
            self._dirty.discard(p)

    def snapshot(self, pseudonym: bytes) -> bytes:
        """One subject's state as bytes (pseudonymous: account names, times, noisy values)."""
        subject = self._subjects.get(pseudonym) or _Subject()
        doc = {
            "v": _SNAPSHOT_VERSION,
            "x": subject.exhausted,
            "a": {
                name: {
                    "t": s.times,
                    "u": s.units,
                    "n": s.newest,
                    **({"l": s.last} if s.has_last else {}),
                }
                for name, s in subject.accounts.items()
            },
        }
        return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()

    def restore(self, pseudonym: bytes, data: bytes, *, scope: int | None = None) -> None:
        """Load one subject's state written by :meth:`snapshot` (replacing what is held);
        keyed, ``scope`` is the partition it was charged on."""
        try:
            doc = json.loads(data)
            if doc["v"] != _SNAPSHOT_VERSION:
                raise ValueError
            subject = _Subject(exhausted=bool(doc["x"]))
            for name, s in doc["a"].items():
                times, units = [int(t) for t in s["t"]], [int(u) for u in s["u"]]
                if len(times) != len(units) or times != sorted(times):
                    raise ValueError
                spend = _Spend(times, units, s["n"], s.get("l"), "l" in s)
                subject.accounts[str(name)] = spend
        except (ValueError, KeyError, TypeError, AttributeError):
            raise BudgetError("budget snapshot cannot be restored (corrupt or unknown)") from None
        old = self._subjects.get(pseudonym)
        if old is not None and old.exhausted:
            self.exhausted_subjects -= 1
        if subject.exhausted:
            self.exhausted_subjects += 1
        self._subjects[pseudonym] = subject
        if scope is not None:
            self._home[pseudonym] = scope
