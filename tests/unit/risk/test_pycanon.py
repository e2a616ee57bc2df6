"""measure() agrees with pycanon's k-anonymity and l-diversity.

On generated tables (hypothesis: nulls, generalized ranges, lists, mixed types) and on real
public microdata shipped with statsmodels (``fair``: 6,366 survey answers; ``anes96``: 944
voters), nothing downloaded. pycanon groups with pandas, which drops null keys, so each value
is handed to it as the repr of its normalised form (``None`` -> ``'None'``) and records whose
quasi-identifiers are all null (which ``measure`` suppresses) are left out of its table.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from pycanon import anonymity
from pycanon.anonymity.utils.aux_anonymity import get_equiv_class

from streamproc.risk import measure, normalise

VALUES = st.one_of(
    st.none(),
    st.integers(0, 3),
    st.sampled_from(["a", "b", "1"]),
    st.fixed_dictionaries({"lo": st.integers(0, 1), "hi": st.integers(1, 2)}),
    st.lists(st.integers(0, 1), max_size=2),
)


def tokens(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        [{c: repr(normalise(row[c])) for c in columns} for row in rows]
    ).reset_index(drop=True)


def shares(df: pd.DataFrame, quasi: list[str], total: int, k: int) -> tuple[float, float]:
    """(unique share, below-k share) from pycanon's own equivalence classes."""
    sizes = [len(ec) for ec in get_equiv_class(df, quasi)]
    return sum(n == 1 for n in sizes) / total, sum(n for n in sizes if n < k) / total


def pycanon_stats(
    rows: list[dict[str, Any]], quasi: list[str], sensitive: str, k: int
) -> tuple[Any, ...]:
    kept = [r for r in rows if any(r[q] is not None for q in quasi)]
    if not kept:
        return None, None, 0.0, 0.0
    df = tokens(kept, [*quasi, sensitive])
    return (
        anonymity.k_anonymity(df, quasi),
        anonymity.l_diversity(df, quasi, [sensitive]),
        *shares(df, quasi, len(rows), k),
    )


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[str]]:
    width = draw(st.integers(1, 3))
    quasi = [f"q{i}" for i in range(width)]
    row = st.fixed_dictionaries(
        {**{q: VALUES for q in quasi}, "s": st.one_of(st.none(), st.integers(0, 2))}
    )
    return draw(st.lists(row, min_size=1, max_size=80)), quasi


@settings(max_examples=80, deadline=None)
@given(tables(), st.integers(1, 6))
def test_generated_tables(table: tuple[list[dict[str, Any]], list[str]], k: int) -> None:
    rows, quasi = table
    r = measure(rows, quasi, sensitive="s", k=k)
    unique, below = r.unique_share, r.below_k_share
    assert (r.k_min, r.l_min, unique, below) == pycanon_stats(rows, quasi, "s", k)


def microdata() -> list[tuple[str, pd.DataFrame, list[str], str]]:
    fair = sm.datasets.fair.load_pandas().data
    anes = sm.datasets.anes96.load_pandas().data
    return [
        ("fair", fair, ["age"], "rate_marriage"),
        ("fair", fair, ["educ", "religious"], "affairs"),
        ("fair", fair, ["age", "educ"], "rate_marriage"),
        ("fair", fair, ["age", "yrs_married", "children"], "religious"),
        ("fair", fair, ["age", "yrs_married", "children", "educ", "occupation"], "rate_marriage"),
        ("anes96", anes, ["educ"], "PID"),
        ("anes96", anes, ["age", "educ"], "vote"),
        ("anes96", anes, ["age", "educ", "income"], "PID"),
        ("anes96", anes, ["educ", "income"], "vote"),
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "df", "quasi", "sensitive"),
    microdata(),
    ids=[f"{m[0]}:{'+'.join(m[2])}" for m in microdata()],
)
def test_real_microdata(name: str, df: pd.DataFrame, quasi: list[str], sensitive: str) -> None:
    df = df.reset_index(drop=True)
    rows = df[[*quasi, sensitive]].to_dict("records")
    report = measure(rows, quasi, sensitive=sensitive, k=5)
    assert report.records == len(df)
    assert report.k_min == anonymity.k_anonymity(df, quasi)
    assert report.l_min == anonymity.l_diversity(df, quasi, [sensitive])
    assert report.classes == df.groupby(quasi).ngroups
    assert (report.unique_share, report.below_k_share) == shares(df, quasi, len(df), 5)
