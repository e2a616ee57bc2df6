"""Anonymity benchmark: risk, guarantee, information loss and model utility at k = 5.

Run: ``.venv/bin/python -m load.bench_anonymity [--k 5] [--windows 500,2000,5000] [--seed 7]
[--datasets anes96,fair,diabetes,customers,customers-5y,...] [--code-ncp numbers|sets]``

Data (nothing downloaded at run time):

- ``anes96`` (statsmodels: 944 respondents of the 1996 American National Election Study):
  QIs age, educ, income; label: voted Dole; the DEVELOPMENT set -- the ladder rule and the
  engine's choices were looked at on it;
- ``fair`` (statsmodels: 6,366 women of the 1974 Redbook survey): QIs age, yrs_married,
  children, religious, educ, occupation; label: any affair; HELD OUT -- ladders set by the same
  rule, nothing tuned on it;
- ``diabetes`` (scikit-learn's ``load_diabetes(scaled=False)``: 442 patients of Efron et al.,
  2004): QIs age, sex, bmi, bp; label: disease progression above its median; other features
  s1-s6; HELD OUT (second set, added 2026-12-02) -- QIs and ladders fixed by the rule below
  from the documentation, before any anonymization was run on it;
- ``customers`` (streamproc.testing.customers, 5,000 synthetic records): QIs birth_date,
  postcode, city, gender; no meaningful label (risk and loss only); DEVELOPMENT;
  ``customers-5y`` the same with a ``5y`` step in the birth_date ladder, and
  ``customers-5y-digits`` with, in addition, ``"alphabet": "0123456789"`` on the postcode;
  ``customers-shipped`` the same records under the shipped policy's own ladders (read from the
  packaged ``customer_profile.avsc``: month/year/5y/decade, prefix 4..1 over digits).

Ladder rule: numbers get powers of two from the field's resolution (1 for integers, 0.5 for the
half-step ``fair`` fields; otherwise the largest of 0.5, 0.1, 0.05, 0.01, ... that every
value is a whole multiple of) up to its range; categories a codebook grouping; times day/month/year.

For each dataset, on a 70 % training split (seeded): the raw risk (k_min, unique share),
then three anonymizations at the same k -- ``streamproc.anonymity.anonymize`` (batch),
``StreamAnonymizer`` (records arrive 1 per ms in a shuffled order, ``max_delay_ms`` = w, so
about w records are buffered), and the Mondrian baseline (``anonypy`` 0.2.1, strict
median splits) -- each checked for the guarantee (k_min over non-suppressed combinations) and
scored by one NCP evaluator: intervals by published width over the data range (integers
count lo..hi-1), category sets and prefixes by (values covered - 1) / (domain - 1), suppressed
= 1. Utility: logistic regression trained on each anonymized training split, tested on the
same raw test split (intervals as midpoints, categories as one-hot spread over the values a
generalized set covers), accuracy and AUC as ratios to the raw model; ``qi_auc`` is the same
model on the QIs alone (how much of their own signal survives). One more row,
``mondrian on ladder``, widens Mondrian's partitions to the finest ladder cells containing them:
what Mondrian's free-form ranges cost once the output must be unambiguous on the same ladders.
And ``ladder bound``: the least NCP any output made of ladder cells could reach (a per-record
relaxation, :func:`ladder_bound`), which tells the ladders' limit from the search's.

Per stream window w, the same delay bound for the others: ``mondrian per window`` runs
Mondrian on each run of w consecutive arrivals on its own (the stream's order); ``ladder bound
per window`` makes each record's box hold k records of its own run (the limit of any method
that anonymizes runs of w on ladder cells); ``ladder bound near`` k records that arrived less
than w from it (the limit of any method whose groups are formed among w buffered records,
short of the stream's reuse of combinations published earlier).
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import itertools
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamproc.anonymity import (
    CategoryLadder,
    IntervalLadder,
    Ladder,
    PrefixLadder,
    StreamAnonymizer,
    anonymize,
    parse_ladder,
)
from streamproc.testing.customers import customer_records

# A published generalization, per record and QI, as the evaluator sees it:
# ("iv", lo, hi_inclusive) for numbers, ("set", frozenset) for categories, None suppressed.
Gen = tuple[Any, ...] | None


@dataclass(frozen=True)
class Dataset:
    name: str
    role: str  # dev | held-out | synthetic
    qi_names: tuple[str, ...]
    ladders: tuple[Ladder, ...]
    qi: list[tuple[Any, ...]]
    other: np.ndarray  # non-QI features, raw
    label: np.ndarray | None
    codes: frozenset[str] = frozenset()  # digit-string QIs scored as numbers (postcodes)


def _lad(spec: dict[str, Any], avro: Any, name: str) -> Ladder:
    return parse_ladder(spec, avro, schema_file="bench", field_path=name)


def _pow2(res: float, upto: float) -> list[float]:
    out, w = [], res
    while w < upto * 2:
        out.append(int(w) if float(w).is_integer() and res >= 1 else w)
        w *= 2
    return out


def load_anes96() -> Dataset:
    import statsmodels.datasets as smd  # bench-only dependency

    df = smd.anes96.load_pandas().data
    cols = ("age", "educ", "income")
    lads = tuple(
        _lad({"bucket": _pow2(1, float(df[c].max() - df[c].min()))}, "int", c) for c in cols
    )
    qi = [tuple(int(v) for v in row) for row in df[list(cols)].to_numpy()]
    other = df[["popul", "TVnews", "selfLR", "ClinLR", "DoleLR", "PID"]].to_numpy(float)
    return Dataset("anes96", "dev", cols, lads, qi, other, df["vote"].to_numpy(int))


FAIR_OCCUPATION = [
    {
        "1": "student",
        "2": "manual",
        "3": "white collar",
        "4": "skilled",
        "5": "managerial",
        "6": "professional",
    },
    {
        "student": "other",
        "manual": "other",
        "white collar": "office",
        "skilled": "other",
        "managerial": "office",
        "professional": "office",
    },
]


def load_fair() -> Dataset:
    import statsmodels.datasets as smd  # bench-only dependency

    df = smd.fair.load_pandas().data
    halves = ("age", "yrs_married", "children")
    ints = ("religious", "educ")
    lads: list[Ladder] = [
        _lad({"bucket": _pow2(0.5, float(df[c].max() - df[c].min()))}, "double", c) for c in halves
    ]
    lads += [_lad({"bucket": _pow2(1, float(df[c].max() - df[c].min()))}, "int", c) for c in ints]
    lads.append(_lad({"levels": FAIR_OCCUPATION}, "int", "occupation"))
    qi = [
        (
            float(r.age),
            float(r.yrs_married),
            float(r.children),
            int(r.religious),
            int(r.educ),
            int(r.occupation),
        )
        for r in df.itertuples()
    ]
    other = df[["rate_marriage", "occupation_husb"]].to_numpy(float)
    label = (df["affairs"].to_numpy() > 0).astype(int)
    return Dataset(
        "fair", "held-out", (*halves, *ints, "occupation"), tuple(lads), qi, other, label
    )


RESOLUTIONS = (1.0, 0.5, 0.1, 0.05, 0.01, 0.005, 0.001)


def _resolution(values: np.ndarray) -> float:
    """The recording step of a numeric column: the coarsest of RESOLUTIONS dividing every value."""
    for res in RESOLUTIONS:
        scaled = values / res
        if np.all(np.abs(scaled - np.round(scaled)) < 1e-6):
            return res
    return RESOLUTIONS[-1]


def load_diabetes() -> Dataset:
    from sklearn.datasets import load_diabetes as sk_diabetes  # bench-only use

    df = sk_diabetes(scaled=False, as_frame=True).frame
    cols = ("age", "sex", "bmi", "bp")
    lads: list[Ladder] = []
    kinds: list[bool] = []  # integer-valued
    for c in cols:
        col = df[c].to_numpy(float)
        res = _resolution(col)
        span = float(col.max() - col.min())
        if res >= 1:
            lads.append(_lad({"bucket": _pow2(1, span)}, "int", c))
        else:
            widths = [round(w, 6) for w in _pow2(res, span)]
            lads.append(_lad({"bucket": widths}, "double", c))
        kinds.append(res >= 1)
    qi = [
        tuple(int(v) if is_int else float(v) for v, is_int in zip(row, kinds, strict=True))
        for row in df[list(cols)].to_numpy(float)
    ]
    other = df[["s1", "s2", "s3", "s4", "s5", "s6"]].to_numpy(float)
    target = df["target"].to_numpy(float)
    label = (target > np.median(target)).astype(int)
    return Dataset("diabetes", "held-out", cols, tuple(lads), qi, other, label)


CUSTOMER_DATES = ["day", "month", "year", "decade"]
# The birth_date ladder with 5-year bands (2026-12-02), chosen on this dev set: the
# per-record bound over ladder cells was 1.76x Mondrian with CUSTOMER_DATES (nothing between a
# year and a decade), 1.04x with 5y, 0.93x with 2y, but the batch and stream outputs were
# lower with 5y (1.43x / 1.32x at w 5000 against 1.59x / 1.55x).
CUSTOMER_DATES_5Y = ["day", "month", "year", "5y", "decade"]


def load_customers(
    n: int = 5000, dates: Sequence[str] = tuple(CUSTOMER_DATES), digits: bool = False
) -> Dataset:
    from streamproc.testing.customers import CITIES, GENDERS

    city_levels = [{c: country for c, country, _ in CITIES}, {cc: "EU" for _, cc, _ in CITIES}]
    gender_levels = [{"FEMALE": "F/M", "MALE": "F/M", "OTHER": "O/U", "UNKNOWN": "O/U"}]
    gender_enum = {"type": "enum", "name": "Gender", "symbols": GENDERS}
    lads = (
        _lad(
            {"to": list(dates)},
            {"type": "int", "logicalType": "date"},
            "birth_date",
        ),
        _lad(
            {"prefix": [5, 4, 3, 2, 1], **({"alphabet": "0123456789"} if digits else {})},
            "string",
            "postcode",
        ),
        _lad({"levels": city_levels}, "string", "city"),
        _lad({"levels": gender_levels}, gender_enum, "gender"),
    )
    qi = [(r["birth_date"], r["postcode"], r["city"], r["gender"]) for r, _ in customer_records(n)]
    names = ("birth_date", "postcode", "city", "gender")
    name = "customers" if list(dates) == CUSTOMER_DATES else "customers-5y"
    name += "-digits" if digits else ""
    return Dataset(
        name, "dev, synthetic", names, lads, qi, np.zeros((n, 0)), None, frozenset({"postcode"})
    )


def load_customers_shipped(n: int = 5000) -> Dataset:
    """The customers under the shipped policy's own ladders (packaged customer_profile.avsc)."""
    import json

    from streamproc.examples import schema_path

    schema = json.loads(schema_path("customer_profile.avsc").read_text())
    names = ("birth_date", "postcode", "city", "gender")
    by_name = {f["name"]: f for f in schema["fields"]}
    lads = tuple(_lad(by_name[c]["privacy"], by_name[c]["type"], c) for c in names)
    qi = [(r["birth_date"], r["postcode"], r["city"], r["gender"]) for r, _ in customer_records(n)]
    return Dataset(
        "customers-shipped", "dev, synthetic", names, lads, qi, np.zeros((n, 0)), None,
        frozenset({"postcode"}),
    )  # fmt: skip


