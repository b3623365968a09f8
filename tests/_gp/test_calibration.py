from __future__ import annotations

import doctest

import pytest
import torch

from optuna_dyhpo._gp import _calibration
from optuna_dyhpo._gp._calibration import spread_scale
from optuna_dyhpo._gp._calibration import standardised_errors


def test_docstring_examples_hold() -> None:
    result = doctest.testmod(_calibration)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("width", [0.2, 1.0, 3.0, 10.0])
def test_the_scale_recovers_how_much_too_narrow_a_gaussian_prediction_is(width: float) -> None:
    g = torch.Generator().manual_seed(0)
    observed = width * torch.randn(20000, generator=g, dtype=torch.float64)
    z = standardised_errors(torch.zeros_like(observed), torch.ones_like(observed), observed)
    scale = spread_scale(z)
    assert abs(scale - max(width, 1.0)) < 0.05 * max(width, 1.0)


def test_few_or_no_finite_errors_leave_the_spread_alone() -> None:
    assert spread_scale(torch.full((9,), 50.0)) == 1.0
    nan = torch.full((20,), float("nan"))
    assert spread_scale(standardised_errors(nan, torch.ones(20), torch.zeros(20))) == 1.0
    assert spread_scale(torch.full((20,), 1e9)) == 100.0
