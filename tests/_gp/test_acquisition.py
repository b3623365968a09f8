from __future__ import annotations

import math

import pytest
import torch

from optuna_dyhpo._gp import log_expected_improvement


def _ei_closed_form(mu: float, sigma: float, best: float) -> float:
    z = (mu - best) / sigma
    cdf = 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
    pdf = math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return (mu - best) * cdf + sigma * pdf


@pytest.mark.parametrize("mu,sigma,best", [(0.0, 1.0, 0.0), (1.0, 0.5, 0.2), (-1.0, 0.3, 0.5)])
def test_matches_closed_form(mu: float, sigma: float, best: float) -> None:
    got = log_expected_improvement(
        torch.tensor([mu], dtype=torch.float64),
        torch.tensor([sigma], dtype=torch.float64),
        torch.tensor([best], dtype=torch.float64),
    )
    assert float(got.exp()) == pytest.approx(_ei_closed_form(mu, sigma, best), rel=1e-9)


def test_stays_finite_and_ordered_far_below_incumbent() -> None:
    mu = torch.tensor([-40.0, -30.0, -20.0, -8.0, -5.0], dtype=torch.float64)
    got = log_expected_improvement(mu, torch.ones(5, dtype=torch.float64), torch.zeros(5))
    assert torch.isfinite(got).all()
    assert (got[1:] > got[:-1]).all()  # closer to the incumbent is always better
    # The asymptotic branch agrees with the direct formula where both are accurate.
    direct = math.log(_ei_closed_form(-6.5, 1.0, 0.0))
    approx = float(
        log_expected_improvement(torch.tensor([-6.5]), torch.tensor([1.0]), torch.tensor([0.0]))
    )
    assert approx == pytest.approx(direct, abs=1e-2)


def test_prefers_uncertainty_at_equal_mean() -> None:
    got = log_expected_improvement(
        torch.tensor([0.0, 0.0], dtype=torch.float64),
        torch.tensor([0.1, 1.0], dtype=torch.float64),
        torch.tensor(0.5, dtype=torch.float64),
    )
    assert got[1] > got[0]
