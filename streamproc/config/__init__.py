"""Configuration: settings from the environment (``STREAMPROC_*``) and topology files."""

from __future__ import annotations

from streamproc.config.settings import (
    DEFAULT_BROKER,
    Settings,
    broker_hosts,
    is_loopback,
    load_keyring,
    load_settings,
)

__all__ = [
    "DEFAULT_BROKER",
    "Settings",
    "broker_hosts",
    "is_loopback",
    "load_keyring",
    "load_settings",
]
