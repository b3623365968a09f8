from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch

from optuna_dyhpo._gp import log_expected_improvement

# Branch boundaries of the log-h evaluation (z = -1/sqrt(eps) is where the asymptotic form
# takes over); the accuracy and continuity tests probe both sides of each.
_EDGES = (0.0, -4.0, -1.0 / math.sqrt(torch.finfo(torch.float64).eps))


def _ei_closed_form(mu: float, sigma: float, best: float) -> float:
    z = (mu - best) / sigma
    cdf = 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
    pdf = math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return (mu - best) * cdf + sigma * pdf


def _log_h(z: torch.Tensor) -> torch.Tensor:
    """``log(z * Phi(z) + phi(z))`` through the public function (``std = 1``, incumbent 0)."""
    return log_expected_improvement(z, torch.ones_like(z), torch.zeros_like(z))


def _mp_log_h(z: float) -> mpmath.mpf:
    # h(z) ~ phi(z) / z**2 for z -> -inf: the sum loses about 2 * log10|z| digits to
    # cancellation, far fewer than the working precision.
    with mpmath.workdps(80):
        zm = mpmath.mpf(z)
        return mpmath.log(zm * mpmath.ncdf(zm) + mpmath.npdf(zm))


def _mp_log_ei(mu: float, sigma: float, best: float) -> mpmath.mpf:
    with mpmath.workdps(80):
        s = mpmath.mpf(max(sigma, 1e-9))  # the documented clamp of std
        d = mpmath.mpf(mu) - mpmath.mpf(best)
        z = d / s
        return mpmath.log(d * mpmath.ncdf(z) + s * mpmath.npdf(z))


def _error(got: float, ref: mpmath.mpf) -> float:
    """Absolute error for ``|ref| <= 1``, relative error beyond."""
    return float(abs(mpmath.mpf(got) - ref) / max(1, abs(ref)))


def _accuracy_grid() -> list[float]:
    negatives = -np.logspace(-3.0, 4.0, 701)  # -1e-3 .. -1e4, log-spaced
    dense = [np.linspace(c - 0.5, c + 0.5, 201) for c in (-6.0, -4.0, -1.0, 0.0)]
    positives = np.linspace(0.0, 40.0, 161)
    edges = [np.nextafter(e, s) for e in _EDGES for s in (-np.inf, np.inf)] + list(_EDGES)
    far = [-1e5, -1e6, -1e7, -1e8, -1e9, -1e12, -1e50]
    return sorted(set(np.concatenate([negatives, *dense, positives, edges, far]).tolist()))


def test_log_h_matches_high_precision_reference() -> None:
    zs = _accuracy_grid()
    got = _log_h(torch.tensor(zs, dtype=torch.float64)).tolist()
    errors = [_error(g, _mp_log_h(z)) for z, g in zip(zs, got, strict=True)]
    worst = int(np.argmax(errors))
    assert errors[worst] <= 1e-12, (zs[worst], got[worst], errors[worst])


@pytest.mark.parametrize(
    "mu,sigma,best",
    [
        (0.0, 1.0, 0.0),
        (1.0, 0.5, 0.2),
        (3.0, 0.01, -1.0),  # z = 400
        (-1.0, 0.3, 0.5),  # z = -5
        (-0.6, 0.1, 0.0),  # z = -6
        (-3.0, 0.1, 2.0),  # z = -50
        (-100.0, 1e-3, 0.0),  # z = -1e5
        (0.2, 2.0, 0.25),
        (-1.0, 1e-12, 0.0),  # std clamped to 1e-9: z = -1e9
    ],
)
def test_log_ei_matches_high_precision_reference(mu: float, sigma: float, best: float) -> None:
    got = log_expected_improvement(
        torch.tensor([mu], dtype=torch.float64),
        torch.tensor([sigma], dtype=torch.float64),
        torch.tensor([best], dtype=torch.float64),
    )
    assert _error(float(got), _mp_log_ei(mu, sigma, best)) <= 1e-12


@pytest.mark.parametrize("mu,sigma,best", [(0.0, 1.0, 0.0), (1.0, 0.5, 0.2), (-1.0, 0.3, 0.5)])
def test_matches_closed_form(mu: float, sigma: float, best: float) -> None:
    got = log_expected_improvement(
        torch.tensor([mu], dtype=torch.float64),
        torch.tensor([sigma], dtype=torch.float64),
        torch.tensor([best], dtype=torch.float64),
    )
    assert float(got.exp()) == pytest.approx(_ei_closed_form(mu, sigma, best), rel=1e-9)


