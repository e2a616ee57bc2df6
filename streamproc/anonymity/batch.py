"""Batch k-anonymity / distinct l-diversity over generalization ladders (a whole file at once).

Top-down specialization, Mondrian-style local recoding on the ladder lattice: every record starts
fully suppressed (all QIs at the top of their ladders) in one partition; a partition is split on
one QI by one level while every released child keeps >= k records and >= l distinct values of
each sensitive field. Children that are too small go back into a *remainder* kept at the parent
level (which must itself be k/l-valid, topped up with valid children if needed), or are
suppressed while the ``max_suppressed`` budget lasts. Two searches choose the splits: an optimal
one (memoized over boxes, :class:`_Optimal`, bounded by ``max_search_work``) and the greedy one
(Mondrian's rule: the QI the partition is most generalized on first); the lower-loss output is
kept. A final check suppresses any combination that is not k/l-valid, so the guarantee does not
rest on the search alone.

>>> from streamproc.anonymity.ladder import parse_ladder
>>> age = parse_ladder({"bucket": [5, 10]}, "int", schema_file="s", field_path="age")
>>> res = anonymize([(31,), (33,), (36,), (38,)], [age], k=2)
>>> res.values
[({'lo': 30, 'hi': 35},), ({'lo': 30, 'hi': 35},), ({'lo': 35, 'hi': 40},), ({'lo': 35, 'hi': 40},)]
"""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamproc.anonymity.ladder import Cell, Ladder

Sensitive = tuple[Hashable, ...]


@dataclass(frozen=True)
class BatchResult:
    """Per record: the rendered QI values, the cells (hashable) and whether fully suppressed."""

    values: list[tuple[Any, ...]]
    cells: list[tuple[Cell, ...]]
    suppressed: list[bool]
    ncp_by_field: dict[str, float]
    ncp: float
    fields: tuple[str, ...] = ()
    levels: list[tuple[int, ...]] = field(default_factory=list)

    @property
    def records(self) -> int:
        return len(self.values)

    @property
    def suppressed_count(self) -> int:
        return sum(self.suppressed)

    @property
    def suppressed_share(self) -> float:
        return self.suppressed_count / self.records if self.records else 0.0


@dataclass
class _Table:
    """Cells and NCP of every record at every level of every QI, computed once."""

    cells: list[list[list[Cell]]]  # [qi][level][record]
    ncp: list[list[list[float]]]
    sensitive: Sequence[Sensitive] | None
    k: int
    l: int  # noqa: E741

    def valid(self, idx: Sequence[int]) -> bool:
        if len(idx) < self.k:
            return False
        if self.sensitive is None or self.l <= 1:
            return True
        sens = self.sensitive
        width = len(sens[idx[0]])
        return all(len({sens[i][a] for i in idx}) >= self.l for a in range(width))


def build_table(
    rows: Sequence[Sequence[Any]],
    ladders: Sequence[Ladder],
    *,
    k: int,
    l: int = 1,  # noqa: E741
    sensitive: Sequence[Sensitive] | None = None,
) -> _Table:
    cells: list[list[list[Cell]]] = []
    ncps: list[list[list[float]]] = []
    for j, lad in enumerate(ladders):
        column = [r[j] for r in rows]
        dom = lad.domain_of(column)
        by_value = [lad.cells(v) for v in column]
        per_level = [[c[lv] for c in by_value] for lv in range(lad.top)]
        per_level.append([None] * len(column))
        cells.append(per_level)
        ncps.append(
            [[lad.ncp(c, v, dom) for c, v in zip(cl, column, strict=True)] for cl in per_level]
        )
    return _Table(cells=cells, ncp=ncps, sensitive=sensitive, k=k, l=l)


@dataclass
class _Part:
    idx: list[int]
    levels: tuple[int, ...]
    frozen: frozenset[int] = frozenset()


@dataclass
class _Split:
    gain: float
    qi: int
    children: list[list[int]]
    remainder: list[int]
    suppress: list[int]


