"""DP epsilon per subject, and the utility of a simple model trained on sanitized vs raw data."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from streamproc.report.data import NUMERIC_KINDS, FieldPolicy, ReportError, column, get_path

MAX_ONE_HOT = 30
TEST_SHARE = 0.3
SEED = 7


@dataclass(frozen=True)
class DPBudget:
    per_field: tuple[tuple[str, float], ...]  # (path, epsilon per record)
    subject_field: str | None  # whose records compose (sequential composition)
    max_records_per_subject: int
    per_subject: float  # worst-case epsilon of one subject over the file


def dp_budget(policies: Sequence[FieldPolicy], raw: list[dict[str, Any]]) -> DPBudget:
    """Epsilon per noised field, and per subject: the sum over fields times the most records
    one subject has (the field named by a noise annotation's ``subject``, else the first
    pseudonymized direct identifier)."""
    noised = [
        (p.path, float(p.annotation.get("epsilon", 0.0))) for p in policies if p.action == "noise"
    ]
    subject = next(
        (str(p.annotation["subject"]) for p in policies if "subject" in p.annotation), None
    )
    if subject is None:
        subject = next(
            (
                p.path
                for p in policies
                if p.privacy_class == "direct" and p.action == "pseudonymize"
            ),
            None,
        )
    most = 1
    if subject is not None and raw:
        counts = Counter(str(get_path(r, subject)) for r in raw)
        most = max(counts.values())
    return DPBudget(tuple(noised), subject, most, sum(e for _, e in noised) * most)


@dataclass(frozen=True)
class Utility:
    label: str
    features_raw: int
    features_sanitized: int
    n_train: int
    n_test: int
    accuracy_raw: float
    accuracy_sanitized: float
    auc_raw: float | None
    auc_sanitized: float | None


def _matrix(records: list[dict[str, Any]], paths: Sequence[str], train: np.ndarray) -> np.ndarray:
    """Numeric columns as they are (missing: the training mean); low-cardinality others
    one-hot on the training rows' categories; the rest left out."""
    cols: list[np.ndarray] = []
    for path in paths:
        kind, values = column(records, path)
        if kind in NUMERIC_KINDS:
            x = np.array([np.nan if v is None else v for v in values], dtype=float)
            fill = np.nanmean(x[train]) if np.isfinite(x[train]).any() else 0.0
            cols.append(np.where(np.isnan(x), fill, x))
            continue
        cats = sorted({str(values[i]) for i in train})
        if len(cats) > MAX_ONE_HOT:
            continue
        for c in cats:
            cols.append(np.array([1.0 if str(v) == c else 0.0 for v in values]))
    return np.column_stack(cols) if cols else np.zeros((len(records), 1))


def utility(
    policies: Sequence[FieldPolicy],
    raw: list[dict[str, Any]],
    sanitized: list[dict[str, Any]],
    label: str,
) -> Utility:
    """Logistic regression on raw vs sanitized features, same rows, same split and labels."""
    pol = next((p for p in policies if p.path == label), None)
    if pol is None or pol.action != "keep" or pol.output_path is None:
        raise ReportError(f"--label {label}: must be a field of the schema whose action is keep")
    if len(raw) != len(sanitized):
        raise ReportError("--label needs the raw and sanitized files to hold the same records")
    _kind, y_values = column(raw, label)
    y = np.array([str(v) for v in y_values])
    if len(set(y)) < 2:
        raise ReportError(f"--label {label}: needs at least two classes")
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(y))
    n_test = max(1, int(len(y) * TEST_SHARE))
    test, train = order[:n_test], order[n_test:]
    others = [p for p in policies if p.path != label]
    x_raw = _matrix(raw, [p.path for p in others], train)
    kept = [p.output_path for p in others if p.output_path is not None]
    x_san = _matrix(sanitized, kept, train)
    acc_r, auc_r = _fit(x_raw, y, train, test)
    acc_s, auc_s = _fit(x_san, y, train, test)
    return Utility(
        label, x_raw.shape[1], x_san.shape[1], len(train), len(test), acc_r, acc_s, auc_r, auc_s
    )


def _fit(
    x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray
) -> tuple[float, float | None]:
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(x[train], y[train])
    acc = float(accuracy_score(y[test], model.predict(x[test])))
    auc = None
    if len(model.classes_) == 2 and len(set(y[test])) == 2:
        auc = float(roc_auc_score(y[test] == model.classes_[1], model.predict_proba(x[test])[:, 1]))
    return acc, auc
