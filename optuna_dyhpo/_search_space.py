"""Encoding Optuna distributions into the unit cube and sampling fresh candidates."""

from __future__ import annotations

from collections.abc import Mapping
import math
from typing import TYPE_CHECKING
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution

if TYPE_CHECKING:
    import torch


# Encoded value of a numeric parameter that a configuration does not use (conditional spaces).
INACTIVE = -0.5

_TINY = 1e-300


def _half_step(dist: FloatDistribution | IntDistribution) -> float:
    """Half the grid step of a discrete (integer or stepped) distribution; 0 if continuous."""
    if isinstance(dist, IntDistribution):
        return 0.5 * dist.step
    return 0.0 if dist.step is None else 0.5 * dist.step


def _bounds(dist: FloatDistribution | IntDistribution) -> tuple[float, float]:
    """Bounds of the (log-)domain that the unit interval maps onto linearly.

    A discrete (integer or stepped) distribution is padded by half a step on each side,
    before the log if it is log-scaled, so that every grid value owns the whole cell of
    points that round to it. On a linear scale all cells are then equally wide and the end
    points are drawn as often as the values between them (unpadded, they got half as much);
    on a log scale the cell of ``v`` has width ``log((v + 1/2) / (v - 1/2))``.

    Args:
        dist: A numeric distribution.

    Returns:
        ``(lo, hi)``; ``lo == hi`` only for a continuous distribution with ``low == high``.
    """
    half = _half_step(dist)
    lo, hi = float(dist.low) - half, float(dist.high) + half
    if dist.log:
        return math.log(lo), math.log(hi)
    return lo, hi


def _internal(dist: FloatDistribution | IntDistribution, value: float) -> float:
    """Position of ``value`` on the domain of :func:`_bounds`.

    For a grid value this is the centre of its cell: the value itself on a linear scale; for
    a log-scaled integer the midpoint of ``[log(value - 1/2), log(value + 1/2)]`` (the
    log-domain points that round to it), slightly below ``log(value)``.

    Args:
        dist: A numeric distribution.
        value: A value of the parameter.

    Returns:
        The position, to be normalised with :func:`_bounds`.
    """
    if not dist.log:
        return value
    half = _half_step(dist)
    if half == 0.0:
        return math.log(max(value, _TINY))
    return 0.5 * (math.log(max(value - half, _TINY)) + math.log(max(value + half, _TINY)))


class SearchSpaceEncoder:
    """Maps parameter dicts to feature vectors in ``[0, 1]`` and unit-cube points back.

    Numeric parameters take one feature (log-scaled when the distribution is log); a
    categorical parameter takes one feature per choice (one-hot). Parameters are ordered by
    name, so the encoding does not depend on the order in which trials suggested them.

    The range of an integer or stepped parameter is padded by half a step on each side (as
    Optuna's GP sampler does), so a uniform point of the unit cube decodes to every value of
    a linear grid equally often, end points included. A grid value encodes to the centre of
    the interval of unit-cube points that decode to it, so :meth:`encode_unit` agrees with
    ``encode(decode(u))``, and decoding a numeric parameter's feature gives its value back.

    Args:
        distributions: The search space, name to distribution.
    """

    def __init__(self, distributions: Mapping[str, BaseDistribution]) -> None:
        self.distributions = dict(sorted(distributions.items()))
        self.dim = sum(
            len(d.choices) if isinstance(d, CategoricalDistribution) else 1
            for d in self.distributions.values()
        )

    @property
    def n_params(self) -> int:
        return len(self.distributions)

    def encode(self, params: Mapping[str, Any]) -> list[float]:
        out: list[float] = []
        for name, dist in self.distributions.items():
            if isinstance(dist, CategoricalDistribution):
                onehot = [0.0] * len(dist.choices)
                if name in params:
                    try:
                        onehot[int(dist.to_internal_repr(params[name]))] = 1.0
                    except ValueError:
                        pass  # a choice this distribution does not know: leave all zeros
                out.extend(onehot)
            elif name not in params:
                out.append(INACTIVE)
            else:
                assert isinstance(dist, FloatDistribution | IntDistribution)
                lo, hi = _bounds(dist)
                v = _internal(dist, float(params[name]))
                out.append(0.5 if hi <= lo else min(max((v - lo) / (hi - lo), 0.0), 1.0))
        return out

    def encode_unit(self, u: torch.Tensor) -> torch.Tensor:
        """Vectorised ``encode(decode(row))`` for every row of ``u`` (shape ``(m, n_params)``)."""
        import torch

        cols: list[torch.Tensor] = []
        for j, dist in enumerate(self.distributions.values()):
            uj = u[:, j]
            if isinstance(dist, CategoricalDistribution):
                n = len(dist.choices)
                idx = (uj * n).long().clamp(0, n - 1)
                cols.append(torch.nn.functional.one_hot(idx, n).to(u.dtype))
                continue
            assert isinstance(dist, FloatDistribution | IntDistribution)
            lo, hi = _bounds(dist)
            if hi <= lo:
                cols.append(torch.full_like(uj, 0.5).unsqueeze(-1))
                continue
            if dist.step is None and isinstance(dist, FloatDistribution):
                cols.append(uj.unsqueeze(-1))
                continue
            v = lo + uj * (hi - lo)
            if dist.log:
                v = torch.exp(v)
            low, high = float(dist.low), float(dist.high)
            step = float(dist.step) if dist.step is not None else None
            if step is not None:
                v = low + torch.round((v - low) / step) * step
            v = v.clamp(low, high)
            if isinstance(dist, IntDistribution):
                v = torch.round(v)
            if dist.log:
                half = _half_step(dist)
                if half == 0.0:
                    v = torch.log(v)
                else:
                    v = 0.5 * (torch.log(v - half) + torch.log(v + half))
            cols.append(((v - lo) / (hi - lo)).clamp(0.0, 1.0).unsqueeze(-1))
        if not cols:
            return torch.zeros((u.shape[0], 0), dtype=u.dtype)
        return torch.cat(cols, dim=-1)

    def to_unit(self, params: Mapping[str, Any]) -> list[float] | None:
        """A point of ``[0, 1]^n_params`` that :meth:`decode` maps to ``params`` (``None`` if a
        parameter is missing or its categorical choice unknown): the inverse of decoding."""
        u: list[float] = []
        features = self.encode(params)
        k = 0
        for name, dist in self.distributions.items():
            if name not in params:
                return None
            if isinstance(dist, CategoricalDistribution):
                n = len(dist.choices)
                onehot = features[k : k + n]
                if max(onehot) < 1.0:
                    return None
                u.append((onehot.index(1.0) + 0.5) / n)
                k += n
            else:
                u.append(features[k])
                k += 1
        return u

    def decode(self, u: list[float]) -> dict[str, Any]:
        """Map a point of ``[0, 1]^n_params`` (one coordinate per parameter) to params."""
        params: dict[str, Any] = {}
        for ui, (name, dist) in zip(u, self.distributions.items(), strict=True):
            if isinstance(dist, CategoricalDistribution):
                idx = min(int(ui * len(dist.choices)), len(dist.choices) - 1)
                params[name] = dist.choices[idx]
                continue
            assert isinstance(dist, FloatDistribution | IntDistribution)
            lo, hi = _bounds(dist)
            v = lo + ui * (hi - lo)
            if dist.log:
                v = math.exp(v)
            if dist.step is not None:
                step = float(dist.step)
                v = float(dist.low) + round((v - float(dist.low)) / step) * step
            v = min(max(v, float(dist.low)), float(dist.high))
            params[name] = int(round(v)) if isinstance(dist, IntDistribution) else float(v)
        return params