def _split(t: _Table, p: _Part, j: int, budget: int, tops: tuple[int, ...]) -> _Split | None:
    """The best way to specialize partition ``p`` on QI ``j`` by one level, or None."""
    cur, lv = p.levels[j], p.levels[j] - 1
    groups: dict[Cell, list[int]] = defaultdict(list)
    fine = t.cells[j][lv]
    for i in p.idx:
        groups[fine[i]].append(i)
    good = [g for g in groups.values() if t.valid(g)]
    if not good:
        return None
    leftover = [i for g in groups.values() if not t.valid(g) for i in g]
    now, nxt = t.ncp[j][cur], t.ncp[j][lv]

    def gain(children: list[list[int]]) -> float:
        return sum(now[i] - nxt[i] for g in children for i in g)

    if not leftover or p.levels == tops or t.valid(leftover):
        # At the top the remainder is suppressed anyway; otherwise it is a valid group.
        return _Split(gain(good), j, good, leftover, [])
    options: list[_Split] = []
    if len(leftover) <= budget:
        lost = sum(1.0 - t.ncp[q][p.levels[q]][i] for i in leftover for q in range(len(tops)))
        options.append(_Split(gain(good) - lost, j, list(good), [], leftover))
    good = sorted(good, key=len)
    rest = list(leftover)
    while good and not t.valid(rest):
        rest.extend(good.pop(0))
    if good and t.valid(rest):
        options.append(_Split(gain(good), j, good, rest, []))
    return max(options, key=lambda s: s.gain) if options else None


def _priority(t: _Table, p: _Part, j: int, s: _Split) -> tuple[float, float]:
    """Which valid split to take: Mondrian's rule, the QI this partition is most generalized on
    (its mean NCP), so that no QI is specialized to the end while the others stay coarse (a
    pure largest-NCP-drop rule did that on the development data); the NCP drop breaks ties."""
    now = t.ncp[j][p.levels[j]]
    return (sum(now[i] for i in p.idx) / len(p.idx), s.gain)


MAX_SEARCH_WORK = 4_000_000
"""Record visits (records x QIs over every box tried) the optimal search may spend exploring;
past it the search finishes the splits it has started, costing each new box by its greedy
refinement, and past twice it the batch falls back to the greedy result. It keeps the cost of
a file near linear in its size."""
SEARCH_WORK_PER_RECORD = 100
"""The search visited 130-250 record-QIs per record-QI of the file on the development data: a
file with more than MAX_SEARCH_WORK / 100 record-QIs is not searched at all (it would pass the
bound, at a cost of seconds, and fall back anyway)."""


GREEDY_PAST_BOUND = -2
"""A box met after the search passed its bound: costed and planned by the greedy search."""


class _TooBig(Exception):
    """The optimal search passed twice MAX_SEARCH_WORK (greedy boxes included)."""


@dataclass
class _Choice:
    cost: float
    qi: int  # -1: release the box at its cells (or at ``closed``, finer ones); -2: greedy
    folded: frozenset[Cell] = frozenset()  # valid children released with the remainder
    closed: tuple[int, ...] | None = None


