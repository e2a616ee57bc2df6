"""Per-subject DP budgets: a pure ledger keyed by keyed pseudonyms of subject values."""

from __future__ import annotations

from streamproc.budget.ledger import (
    Account,
    BudgetError,
    BudgetLedger,
    BudgetStats,
    subject_key,
)
from streamproc.budget.pseudonyms import SubjectPseudonyms

__all__ = [
    "Account",
    "BudgetError",
    "BudgetLedger",
    "BudgetStats",
    "SubjectPseudonyms",
    "subject_key",
]
