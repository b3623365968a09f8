"""The current search space, and the fresh candidate configurations scored at every decision."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution

from optuna_dyhpo._search_space import SearchSpaceEncoder
from optuna_dyhpo._state import Configuration

if TYPE_CHECKING:
    import torch


def current_space(configs: Sequence[Configuration]) -> dict[str, BaseDistribution]:
    """Each parameter's distribution as the newest configuration that used it declared it
    (a widened or narrowed range takes effect at once)."""
    space: dict[str, BaseDistribution] = {}
    for c in sorted(configs, key=lambda c: c.config_id, reverse=True):
        for name, dist in c.distributions.items():
            space.setdefault(name, dist)
    return space


def params_fit(params: dict[str, Any], space: dict[str, BaseDistribution]) -> list[str]:
    """Names of ``params`` whose value the current ``space`` no longer contains."""
    bad = []
    for name, value in params.items():
        dist = space.get(name)
        try:
            ok = dist is not None and dist._contains(dist.to_internal_repr(value))
        except (ValueError, TypeError):
            ok = False
        if not ok:
            bad.append(name)
    return bad


def fresh_candidates(
    encoder: SearchSpaceEncoder, observed: Sequence[Configuration], n: int, seed: int
) -> tuple[list[dict[str, Any]] | torch.Tensor, torch.Tensor]:
    """``n`` fresh candidates and their encodings.

    In a flat search space these are scrambled Sobol points of the unit cube (returned as
    such; only the winner needs decoding). In a conditional space, a candidate must look like
    what the objective will really train: each takes the set of parameters of an observed
    configuration (its "pattern"), the others stay inactive, and a categorical parameter takes
    the choices seen with that pattern plus any choice not seen anywhere yet.

    Args:
        encoder: The current search space's encoder.
        observed: The observed configurations (their parameter sets are the patterns).
        n: Number of candidates.
        seed: Seed of the Sobol sequence's scrambling.

    Returns:
        The candidates (a ``(n, n_params)`` unit-cube tensor in a flat space, else a list of
        parameter dicts) and their encodings, shape ``(n, encoder.dim)``.
    """
    import torch

    if encoder.n_params == 0:
        u = torch.zeros((1, 0), dtype=torch.float64)
    else:
        sobol = torch.quasirandom.SobolEngine(encoder.n_params, scramble=True, seed=seed)
        u = sobol.draw(n, dtype=torch.float64)
    patterns: dict[frozenset[str], dict[str, set[Any]]] = {}
    for c in observed:
        seen = patterns.setdefault(frozenset(c.params), {})
        for name, value in c.params.items():
            if isinstance(encoder.distributions.get(name), CategoricalDistribution):
                seen.setdefault(name, set()).add(value)
    if len(patterns) <= 1:
        return u, encoder.encode_unit(u)
    seen_anywhere: dict[str, set[Any]] = {}
    for seen in patterns.values():
        for name, values in seen.items():
            seen_anywhere.setdefault(name, set()).update(values)
    keys = sorted(patterns, key=lambda p: sorted(p))
    candidates: list[dict[str, Any]] = []
    for i, row in enumerate(u.tolist()):
        pattern = keys[i % len(keys)]
        params = {k: v for k, v in encoder.decode(row).items() if k in pattern}
        for j, (name, dist) in enumerate(encoder.distributions.items()):
            if name in pattern and isinstance(dist, CategoricalDistribution):
                allowed = [
                    ch
                    for ch in dist.choices
                    if ch in patterns[pattern].get(name, set())
                    or ch not in seen_anywhere.get(name, set())
                ]
                params[name] = allowed[min(int(row[j] * len(allowed)), len(allowed) - 1)]
        candidates.append(params)
    x = torch.tensor([encoder.encode(p) for p in candidates], dtype=torch.float64)
    return candidates, x.reshape(len(candidates), encoder.dim)
