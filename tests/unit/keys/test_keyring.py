"""Keyring: file mode, rotation, sealing, hygiene."""

from __future__ import annotations

import base64
import json
import os
import pickle
from pathlib import Path

import pytest

from streamproc.config import load_keyring
from streamproc.errors import KeyNotFoundError, KeyringError, RevealError
from streamproc.keys import Keyring


def material(path: Path) -> list[bytes]:
    doc = json.loads(path.read_text())
    return [
        base64.b64decode(v["material"])
        for entry in doc["keys"].values()
        for v in entry["versions"].values()
    ]


def test_save_is_0600_and_load_roundtrips(tmp_path: Path) -> None:
    kr = Keyring.generate(names=["hr"])
    path = kr.save(tmp_path / "keys.json")
    assert os.stat(path).st_mode & 0o777 == 0o600
    again = Keyring.load(path)
    assert again.names() == ("default", "hr", "quarantine")
    assert again.subkey("default", "aes-siv") == kr.subkey("default", "aes-siv")
    assert len(kr.subkey("default", "aes-siv")[1]) == 64
    assert len(kr.subkey("default", "aes-gcm")[1]) == 32


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_refuses_group_or_world_accessible(tmp_path: Path, mode: int) -> None:
    path = Keyring.generate().save(tmp_path / "keys.json")
    path.chmod(mode)
    with pytest.raises(KeyringError, match="too permissive"):
        Keyring.load(path)


@pytest.mark.parametrize(
    "content", ["", "{", "[]", '{"format": "other"}', '{"format": "streamproc-keyring/1"}']
)
def test_refuses_malformed(tmp_path: Path, content: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(KeyringError):
        Keyring.load(path)


def test_missing_file_and_no_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(KeyringError, match="cannot be read"):
        Keyring.load(tmp_path / "nope.json")
    monkeypatch.delenv("STREAMPROC_KEYRING", raising=False)
    with pytest.raises(KeyringError, match="STREAMPROC_KEYRING"):
        load_keyring(None)
    path = Keyring.generate().save(tmp_path / "k.json")
    monkeypatch.setenv("STREAMPROC_KEYRING", str(path))
    assert load_keyring(None).names() == ("default", "quarantine")


def test_rotation_keeps_old_versions(tmp_path: Path) -> None:
    kr = Keyring.generate()
    v1 = kr.subkey("default", "pseudonymize")
    assert kr.rotate("default") == 2
    assert kr.current_version("default") == 2
    assert kr.subkey("default", "pseudonymize", 1) == v1
    assert kr.subkey("default", "pseudonymize")[1] != v1[1]
    assert kr.current_version("quarantine") == 1
    with pytest.raises(KeyNotFoundError):
        kr.subkey("default", "pseudonymize", 3)
    with pytest.raises(KeyNotFoundError):
        kr.current_version("nope")


def test_seal_open_across_rotation() -> None:
    kr = Keyring.generate()
    token = kr.seal(b"raw record bytes", b"topic/0/42")
    assert b"raw record bytes" not in token
    kr.rotate("quarantine")
    token2 = kr.seal(b"second", b"topic/0/43")
    assert kr.open(token, b"topic/0/42") == b"raw record bytes"
    assert kr.open(token2, b"topic/0/43") == b"second"
    with pytest.raises(RevealError):
        kr.open(token, b"topic/0/43")  # wrong associated data
    with pytest.raises(RevealError):
        kr.open(token[:-1] + bytes([token[-1] ^ 1]), b"topic/0/42")
    with pytest.raises(RevealError):
        kr.open(b"junk", b"")
    with pytest.raises(RevealError):
        Keyring.generate().open(token, b"topic/0/42")


def test_key_material_never_in_repr_or_errors(tmp_path: Path) -> None:
    kr = Keyring.generate()
    path = kr.save(tmp_path / "k.json")
    secrets = material(path)
    texts = [repr(kr), str(kr), repr(kr._keys)]
    try:
        kr.subkey("default", "pseudonymize", 9)
    except KeyringError as exc:
        texts.append(str(exc))
    path.chmod(0o644)
    try:
        Keyring.load(path)
    except KeyringError as exc:
        texts.append(str(exc))
    blob = "\n".join(texts)
    for m in secrets:
        for enc in (m.hex(), base64.b64encode(m).decode(), repr(m)):
            assert enc not in blob
    with pytest.raises(TypeError):
        pickle.dumps(kr)


def test_invalid_key_names() -> None:
    with pytest.raises(KeyringError):
        Keyring.generate(names=["bad:name"])
    with pytest.raises(KeyringError):
        Keyring.generate().rotate("has space")
