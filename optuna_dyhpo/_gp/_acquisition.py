"""Expected improvement in log space, accurate over the whole real line, and the budgets the
look-ahead acquisitions judge a candidate at."""

from __future__ import annotations

from collections.abc import Sequence
import math

import torch

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_SQRT_HALF_PI = math.sqrt(0.5 * math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)

# Region boundaries of ``_log_h`` (in ``z``); see its docstring.
_CONTINUED_FRACTION_BELOW = -4.0
_ASYMPTOTIC_BELOW = -1.0 / math.sqrt(torch.finfo(torch.float64).eps)
# Depth of the continued fraction; for |z| >= 4 forty levels are exact to float64 rounding.
_CONTINUED_FRACTION_DEPTH = 40


def _log_pdf(t: torch.Tensor) -> torch.Tensor:
    """``log phi(t)``, the standard normal log density."""
    return -0.5 * t * t - _LOG_SQRT_2PI


def _t_mills(t: torch.Tensor) -> torch.Tensor:
    """``t * R(t)`` for ``t >= 0``, where ``R(t) = (1 - Phi(t)) / phi(t)`` is the Mills ratio.

    ``R(t) = sqrt(pi / 2) * erfcx(t / sqrt(2))``. ``1 - t * R(t)`` decreases from 1 to 0 like
    ``1 / (1 + t**2)``, so forming it costs a factor of about ``1 + t**2`` in relative
    precision: harmless for ``t <= 4``.
    """
    return t * _SQRT_HALF_PI * torch.special.erfcx(t * _INV_SQRT_2)


def _log_h_positive(z: torch.Tensor) -> torch.Tensor:
    """``log h(z)`` for ``z >= 0`` via ``h(z) = z + h(-z) = z + phi(z) * (1 - z * R(z))``.

    Both terms are non-negative, so nothing cancels. Beyond ``z = 40`` the second term is
    below ``1e-340`` and underflows to zero; capping its argument there keeps ``z = inf``
    from producing ``inf * 0``.
    """
    capped = z.clamp_max(40.0)
    return torch.log(z + torch.exp(_log_pdf(capped)) * (1.0 - _t_mills(capped)))


def _log_h_erfcx(t: torch.Tensor) -> torch.Tensor:
    """``log h(-t) = log phi(t) + log1p(-t * R(t))`` for ``0 <= t <= 4``.

    ``t * R(t)`` is at most 0.95 here, so ``1 - t * R(t)`` keeps its relative error within
    about ``20 * eps``.
    """
    return _log_pdf(t) + torch.log1p(-_t_mills(t))


def _log_h_continued_fraction(t: torch.Tensor) -> torch.Tensor:
    """``log h(-t)`` without cancellation, from Laplace's continued fraction; for ``t >= 4``.

    ``R(t) = 1 / (t + K)`` with ``K = 1 / (t + 2 / (t + 3 / (t + ...)))``, hence
    ``1 - t * R(t) = K / (t + K)``: a ratio of positive numbers, exact to rounding however
    close ``t * R(t)`` is to one.
    """
    tail = torch.zeros_like(t)
    for k in range(_CONTINUED_FRACTION_DEPTH, 0, -1):
        tail = k / (t + tail)
    return _log_pdf(t) + torch.log(tail) - torch.log(t + tail)


def _log_h_asymptotic(t: torch.Tensor) -> torch.Tensor:
    """``log h(-t) = log(phi(t) / t**2)``, exact to float64 rounding once ``t > 1 / sqrt(eps)``."""
    return _log_pdf(t) - 2.0 * torch.log(t)


