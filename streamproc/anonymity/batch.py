"""Batch k-anonymity / distinct l-diversity over generalization ladders (a whole file at once).

Top-down specialization, Mondrian-style local recoding on the ladder lattice: every record starts
fully suppressed (all QIs at the top of their ladders) in one partition; a partition is split on
the QI whose next finer level gives the largest drop in NCP while every released child keeps
>= k records and >= l distinct values of each sensitive field. Children that are too small go
back into a *remainder* kept at the parent level (which must itself be k/l-valid, topped up with
the smallest valid children if needed), or are suppressed while the ``max_suppressed`` budget
lasts. A final check suppresses any combination that is not k/l-valid, so the guarantee does not
rest on the search alone.

>>> from streamproc.anonymity.ladder import parse_ladder
>>> age = parse_ladder({"bucket": [5, 10]}, "int", schema_file="s", field_path="age")
>>> res = anonymize([(31,), (33,), (36,), (38,)], [age], k=2)
>>> res.values
[({'lo': 30, 'hi': 35},), ({'lo': 30, 'hi': 35},), ({'lo': 35, 'hi': 40},), ({'lo': 35, 'hi': 40},)]
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

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


def anonymize(
    rows: Sequence[Sequence[Any]],
    ladders: Sequence[Ladder],
    *,
    k: int,
    l: int = 1,  # noqa: E741
    sensitive: Sequence[Sensitive] | None = None,
    max_suppressed: float = 0.0,
) -> BatchResult:
    """Generalize ``rows`` (QI values in ``ladders`` order) so that every combination that is not
    fully suppressed occurs in >= k rows with >= l distinct values of each sensitive attribute.

    ``sensitive`` gives one tuple per row (one entry per sensitive field). ``max_suppressed`` is
    the share of rows the search may suppress to keep others finer; rows that fit no group are
    suppressed beyond it too (the share is reported, the guarantee never relaxed).
    """
    if k < 1 or l < 1:
        raise ValueError("k and l must be >= 1")
    t = build_table(rows, ladders, k=k, l=l, sensitive=sensitive)
    n, q = len(rows), len(ladders)
    tops = tuple(lad.top for lad in ladders)
    level_of: list[tuple[int, ...]] = [tops] * n
    budget = int(max_suppressed * n)
    todo = [_Part(list(range(n)), tops)] if n else []
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
    return _finish(t, ladders, rows, level_of, tops)


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
