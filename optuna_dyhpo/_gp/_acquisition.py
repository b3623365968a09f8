from __future__ import annotations

import math

import torch

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _log_h(z: torch.Tensor) -> torch.Tensor:
    """``log(z * Phi(z) + phi(z))``, stable for very negative ``z``."""
    normal = torch.distributions.Normal(
        torch.zeros((), dtype=z.dtype), torch.ones((), dtype=z.dtype)
    )
    out = torch.empty_like(z)
    small = z < -6.0
    zs = z[~small]
    h = zs * normal.cdf(zs) + torch.exp(normal.log_prob(zs))
    out[~small] = torch.log(h.clamp_min(torch.finfo(z.dtype).tiny))
    # Asymptotic expansion: h(z) ~ phi(z) / z^2 * (1 - 3 / z^2) for z -> -inf.
    zn = z[small]
    out[small] = -0.5 * zn**2 - _LOG_SQRT_2PI - 2.0 * torch.log(-zn) + torch.log1p(-3.0 / zn**2)
    return out


def log_expected_improvement(
    mean: torch.Tensor, std: torch.Tensor, incumbent: torch.Tensor
) -> torch.Tensor:
    """Logarithm of the expected improvement over ``incumbent`` for a maximisation problem.

    Working in log space keeps the ranking meaningful when every candidate's improvement is
    tiny (where plain EI underflows to zero and the argmax becomes arbitrary).

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
