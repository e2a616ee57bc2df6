from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

import pytest


@pytest.fixture
def claims_record() -> dict[str, Any]:
    return {
        "claim_id": uuid.UUID(int=1),
        "patient_id": "P-123",
        "member_email": "ann.lee@example.com",
        "patient": {
            "name": "Ann Lee",
            "date_of_birth": dt.date(1980, 5, 17),
            "address": {"street": "1 Main St", "city": "Leeds", "postcode": "LS1 4AP"},
            "phone_numbers": ["+44 7700 900123"],
        },
        "provider": {"npi": "1234567890", "name": "Dr Who", "specialty": "GP"},
        "billing_address": None,
        "submitted_at": dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC),
        "lines": [
            {
                "line_no": 1,
                "procedure_code": "99213",
                "diagnosis_codes": ["E11.9", "I10"],
                "service_date": dt.date(2024, 2, 20),
                "amount": decimal.Decimal("123.45"),
                "notes": "patient mentioned x",
            }
        ],
        "total_amount": decimal.Decimal("123.45"),
        "status": "SUBMITTED",
        "adjuster_notes": {"adjuster": "called the member"},
        "risk_score": 0.3,
    }
