"""Keyring: named, versioned keys with rotation; see :mod:`streamproc.keys.keyring`."""

from __future__ import annotations

from streamproc.keys.keyring import DEFAULT_NAMES, Keyring, check_key_name

__all__ = ["DEFAULT_NAMES", "Keyring", "check_key_name"]
