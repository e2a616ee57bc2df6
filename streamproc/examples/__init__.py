"""Example schemas and topologies, shipped as package data (``streamproc demo`` uses them)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def examples_dir() -> Path:
    """The folder holding ``schemas/`` and ``topologies/`` of the installed package."""
    return Path(str(resources.files(__name__)))


def schema_path(name: str) -> Path:
    """An example schema by file name, e.g. ``customer_profile.avsc``."""
    return examples_dir() / "schemas" / name


def topology_path(name: str) -> Path:
    """An example topology by file name, e.g. ``customers.yaml``."""
    return examples_dir() / "topologies" / name
