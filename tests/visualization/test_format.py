from __future__ import annotations

import doctest

import pytest

from optuna_dyhpo.visualization import _format
from optuna_dyhpo.visualization import _utils


@pytest.mark.parametrize("module", [_format, _utils])
def test_docstring_examples_hold(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted > 0
    assert result.failed == 0
