"""The runnable examples in the risk modules' docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["streamproc.risk.measure", "streamproc.risk.rolling"])
def test_docstring_examples(name: str) -> None:
    # import_module: the package re-exports a function named like the measure module.
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