def test_continuous_and_strictly_increasing() -> None:
    # d/dz log h(z) = Phi(z) / h(z) > 0. On a fine grid every increment must be positive and
    # match the slope at the midpoint; a jump anywhere (e.g. where one formula hands over to
    # another) shows up as an increment far from step * slope.
    z = torch.linspace(-40.0, 40.0, 400_001, dtype=torch.float64)
    f = _log_h(z)
    diff = f[1:] - f[:-1]
    assert (diff > 0).all()
    mid = 0.5 * (z[1:] + z[:-1])
    slope = torch.exp(torch.special.log_ndtr(mid) - _log_h(mid))
    step = z[1:] - z[:-1]
    rel = ((diff - step * slope) / (step * slope)).abs()
    worst = int(rel.argmax())
    assert float(rel[worst]) < 1e-4, (float(mid[worst]), float(rel[worst]))
    # Across each branch boundary the function moves by no more than rounding allows.
    for edge in _EDGES:
        below = float(np.nextafter(edge, -np.inf))
        pair = _log_h(torch.tensor([below, edge], dtype=torch.float64))
        jump = float(pair[1] - pair[0])
        assert 0.0 <= jump <= 1e-13 * max(1.0, abs(float(pair[0]))), (edge, jump)


def test_gradients_are_finite_and_correct() -> None:
    zs = [-1e9, -1e5, -7e7, -6.8e7, -60.0, -6.0, -4.0, -3.9, -1.0, -1e-8, 0.0, 1e-8, 2.0, 40.0]
    z = torch.tensor(zs, dtype=torch.float64, requires_grad=True)
    _log_h(z).sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()
    for zi, gi in zip(zs, z.grad.tolist(), strict=True):
        with mpmath.workdps(80):
            zm = mpmath.mpf(zi)
            ref = mpmath.ncdf(zm) / (zm * mpmath.ncdf(zm) + mpmath.npdf(zm))
        assert _error(gi, ref) <= 1e-9, (zi, gi, float(ref))
    # Through the public function with respect to every input, including a clamped std.
    mean = torch.tensor([-30.0, 0.0, 2.0, -1.0], dtype=torch.float64, requires_grad=True)
    std = torch.tensor([1.0, 0.5, 1e-3, 1e-12], dtype=torch.float64, requires_grad=True)
    inc = torch.tensor([0.0, 0.1, 1.0, 0.0], dtype=torch.float64, requires_grad=True)
    log_expected_improvement(mean, std, inc).sum().backward()
    for t in (mean, std, inc):
        assert t.grad is not None and torch.isfinite(t.grad).all()


def test_stays_finite_and_ordered_far_below_incumbent() -> None:
    mu = torch.tensor([-40.0, -30.0, -20.0, -8.0, -5.0], dtype=torch.float64)
    got = log_expected_improvement(mu, torch.ones(5, dtype=torch.float64), torch.zeros(5))
    assert torch.isfinite(got).all()
    assert (got[1:] > got[:-1]).all()  # closer to the incumbent is always better
    # Agrees with the direct formula where that is accurate, also for float32 inputs.
    direct = math.log(_ei_closed_form(-6.5, 1.0, 0.0))
    approx = float(
        log_expected_improvement(torch.tensor([-6.5]), torch.tensor([1.0]), torch.tensor([0.0]))
    )
    assert approx == pytest.approx(direct, rel=1e-6)


def test_prefers_uncertainty_at_equal_mean() -> None:
    got = log_expected_improvement(
        torch.tensor([0.0, 0.0], dtype=torch.float64),
        torch.tensor([0.1, 1.0], dtype=torch.float64),
        torch.tensor(0.5, dtype=torch.float64),
    )
    assert got[1] > got[0]


def test_lookahead_budgets_are_capped_non_decreasing_and_end_at_the_maximum() -> None:
    from optuna_dyhpo._gp import lookahead_budgets

    nxt = torch.tensor([1, 2, 4, 12, 30])
    budgets = lookahead_budgets(nxt, 30)
    assert budgets.tolist() == [
        [1, 3, 9, 30],
        [2, 6, 18, 30],
        [4, 12, 30, 30],
        [12, 30, 30, 30],
        [30, 30, 30, 30],
    ]
    assert lookahead_budgets(nxt, 30, ()).tolist() == [[30]] * 5
    assert torch.all(budgets[:, 1:] >= budgets[:, :-1])


def test_each_distinct_budget_is_scored_once_and_the_best_one_counts() -> None:
    from optuna_dyhpo._gp import best_over_budgets
    from optuna_dyhpo._gp import distinct_budgets
    from optuna_dyhpo._gp import lookahead_budgets

    budgets = lookahead_budgets(torch.tensor([1, 4, 30]), 30)
    keep = distinct_budgets(budgets)
    assert keep.tolist() == [
        [True, True, True, True],
        [True, True, True, False],
        [True, False, False, False],
    ]
    # A masked entry never wins, however large; otherwise the largest log EI counts.
    log_ei = torch.tensor(
        [[-3.0, -1.0, -2.0, -5.0], [-4.0, -6.0, -7.0, 100.0], [-2.0, 50.0, 50.0, 50.0]],
        dtype=torch.float64,
    )
    assert best_over_budgets(log_ei, keep).tolist() == [-1.0, -4.0, -2.0]
