"""Health-insurance claims (``schemas/claims.avsc``): nested records, arrays, maps, decimals."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from decimal import Decimal
from typing import Any

SPECIALTIES = ["cardiology", "dermatology", "oncology", "pediatrics", "radiology"]
CODES = ["E11.9", "I10", "J45.909", "M54.5", "F32.9", "K21.9", "N39.0"]


def _address(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "street": f"{rng.randrange(1, 200)} Main Street {i}",
        "city": "Springfield",
        "postcode": f"{rng.randrange(10000, 99999)}",
    }


def claim_record(i: int, rng: random.Random) -> dict[str, Any]:
    lines: list[dict[str, Any]] = []
    amounts: list[Decimal] = []
    for n in range(rng.randrange(1, 4)):
        amounts.append(Decimal(rng.randrange(1000, 500000)) / 100)
        lines.append(
            {
                "line_no": n + 1,
                "procedure_code": f"99{rng.randrange(100, 999)}",
                "diagnosis_codes": rng.sample(CODES, rng.randrange(1, 3)),
                "service_date": dt.date(2025, 1, 1) + dt.timedelta(days=rng.randrange(0, 300)),
                "amount": amounts[-1],
                "notes": None
                if rng.random() < 0.5
                else f"follow-up in {rng.randrange(2, 9)} weeks",
            }
        )
    return {
        "claim_id": str(uuid.UUID(int=rng.getrandbits(128))),
        "patient_id": f"C{i:09d}",
        "member_email": None if i % 4 == 0 else f"member{i}@example.com",
        "patient": {
            "name": f"Patient {i}",
            "date_of_birth": dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(0, 25000)),
            "address": _address(rng, i) if i % 3 else None,
            "phone_numbers": [f"+1 555 {rng.randrange(1000000, 9999999)}"],
        },
        "provider": {
            "npi": f"{rng.randrange(10**9, 10**10)}",
            "name": f"Clinic {i % 17}",
            "specialty": rng.choice(SPECIALTIES),
        },
        "billing_address": _address(rng, i) if i % 2 else None,
        "submitted_at": dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
        + dt.timedelta(seconds=rng.randrange(0, 90 * 86400)),
        "lines": lines,
        "total_amount": sum(amounts, Decimal("0.00")),
        "status": rng.choice(["SUBMITTED", "APPROVED", "DENIED", "PAID"]),
        "adjuster_notes": {"reviewer": f"adj-{i % 5}"} if i % 2 else {},
        "risk_score": None if i % 5 == 0 else round(rng.random(), 3),
    }