# --- the evaluator -------------------------------------------------------------------------


def _num(v: Any) -> float:
    if isinstance(v, str):
        return float(int(v))
    if isinstance(v, dt.date):
        return float((v - dt.date(1970, 1, 1)).days)
    return float(v)


@dataclass
class Evaluator:
    """One NCP for every method, from what each one publishes per record and QI."""

    ladders: Sequence[Ladder]
    column_values: list[list[Any]]  # raw, per QI
    codes: frozenset[str] = frozenset()
    # Score a code's range by the distinct codes seen in it, as the engine's own prefix NCP
    # does (``--code-ncp sets``), instead of by its width over the codes' range.
    codes_as_sets: bool = False

    def numeric(self, j: int) -> bool:
        return isinstance(self.ladders[j], IntervalLadder) or self.ladders[j].path in self.codes

    def __post_init__(self) -> None:
        self.ranges: list[tuple[float, float]] = []
        self.domains: list[frozenset[str]] = []
        self.code_len: dict[int, int] = {}
        self.seen_codes: dict[int, list[float]] = {}
        for j, (lad, col) in enumerate(zip(self.ladders, self.column_values, strict=True)):
            if lad.path in self.codes:
                self.code_len[j] = max(len(str(v)) for v in col)
                self.seen_codes[j] = sorted({_num(v) for v in col})
            if self.numeric(j):
                xs = [_num(v) for v in col]
                self.ranges.append((min(xs), max(xs)))
                self.domains.append(frozenset())
            else:
                self.ranges.append((0.0, 0.0))
                self.domains.append(frozenset(str(v) for v in col))

    def ours(self, j: int, cell: Any) -> Gen:
        lad = self.ladders[j]
        if cell is None:
            return None
        if isinstance(lad, IntervalLadder):
            lo, hi = cell
            if lad.kind == "float":
                return ("iv", float(lo), float(hi))
            return ("iv", float(lo), float(hi - 1))  # integers and days cover lo..hi-1
        if isinstance(lad, PrefixLadder) and j in self.code_len:
            # A prefix of a fixed-length digit code is the interval of codes starting with it.
            scale = 10 ** (self.code_len[j] - len(str(cell)))
            return ("iv", float(int(str(cell)) * scale), float((int(str(cell)) + 1) * scale - 1))
        if isinstance(lad, PrefixLadder):
            return ("set", frozenset(v for v in self.domains[j] if v.startswith(str(cell))))
        assert isinstance(lad, CategoryLadder) and lad.members is not None
        return ("set", lad.members[str(cell)])

    def ncp(self, j: int, g: Gen) -> float:
        if g is None:
            return 1.0
        if g[0] == "iv" and self.codes_as_sets and j in self.seen_codes:
            seen = self.seen_codes[j]
            covered = bisect.bisect_right(seen, g[2]) - bisect.bisect_left(seen, g[1])
            return 0.0 if len(seen) <= 1 else max(0, covered - 1) / (len(seen) - 1)
        if g[0] == "iv":
            lo, hi = self.ranges[j]
            span = hi - lo
            return 0.0 if span <= 0 else max(0.0, min(g[2], hi) - max(g[1], lo)) / span
        size = len(self.domains[j])
        return 0.0 if size <= 1 else (len(g[1]) - 1) / (size - 1)

    def score(self, gens: list[list[Gen]]) -> float:
        q = len(self.ladders)
        return sum(self.ncp(j, r[j]) for r in gens for j in range(q)) / (len(gens) * q)


