"""Recalibration of the surrogate's predictive spread from its own out-of-sample errors.

A deep kernel fitted by maximising the marginal likelihood can become overconfident: its
feature extractor learns to fit the training rows, and the predictive standard deviation
shrinks far below the real error (measured by ``benchmarks/calibration.py``: true values a
median 4-19 standard deviations away on the robustness suite). Expected improvement then
collapses on confident wrong predictions. The remedy here is a single scale on the standard
deviation (temperature scaling of the predictive distribution): the errors of predictions the
model made before seeing the observations, standardised by their predicted spread, have a
median absolute value of ``0.6745`` when the model is calibrated; their observed median over
that value is the factor its spread is too narrow by.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# Median of |z| for a standard normal z.
MEDIAN_ABS_NORMAL = 0.6744897501960817


def standardised_errors(
    mean: torch.Tensor, sd: torch.Tensor, observed: torch.Tensor
) -> torch.Tensor:
    """``(observed - mean) / sd`` of the finite observations.

    Example:
        >>> import torch
        >>> observed = torch.tensor([1.0, -4.0, float("nan")])
        >>> standardised_errors(torch.zeros(3), torch.full((3,), 2.0), observed)
        tensor([ 0.5000, -2.0000])
    """
    z = (observed - mean) / sd
    return z[z.isfinite()]


def spread_scale(z: torch.Tensor, min_errors: int = 10, max_scale: float = 100.0) -> float:
    """How much wider than predicted the errors ``z`` are: ``median |z| / 0.6745``, at least 1
    (a spread is never narrowed: an underconfident model still explores) and at most
    ``max_scale``; 1 with fewer than ``min_errors`` errors.

    Example:
        >>> import torch
        >>> spread_scale(torch.tensor([0.6744897501960817] * 10))
        1.0
        >>> round(spread_scale(torch.tensor([-3.0, 3.0] * 5)), 3)
        4.448
    """
    if len(z) < min_errors:
        return 1.0
    scale = float(z.abs().median()) / MEDIAN_ABS_NORMAL
    if not math.isfinite(scale):
        return 1.0
    return min(max(scale, 1.0), max_scale)
