"""The detector's side effects: who ``--enforce`` never contains."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from streamproc.acl import admin as acl_admin
from streamproc.config.settings import Settings
from streamproc.config.topology import load_topology
from streamproc.runtime.effects import make_enforcer

ROOT = Path(__file__).resolve().parents[3]


def test_enforce_never_contains_the_worker_or_the_detect_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(acl_admin, "admin_client", lambda conf: object())  # no broker here
    (tmp_path / "access.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "access",
                "kind": "detect",
                "source": {"topic": "a.events", "schema": str(ROOT / "schemas/access_event.avsc")},
                "sink": {"topic": "a.cont", "schema": str(ROOT / "schemas/containment.avsc")},
                "dead_letter": {"topic": "a.dlq"},
            }
        )
    )
    (tmp_path / "principals.yaml").write_text(
        yaml.safe_dump(
            {
                "worker": {"principal": "User:sanitizer"},
                "detect_worker": {"principal": "User:detector"},
            }
        )
    )
    enforcer = make_enforcer(load_topology(tmp_path / "access.yaml"), Settings(), None)
    assert {"User:sanitizer", "User:detector"} <= enforcer.protected