def _log_h(z: torch.Tensor) -> torch.Tensor:
    """``log h(z) = log(z * Phi(z) + phi(z))``, accurate to float64 rounding for every ``z``.

    ``Phi`` and ``phi`` are the standard normal CDF and density, ``R`` the Mills ratio
    ``(1 - Phi) / phi``. Four regions:

    * ``z > 0``: ``log(z + phi(z) * (1 - z R(z)))``, a sum of non-negative terms;
    * ``-4 < z <= 0``: ``log phi(z) + log1p(-|z| R(|z|))``;
    * ``-1/sqrt(eps) < z <= -4``: ``log phi(z) + log(K / (|z| + K))`` from a continued
      fraction, which avoids the cancellation in ``1 - |z| R(|z|) ~ 1 / z**2``;
    * ``z <= -1/sqrt(eps)``: ``log phi(z) - 2 log|z|``, equal to the above in float64.

    The error is about ``1e-15 * max(1, |log h(z)|)``. Every branch is evaluated on inputs
    clamped into its own region, so values and gradients are finite everywhere and the
    unselected branches contribute zero gradient. Computed in float64 whatever the input
    precision; returned in the input's dtype.
    """
    dtype = z.dtype
    z64 = z.to(torch.float64)
    t = -z64
    positive = _log_h_positive(z64.clamp_min(0.0))
    middle = _log_h_erfcx(t.clamp(0.0, -_CONTINUED_FRACTION_BELOW))
    fraction = _log_h_continued_fraction(t.clamp(-_CONTINUED_FRACTION_BELOW, -_ASYMPTOTIC_BELOW))
    asymptotic = _log_h_asymptotic(t.clamp_min(-_ASYMPTOTIC_BELOW))
    out = torch.where(
        z64 > 0.0,
        positive,
        torch.where(
            z64 > _CONTINUED_FRACTION_BELOW,
            middle,
            torch.where(z64 > _ASYMPTOTIC_BELOW, fraction, asymptotic),
        ),
    )
    # NaN fails every comparison and lands in the last branch, whose clamped input stays NaN.
    return out.to(dtype)


def log_expected_improvement(
    mean: torch.Tensor, std: torch.Tensor, incumbent: torch.Tensor
) -> torch.Tensor:
    """Logarithm of the expected improvement over ``incumbent`` for a maximisation problem.

    Working in log space keeps the ranking meaningful when every candidate's improvement is
    tiny (where plain EI underflows to zero and the argmax becomes arbitrary). ``log(EI)`` is
    ``log(std) + log h(z)`` with ``z = (mean - incumbent) / std`` and
    ``h(z) = z * Phi(z) + phi(z)``; ``log h`` is evaluated to float64 rounding accuracy for
    every ``z`` (absolute error about ``1e-15 * max(1, |log h(z)|)``), continuous and strictly
    increasing, with finite gradients.

    Args:
        mean: Posterior means, shape ``(n,)``.
        std: Posterior standard deviations, shape ``(n,)``; clamped away from zero.
        incumbent: Best value to improve on, per candidate, shape ``(n,)`` (or a scalar).

    Returns:
        ``log(EI)`` of shape ``(n,)``.
    """
    std = std.clamp_min(1e-9)
    z = (mean - incumbent) / std
    return torch.log(std) + _log_h(z)


# Multiples of a candidate's next budget the look-ahead judges it at (besides the maximum).
LOOKAHEAD_FACTORS = (1, 3, 9)


def lookahead_budgets(
    next_budget: torch.Tensor, max_budget: int, factors: Sequence[int] = LOOKAHEAD_FACTORS
) -> torch.Tensor:
    """The budgets the look-ahead judges each candidate at, shape ``(n, len(factors) + 1)``.

    Row ``i`` holds ``f * next_budget[i]`` for each of the increasing ``factors``, capped at
    ``max_budget``, then ``max_budget``: non-decreasing, so a repeated budget (a capped one)
    sits next to its twin (see :func:`distinct_budgets`). No factors: ``max_budget`` only.
    """
    columns = [torch.clamp(f * next_budget, max=max_budget) for f in factors]
    columns.append(torch.full_like(next_budget, max_budget))
    return torch.stack(columns, dim=1)


def distinct_budgets(budgets: torch.Tensor) -> torch.Tensor:
    """Mask of the entries of :func:`lookahead_budgets` that differ from their left
    neighbour (the first column always counts): each distinct budget is predicted once."""
    keep = torch.ones_like(budgets, dtype=torch.bool)
    keep[:, 1:] = budgets[:, 1:] != budgets[:, :-1]
    return keep


def best_over_budgets(log_ei: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Per row, the largest of the ``log_ei`` values (shape ``(n, h)``) where ``keep``.

    The improvement a configuration can bring is the best value along the rest of its curve
    (the best checkpoint counts), and the expected improvement of that maximum is at least
    the expected improvement of its value at any one budget: the largest of them is a lower
    bound that still holds when a curve peaks before the maximum budget (overfitting, a loss
    that turns up), where judging only the value at the maximum budget would not.
    """
    return torch.where(keep, log_ei, -math.inf).max(dim=1).values