class _Optimal:
    """Memoized top-down search over *boxes*: one ladder cell per QI, holding every record of
    the file in those cells (so a box is named by its levels and cells, and shared by every path
    that reaches it).

    best(box) = min(release the box at its cells, min over QIs j of [sum of best(valid children
    on j) + the remainder released at the box's cells]), with the greedy search's rules for the
    remainder: at the top it is suppressed; below, it must be k/l-valid, else the valid children
    that cost least to release at the box's cells are folded into it until it is.

    A box below the top with fewer than 2k records has one useful move per QI, to a finer cell
    all its records share (any other split leaves an invalid remainder and one child to fold,
    i.e. the box itself); its best is therefore its *closure*, each QI at the finest level its
    records share, computed directly (most boxes are that small).
    """

    def __init__(self, t: _Table, tops: tuple[int, ...], max_work: int) -> None:
        self.t, self.tops, self.max_work, self.work = t, tops, max_work, 0
        self.q = len(tops)
        self.codes = [
            [np.array(_codes(per_level), dtype=np.int64) for per_level in t.cells[j]]
            for j in range(self.q)
        ]
        self.ncp = [[np.array(x, dtype=np.float64) for x in t.ncp[j]] for j in range(self.q)]
        self.memo: dict[tuple[tuple[int, ...], tuple[Cell, ...]], _Choice] = {}

    def closure(self, idx: np.ndarray, levels: tuple[int, ...]) -> tuple[int, ...]:
        ids = idx.tolist()
        out = []
        for j, lv in enumerate(levels):
            cells = self.t.cells[j]
            while lv > 0 and len({cells[lv - 1][i] for i in ids}) == 1:
                lv -= 1
            out.append(lv)
        return tuple(out)

    def key(self, idx: np.ndarray, levels: tuple[int, ...]) -> tuple[Any, ...]:
        first = int(idx[0])
        return (levels, tuple(self.t.cells[j][levels[j]][first] for j in range(self.q)))

    def groups(
        self, idx: np.ndarray, j: int, lv: int, here: np.ndarray | None = None
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """The box's records by their cell at QI j's level lv (one array per cell), and the
        sum of ``here`` (a per-record value, in ``idx`` order) over each."""
        codes = self.codes[j][lv][idx]
        order = np.argsort(codes, kind="stable")
        sc = codes[order]
        starts = np.flatnonzero(np.concatenate(([True], sc[1:] != sc[:-1])))
        sums = np.add.reduceat(here[order], starts) if here is not None else np.zeros(0)
        return np.split(idx[order], starts[1:]), sums

    def valid(self, idx: np.ndarray) -> bool:
        if len(idx) < self.t.k:
            return False
        return self.t.l <= 1 or self.t.sensitive is None or self.t.valid(idx.tolist())

    def loss(self, idx: np.ndarray, levels: tuple[int, ...]) -> np.ndarray:
        return sum((self.ncp[j][levels[j]][idx] for j in range(self.q)), np.zeros(len(idx)))

    def best(self, idx: np.ndarray, levels: tuple[int, ...]) -> float:
        key = self.key(idx, levels)
        hit = self.memo.get(key)
        if hit is not None:
            return hit.cost
        self.work += len(idx) * self.q
        if self.work > 2 * self.max_work:
            raise _TooBig
        if self.work > self.max_work and levels != self.tops:
            # Past the bound the search finishes the splits it has started but explores no
            # further: a new box is costed by its greedy refinement (and planned by it).
            cost = self.refined(idx, levels, None)
            self.memo[key] = _Choice(cost, GREEDY_PAST_BOUND)
            return cost
        if levels != self.tops and len(idx) < 2 * self.t.k:
            closed = self.closure(idx, levels)
            choice = _Choice(float(self.loss(idx, closed).sum()), -1, closed=closed)
            self.memo[key] = choice
            return choice.cost
        here = self.loss(idx, levels)
        choice = _Choice(float(here.sum()), -1)
        for j in range(self.q):
            if levels[j] == 0:
                continue
            option = self.split(idx, levels, j, here)
            if option is not None and option.cost < choice.cost - 1e-12:
                choice = option
        self.memo[key] = choice
        return choice.cost

    def split(
        self, idx: np.ndarray, levels: tuple[int, ...], j: int, here: np.ndarray
    ) -> _Choice | None:
        lv = levels[j] - 1
        finer = tuple(x - (jj == j) for jj, x in enumerate(levels))
        good: list[tuple[float, float, Cell, np.ndarray]] = []  # (penalty, best, cell, records)
        rest: list[np.ndarray] = []
        rest_cost = 0.0
        groups, at_box = self.groups(idx, j, lv, here)
        for g, cost in zip(groups, at_box.tolist(), strict=True):
            if self.valid(g):
                b = self.best(g, finer)
                good.append((cost - b, b, self.t.cells[j][lv][int(g[0])], g))
            else:
                rest.append(g)
                rest_cost += cost
        if not good:
            return None
        total = sum(x[1] for x in good)
        if not rest or levels == self.tops:
            # At the top the remainder is suppressed (its cost at the top cells, 1 per QI).
            return _Choice(total + rest_cost, j)
        # Fold the children whose own search gains least over the box's cells until the
        # remainder is valid; at least one child stays (else this is the box released whole).
        good.sort(key=lambda x: x[0])
        rest_idx = np.concatenate(rest)
        folded: set[Cell] = set()
        while not self.valid(rest_idx):
            if len(good) <= 1:
                return None
            penalty, b, cell, g = good.pop(0)
            folded.add(cell)
            total += penalty  # released at the box's cells (b + penalty) instead of at b
            rest_idx = np.concatenate([rest_idx, g])
        return _Choice(total + self.refined(rest_idx, levels, j), j, frozenset(folded))

    def refined(self, idx: np.ndarray, levels: tuple[int, ...], j: int | None) -> float:
        """The loss of a remainder (frozen on QI j) once the greedy search has refined it (as
        :meth:`plan`'s caller does), so that a split is costed by what it will release."""
        out: dict[int, tuple[int, ...]] = {}
        frozen = frozenset() if j is None else frozenset({j})
        _greedy(self.t, [_Part(sorted(idx.tolist()), levels, frozen)], out, 0, self.tops)
        ncp = self.t.ncp
        return sum(ncp[jj][lv[jj]][i] for i, lv in out.items() for jj in range(self.q))

    def plan(
        self, idx: np.ndarray, levels: tuple[int, ...], level_of: list[tuple[int, ...]]
    ) -> list[_Part]:
        """Apply the memoized choices from ``idx`` down; returns the remainders (kept at their
        box's cells, frozen on the split QI) for the greedy search to refine further."""
        out: list[_Part] = []
        stack = [(idx, levels)]
        while stack:
            box, lvs = stack.pop()
            choice = self.memo[self.key(box, lvs)]
            if choice.qi == GREEDY_PAST_BOUND:
                for i in box.tolist():
                    level_of[i] = lvs
                out.append(_Part(sorted(box.tolist()), lvs))
                continue
            if choice.qi < 0:
                for i in box.tolist():
                    level_of[i] = choice.closed or lvs
                continue
            j = choice.qi
            lv = lvs[j] - 1
            finer = tuple(x - (jj == j) for jj, x in enumerate(lvs))
            rest: list[int] = []
            for g in self.groups(box, j, lv)[0]:
                cell = self.t.cells[j][lv][int(g[0])]
                if self.valid(g) and cell not in choice.folded:
                    stack.append((g, finer))
                else:
                    rest.extend(g.tolist())
            if rest and lvs == self.tops:
                continue  # suppressed (level_of starts at the top)
            if rest:
                for i in rest:
                    level_of[i] = lvs
                out.append(_Part(sorted(rest), lvs, frozenset({j})))
        return out


def _codes(cells: list[Cell]) -> list[int]:
    ids: dict[Cell, int] = {}
    return [ids.setdefault(c, len(ids)) for c in cells]


def anonymize(
    rows: Sequence[Sequence[Any]],
    ladders: Sequence[Ladder],
    *,
    k: int,
    l: int = 1,  # noqa: E741
    sensitive: Sequence[Sensitive] | None = None,
    max_suppressed: float = 0.0,
    max_search_work: int = MAX_SEARCH_WORK,
) -> BatchResult:
    """Generalize ``rows`` (QI values in ``ladders`` order) so that every combination that is not
    fully suppressed occurs in >= k rows with >= l distinct values of each sensitive attribute.

    ``sensitive`` gives one tuple per row (one entry per sensitive field). ``max_suppressed`` is
    the share of rows the search may suppress to keep others finer; rows that fit no group are
    suppressed beyond it too (the share is reported, the guarantee never relaxed).
    ``max_search_work`` bounds the optimal search (records x QIs visited; 0 turns it off). The
    greedy search always runs too (it is cheap, may use the suppression budget, and its
    remainders split further than the optimal search's model): the lower-loss output is kept.
    """
    if k < 1 or l < 1:
        raise ValueError("k and l must be >= 1")
    t = build_table(rows, ladders, k=k, l=l, sensitive=sensitive)
    n = len(rows)
    tops = tuple(lad.top for lad in ladders)
    budget = int(max_suppressed * n)
    results: list[BatchResult] = []
    if n and n * len(ladders) * SEARCH_WORK_PER_RECORD <= max_search_work:
        with contextlib.suppress(_TooBig):  # too big a file: the greedy result alone
            results.append(_optimal(t, ladders, rows, tops, max_search_work))
    level_of: list[tuple[int, ...]] = [tops] * n
    _greedy(t, [_Part(list(range(n)), tops)] if n else [], level_of, budget, tops)
    results.append(_finish(t, ladders, rows, level_of, tops))
    return min(results, key=lambda r: r.ncp)


def _optimal(
    t: _Table,
    ladders: Sequence[Ladder],
    rows: Sequence[Sequence[Any]],
    tops: tuple[int, ...],
    max_work: int,
) -> BatchResult:
    search = _Optimal(t, tops, max_work)
    idx = np.arange(len(rows), dtype=np.int64)
    search.best(idx, tops)
    level_of: list[tuple[int, ...]] = [tops] * len(rows)
    remainders = search.plan(idx, tops, level_of)
    _greedy(t, remainders, level_of, 0, tops)
    return _finish(t, ladders, rows, level_of, tops)


def _greedy(
    t: _Table,
    todo: list[_Part],
    level_of: list[tuple[int, ...]] | dict[int, tuple[int, ...]],
    budget: int,
    tops: tuple[int, ...],
) -> None:
    """The greedy top-down search: split each partition on the QI of the best priority."""
    q = len(tops)
    while todo:
        p = todo.pop()
        best: _Split | None = None
        best_key: tuple[float, float] | None = None
        for j in range(q):
            if p.levels[j] == 0 or j in p.frozen:
                continue
            s = _split(t, p, j, budget, tops)
            if s is None or s.gain < 0:
                continue
            key = _priority(t, p, j, s)
            if best_key is None or key > best_key:
                best, best_key = s, key
        if best is None:
            for i in p.idx:
                level_of[i] = p.levels
            continue
        budget -= len(best.suppress)
        finer = tuple(lv - (jj == best.qi) for jj, lv in enumerate(p.levels))
        todo.extend(_Part(g, finer, p.frozen) for g in best.children)
        if best.remainder:
            todo.append(_Part(best.remainder, p.levels, p.frozen | {best.qi}))
        for i in best.suppress:
            level_of[i] = tops


def _finish(
    t: _Table,
    ladders: Sequence[Ladder],
    rows: Sequence[Sequence[Any]],
    level_of: list[tuple[int, ...]],
    tops: tuple[int, ...],
) -> BatchResult:
    """Cells from the chosen levels; fail closed on any combination that is not k/l-valid."""
    q = len(ladders)
    cells = [tuple(t.cells[j][lv[j]][i] for j in range(q)) for i, lv in enumerate(level_of)]
    members: dict[tuple[Cell, ...], list[int]] = defaultdict(list)
    for i, c in enumerate(cells):
        members[c].append(i)
    blank: tuple[Cell, ...] = (None,) * q
    valid: dict[tuple[int, ...], set[tuple[Cell, ...]]] = defaultdict(set)
    for combo, idx in members.items():
        if combo != blank and not t.valid(idx):
            for i in idx:
                level_of[i], cells[i] = tops, blank
        elif combo != blank:
            valid[level_of[idx[0]]].add(combo)
    _rehome(t, level_of, cells, valid, blank)
    suppressed = [c == blank for c in cells]
    values = [tuple(lad.render(c[j]) for j, lad in enumerate(ladders)) for c in cells]
    n = len(rows)
    by_field: dict[str, float] = {}
    for j, lad in enumerate(ladders):
        ncp = t.ncp[j]
        by_field[lad.path] = sum(ncp[lv[j]][i] for i, lv in enumerate(level_of)) / n if n else 0.0
    overall = sum(by_field.values()) / q if q else 0.0
    return BatchResult(
        values=values,
        cells=cells,
        suppressed=suppressed,
        ncp_by_field=by_field,
        ncp=overall,
        fields=tuple(lad.path for lad in ladders),
        levels=level_of,
    )


def _rehome(
    t: _Table,
    level_of: list[tuple[int, ...]],
    cells: list[tuple[Cell, ...]],
    valid: dict[tuple[int, ...], set[tuple[Cell, ...]]],
    blank: tuple[Cell, ...],
) -> None:
    """Put each suppressed record into the finest valid combination that covers it, if any.

    Adding records to a combination that already has >= k records and >= l distinct sensitive
    values keeps both, so this only lowers loss (the stream engine's reuse, in batch).
    """
    q = len(cells[0]) if cells else 0
    for i, c in enumerate(cells):
        if c != blank:
            continue
        best: tuple[float, tuple[int, ...], tuple[Cell, ...]] | None = None
        for levels, combos in valid.items():
            mine = tuple(t.cells[j][levels[j]][i] for j in range(q))
            if mine in combos:
                loss = sum(t.ncp[j][levels[j]][i] for j in range(q))
                if best is None or loss < best[0]:
                    best = (loss, levels, mine)
        if best is not None:
            level_of[i], cells[i] = best[1], best[2]


def combination_counts(cells: Sequence[tuple[Cell, ...]]) -> Counter[tuple[Cell, ...]]:
    """How many records share each output combination (a checker's view of the output)."""
    return Counter(cells)