# --- the three anonymizers -----------------------------------------------------------------


def run_batch(ds: Dataset, rows: list[tuple[Any, ...]], k: int, ev: Evaluator) -> list[list[Gen]]:
    res = anonymize(rows, ds.ladders, k=k, max_suppressed=0.0)
    return [[ev.ours(j, c) for j, c in enumerate(cells)] for cells in res.cells]


def arrival_order(n: int, seed: int) -> list[int]:
    """The order the stream sees the records in (1 per ms), shared by the windowed rows."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order


def chunks(order: Sequence[int], window: int, k: int) -> list[list[int]]:
    """Consecutive runs of ``window`` records in arrival order; a last run shorter than k
    joins the one before (alone it could only be suppressed)."""
    runs = [list(order[i : i + window]) for i in range(0, len(order), window)]
    if len(runs) > 1 and len(runs[-1]) < k:
        tail = runs.pop()
        runs[-1] += tail
    return runs


def run_stream(
    ds: Dataset, rows: list[tuple[Any, ...]], k: int, ev: Evaluator, window: int, seed: int
) -> list[list[Gen]]:
    order = arrival_order(len(rows), seed)
    st = StreamAnonymizer(ds.ladders, k=k, max_delay_ms=window)
    out: dict[int, list[Gen]] = {}
    for t, i in enumerate(order):
        st.add(i, rows[i], arrival_ms=t)
        for r in st.poll(t):
            out[int(r.item_id)] = [ev.ours(j, c) for j, c in enumerate(r.cells)]  # type: ignore[call-overload]
    for r in st.flush(len(rows) + window):
        out[int(r.item_id)] = [ev.ours(j, c) for j, c in enumerate(r.cells)]  # type: ignore[call-overload]
    return [out[i] for i in range(len(rows))]


def run_mondrian(
    ds: Dataset, rows: list[tuple[Any, ...]], k: int, ev: Evaluator
) -> list[list[Gen]]:
    return _mondrian_gens(ds, rows, k, ev)


def run_mondrian_windowed(
    ds: Dataset, rows: list[tuple[Any, ...]], k: int, ev: Evaluator, window: int, seed: int
) -> list[list[Gen]]:
    """Mondrian run on each run of ``window`` consecutive arrivals on its own: what a batch
    method can publish when it may only hold as many records as the stream buffers."""
    gens: list[list[Gen]] = [[] for _ in rows]
    for run in chunks(arrival_order(len(rows), seed), window, k):
        for i, g in zip(run, _mondrian_gens(ds, [rows[i] for i in run], k, ev), strict=True):
            gens[i] = g
    return gens


def _mondrian_gens(
    ds: Dataset, rows: list[tuple[Any, ...]], k: int, ev: Evaluator
) -> list[list[Gen]]:
    import pandas as pd  # bench-only, via anonypy
    from anonypy import mondrian  # bench-only dependency

    cols = list(ds.qi_names)
    data: dict[str, Any] = {}
    for j, c in enumerate(cols):
        vals = [r[j] for r in rows]
        if ev.numeric(j):
            data[c] = [_num(v) for v in vals]
        else:
            data[c] = pd.Series([str(v) for v in vals], dtype="category")
    df = pd.DataFrame(data)
    parts = mondrian.Mondrian(df, cols).partition(k=k)
    gens: list[list[Gen]] = [[] for _ in rows]
    for part in parts:
        sub = df.loc[part]
        g: list[Gen] = []
        for c in cols:
            if df[c].dtype.name == "category":
                g.append(("set", frozenset(str(v) for v in sub[c].unique())))
            else:
                g.append(("iv", float(sub[c].min()), float(sub[c].max())))
        for i in part:
            gens[int(i)] = list(g)
    return gens


def snap_to_ladder(
    ds: Dataset, rows: list[tuple[Any, ...]], gens: list[list[Gen]], ev: Evaluator
) -> list[list[Gen]]:
    """Mondrian's partitions made unambiguous: each published range or set widened to the
    finest ladder cell of the record that contains it (merged classes stay >= k)."""
    out: list[list[Gen]] = []
    for r, g in zip(rows, gens, strict=True):
        snapped: list[Gen] = []
        for j, lad in enumerate(ds.ladders):
            best: Gen = None
            pub = g[j]
            for lv in range(lad.top):
                cand = ev.ours(j, lad.cell(r[j], lv))
                if cand is None or pub is None:
                    continue
                # A float cell's hi is exclusive; integer cells were made inclusive by ours().
                exclusive = isinstance(lad, IntervalLadder) and lad.kind == "float"
                if cand[0] == "iv":
                    top_ok = pub[2] < cand[2] if exclusive else pub[2] <= cand[2]
                    fits = cand[1] <= pub[1] and top_ok
                else:
                    fits = pub[1] <= cand[1]
                if fits:
                    best = cand
                    break
            snapped.append(best)
        out.append(snapped)
    return out


def ladder_bound(
    ds: Dataset,
    rows: list[tuple[Any, ...]],
    k: int,
    ev: Evaluator,
    *,
    runs: np.ndarray | None = None,
    near: tuple[np.ndarray, int] | None = None,
) -> float:
    """A lower bound on the NCP of *any* k-anonymous output made of ladder cells.

    In such an output a record is published at one cell per QI (a box), together with >= k-1
    others published at the same box, so the box holds >= k records of the data. Each record
    is therefore charged at least the cheapest box around it that holds k records, whatever
    the partition; the bound is the mean of that minimum (a relaxation: the boxes of different
    records need not agree, so no search reaches it in general). Boxes are tried finest first
    and a box skipped when it cannot lower any record's minimum.

    Windowed: with ``runs`` (a run id per record) the box must hold k records of the record's
    own run, the bound of any method that anonymizes each run on its own; with ``near`` =
    (arrival positions, w) k records that arrived less than w from it, the bound of a method
    whose groups are formed from w buffered records (a group's members were all buffered at
    once), unless it adds records to combinations published earlier (the stream's reuse).
    """
    q, n = len(ds.ladders), len(rows)
    codes: list[list[np.ndarray]] = []
    costs: list[list[np.ndarray]] = []
    for j, lad in enumerate(ds.ladders):
        per_code, per_cost = [], []
        for lv in range(lad.top + 1):
            cells = [lad.cell(r[j], lv) for r in rows]
            ids: dict[Any, int] = {}
            per_code.append(np.array([ids.setdefault(c, len(ids)) for c in cells], np.int64))
            per_cost.append(np.array([ev.ncp(j, ev.ours(j, c)) for c in cells]) / q)
        codes.append(per_code)
        costs.append(per_cost)
    best = np.ones(n)  # suppression is always possible (each QI costs 1 / q at its top)
    grid = itertools.product(*(range(lad.top + 1) for lad in ds.ladders))
    for levels in sorted(grid, key=sum):
        cost = sum((costs[j][lv] for j, lv in enumerate(levels)), np.zeros(n))
        if np.all(cost >= best):
            continue
        key = np.zeros(n, np.int64)
        for j, lv in enumerate(levels):
            key = key * (int(codes[j][lv].max()) + 1) + codes[j][lv]
        best = np.where(_box_counts(key, runs, near) >= k, np.minimum(best, cost), best)
    return float(best.mean())


def _box_counts(
    key: np.ndarray, runs: np.ndarray | None, near: tuple[np.ndarray, int] | None
) -> np.ndarray:
    """Per record, how many records share its box (within its run, or arrived near it)."""
    inverse = np.unique(key, return_inverse=True)[1].reshape(-1)
    if runs is not None:
        inverse = np.unique(inverse * (int(runs.max()) + 1) + runs, return_inverse=True)[1]
        inverse = inverse.reshape(-1)
    if near is None:
        return np.bincount(inverse)[inverse]
    pos, w = near
    span = len(pos) + 2 * w  # keeps each box's positions apart from the next box's
    flat = inverse.astype(np.int64) * span + pos + w
    ordered = np.sort(flat)
    hi = np.searchsorted(ordered, flat + (w - 1), side="right")
    return hi - np.searchsorted(ordered, flat - (w - 1), side="left")


def k_min(gens: list[list[Gen]]) -> tuple[int, float]:
    """Smallest class among non-suppressed combinations, and the fully suppressed share."""
    keys = [tuple(g) for g in gens]
    blank = tuple([None] * len(gens[0]))
    counts = Counter(kk for kk in keys if kk != blank)
    return (min(counts.values()) if counts else 0), sum(kk == blank for kk in keys) / len(keys)


def raw_risk(rows: list[tuple[Any, ...]]) -> tuple[int, float]:
    counts = Counter(rows)
    return min(counts.values()), sum(1 for r in rows if counts[r] == 1) / len(rows)


# --- utility -------------------------------------------------------------------------------


def encode(ev: Evaluator, gens: list[list[Gen]], other: np.ndarray) -> np.ndarray:
    """Intervals as midpoints (suppressed: the range's midpoint), categories as one-hot spread
    evenly over the values the published set covers (suppressed: over the whole domain)."""
    cols: list[np.ndarray] = []
    for j in range(len(ev.ladders)):
        if ev.numeric(j):
            lo, hi = ev.ranges[j]
            mids = [
                (lo + hi) / 2 if g[j] is None else (max(g[j][1], lo) + min(g[j][2], hi)) / 2  # type: ignore[index]
                for g in gens
            ]
            cols.append(np.array(mids)[:, None])
        else:
            dom = sorted(ev.domains[j])
            m = np.zeros((len(gens), len(dom)))
            pos = {v: i for i, v in enumerate(dom)}
            for r, g in enumerate(gens):
                covered = ev.domains[j] if g[j] is None else g[j][1]  # type: ignore[index]
                for v in covered:
                    if v in pos:
                        m[r, pos[v]] = 1.0 / len(covered)
            cols.append(m)
    return np.hstack([*cols, other])


def raw_gens(ev: Evaluator, rows: list[tuple[Any, ...]]) -> list[list[Gen]]:
    out: list[list[Gen]] = []
    for r in rows:
        g: list[Gen] = []
        for j, v in enumerate(r):
            if ev.numeric(j):
                g.append(("iv", _num(v), _num(v)))
            else:
                g.append(("set", frozenset({str(v)})))
        out.append(g)
    return out


def fit_score(
    xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray
) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(xtr, ytr)
    p = model.predict_proba(xte)[:, 1]
    return accuracy_score(yte, p >= 0.5), roc_auc_score(yte, p)


# --- the table -----------------------------------------------------------------------------


def evaluate(
    ds: Dataset, k: int, windows: Sequence[int], seed: int, codes_as_sets: bool = False
) -> list[dict[str, Any]]:
    n = len(ds.qi)
    idx = list(range(n))
    random.Random(seed).shuffle(idx)
    cut = int(n * 0.7)
    tr, te = sorted(idx[:cut]), sorted(idx[cut:])
    rows = [ds.qi[i] for i in tr]
    columns = [[r[j] for r in rows] for j in range(len(ds.ladders))]
    ev = Evaluator(ds.ladders, columns, ds.codes, codes_as_sets)
    kmin, uniq = raw_risk(rows)
    out: list[dict[str, Any]] = []
    methods: list[tuple[str, Callable[[], list[list[Gen]]]]] = [
        ("raw", lambda: raw_gens(ev, rows)),
        ("mondrian", lambda: run_mondrian(ds, rows, k, ev)),
        ("mondrian on ladder", lambda: snap_to_ladder(ds, rows, run_mondrian(ds, rows, k, ev), ev)),
        ("batch", lambda: run_batch(ds, rows, k, ev)),
    ]
    methods += [
        (f"stream w={w}", lambda w=w: run_stream(ds, rows, k, ev, w, seed))  # type: ignore[misc]
        for w in windows
    ]
    methods += [
        (
            f"mondrian per window w={w}",
            lambda w=w: run_mondrian_windowed(ds, rows, k, ev, w, seed),  # type: ignore[misc]
        )
        for w in windows
    ]
    base_ncp = None
    raw_util = None
    test_gens = None
    for name, fn in methods:
        t0 = time.perf_counter()
        gens = fn()
        secs = time.perf_counter() - t0
        ncp = ev.score(gens)
        if name == "mondrian":
            base_ncp = ncp
        km, supp = (kmin, 0.0) if name == "raw" else k_min(gens)
        row: dict[str, Any] = {
            "dataset": f"{ds.name} ({ds.role})",
            "records": len(rows),
            "method": name,
            "k_min": km,
            "unique": uniq if name == "raw" else 0.0,
            "suppressed": supp,
            "ncp": ncp,
            "vs_mondrian": (ncp / base_ncp)
            if base_ncp and name not in ("raw", "mondrian")
            else None,
            "seconds": secs,
        }
        if ds.label is not None:
            if test_gens is None:
                test_gens = raw_gens(ev, [ds.qi[i] for i in te])
            xtr = encode(ev, gens, ds.other[tr])
            xte = encode(ev, test_gens, ds.other[te])
            acc, auc = fit_score(xtr, ds.label[tr], xte, ds.label[te])
            # The same model on the QIs alone: how much of the QIs' own signal survives.
            none_tr, none_te = ds.other[tr][:, :0], ds.other[te][:, :0]
            xq, xqt = encode(ev, gens, none_tr), encode(ev, test_gens, none_te)
            _, qauc = fit_score(xq, ds.label[tr], xqt, ds.label[te])
            if raw_util is None:
                raw_util = (acc, auc, qauc)
            row["acc"], row["auc"] = acc, auc
            row["acc_ratio"], row["auc_ratio"] = acc / raw_util[0], auc / raw_util[1]
            row["qi_auc"], row["qi_auc_ratio"] = qauc, qauc / raw_util[2]
        out.append(row)
    order = arrival_order(len(rows), seed)
    pos = np.empty(len(rows), np.int64)
    pos[order] = np.arange(len(rows))
    bounds: list[tuple[str, dict[str, Any]]] = [("ladder bound", {})]
    for w in windows:
        run_id = np.empty(len(rows), np.int64)
        for r, run in enumerate(chunks(order, w, k)):
            run_id[run] = r
        bounds.append((f"ladder bound per window w={w}", {"runs": run_id}))
        bounds.append((f"ladder bound near w={w}", {"near": (pos, w)}))
    for at, (name, how) in enumerate(bounds):
        t0 = time.perf_counter()
        bound = ladder_bound(ds, rows, k, ev, **how)
        out.insert(3 if at == 0 else len(out), {
            "dataset": f"{ds.name} ({ds.role})",
            "records": len(rows),
            "method": name,
            "ncp": bound,
            "vs_mondrian": bound / base_ncp if base_ncp else None,
            "seconds": time.perf_counter() - t0,
        })  # fmt: skip
    return out


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "-"
    if pct:
        return f"{100 * v:.1f}%"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def print_table(rows: list[dict[str, Any]], k: int) -> None:
    head = (
        "dataset", "records", "method", "k_min", "unique", "suppressed", "ncp", "vs_mondrian",
        "acc", "auc", "acc_ratio", "auc_ratio", "qi_auc", "qi_auc_ratio", "seconds",
    )  # fmt: skip
    pct = {"unique", "suppressed"}
    table = [[_fmt(r.get(h), h in pct) for h in head] for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(head)]
    print(f"k = {k}, l = 1; stream w = max_delay_ms at 1 record/ms (busy shared machine)")
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    for t in table:
        print("  ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)))
    print("goals: stream ncp <= 1.5x mondrian, batch <= 1.1x; acc/auc ratio >= 0.95 at k = 5")


LOADERS: dict[str, Callable[[], Dataset]] = {
    "anes96": load_anes96,
    "fair": load_fair,
    "diabetes": load_diabetes,
    "customers": load_customers,
    "customers-5y": lambda: load_customers(dates=CUSTOMER_DATES_5Y),
    "customers-5y-digits": lambda: load_customers(dates=CUSTOMER_DATES_5Y, digits=True),
    "customers-shipped": load_customers_shipped,
}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument(
        "--windows", default="500,2000,5000", help="stream max_delay_ms values (1 record/ms)"
    )
    ap.add_argument(
        "--datasets",
        default=",".join(LOADERS),
        help=f"comma-separated, among {', '.join(LOADERS)}",
    )
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--customers", type=int, default=5000)
    ap.add_argument(
        "--code-ncp",
        choices=("numbers", "sets"),
        default="numbers",
        help="score postcodes by their range (numbers) or by the distinct codes seen in it",
    )
    args = ap.parse_args(argv)
    windows = [int(w) for w in args.windows.split(",") if w]
    rows: list[dict[str, Any]] = []
    for name in (d for d in args.datasets.split(",") if d):
        if name == "customers-shipped":
            ds = load_customers_shipped(args.customers)
        elif name.startswith("customers"):
            dates = CUSTOMER_DATES_5Y if name.startswith("customers-5y") else CUSTOMER_DATES
            ds = load_customers(args.customers, dates, name.endswith("-digits"))
        else:
            ds = LOADERS[name]()
        rows += evaluate(ds, args.k, windows, args.seed, args.code_ncp == "sets")
    print_table(rows, args.k)
    bad = [r for r in rows if r["method"] != "raw" and r.get("k_min") and r["k_min"] < args.k]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
