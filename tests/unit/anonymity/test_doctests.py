"""The runnable examples in the anonymity modules' docstrings stay true."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from streamproc.anonymity import batch, ladder, spec, stream


@pytest.mark.parametrize("module", [ladder, batch, stream, spec], ids=lambda m: m.__name__)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
