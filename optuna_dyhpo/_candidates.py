"""The current search space, and the fresh candidate configurations scored at every decision."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution

from optuna_dyhpo._search_space import INACTIVE
from optuna_dyhpo._search_space import SearchSpaceEncoder
from optuna_dyhpo._state import Configuration

if TYPE_CHECKING:
    import torch


def current_space(configs: Sequence[Configuration]) -> dict[str, BaseDistribution]:
    """Each parameter's distribution as the newest configuration that used it declared it
    (a widened or narrowed range takes effect at once)."""
    space: dict[str, BaseDistribution] = {}
    ids = [c.config_id for c in configs]
    newest_first = (
        reversed(configs) if ids == sorted(ids) else sorted(configs, key=lambda c: -c.config_id)
    )
    for c in newest_first:
        if c.distributions.keys() <= space.keys():
            continue  # every name already taken from a newer configuration
        for name, dist in c.distributions.items():
            space.setdefault(name, dist)
    return space


class SpaceTracker:
    """:func:`current_space` kept between decisions: a configuration's distributions never
    change, so while the configurations of the previous call are still there, in place,
    only the newer ones after them are read (at 10,000 observations, reading them all cost
    more than the rest of a decision's bookkeeping). The space returned must not be changed.
    """

    def __init__(self) -> None:
        self._configs: list[Configuration] = []
        self._space: dict[str, BaseDistribution] = {}

    def space(self, configs: Sequence[Configuration]) -> dict[str, BaseDistribution]:
        """:func:`current_space` of ``configs`` (in ascending configuration id)."""
        old, n = self._configs, len(self._configs)
        kept = (
            0 < n <= len(configs)
            and all(
                a is b or (a.config_id == b.config_id and a.distributions == b.distributions)
                for a, b in zip(configs, old, strict=False)
            )
            and all(
                a.config_id < b.config_id
                for a, b in zip(configs[n - 1 :], configs[n:], strict=False)
            )
        )
        if kept:
            if len(configs) > n:
                self._space = dict(self._space)
                for c in configs[n:]:  # a newer configuration declares
                    self._space.update(c.distributions)
        else:
            self._space = current_space(configs)
        self._configs = list(configs)
        return self._space


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


def best_per_length(paused: list[Configuration], limit: int, sign: float) -> list[Configuration]:
    """At most ``limit`` paused configurations: the best of every curve length, then the
    second best of every length, and so on (better ones first within a round); in
    configuration order."""
    if len(paused) <= limit:
        return paused
    import numpy as np

    n = len(paused)
    length = np.fromiter((len(c.curve) for c in paused), np.int64, n)
    last = sign * np.fromiter((c.curve[-1] for c in paused), np.float64, n)
    worse = -np.where(np.isfinite(last), last, -np.inf)  # a non-finite value is the worst
    ids = np.fromiter((c.config_id for c in paused), np.int64, n)
    # Rank within each length (0: its best), then keep the lowest ranks, better ones first.
    order = np.lexsort((ids, worse, length))
    starts = np.searchsorted(length[order], length[order], side="left")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - starts
    kept = np.lexsort((ids, worse, rank))[:limit]
    return [paused[i] for i in kept[np.argsort(ids[kept])]]


Patterns = dict[frozenset[str], dict[str, set[Any]]]


def update_patterns(
    patterns: Patterns,
    done: set[int],
    encoder: SearchSpaceEncoder,
    observed: Sequence[Configuration],
) -> None:
    """Add the parameter sets of the observed configurations not in ``done`` to
    ``patterns`` (with the categorical choices seen with each); a configuration's parameters
    never change, so each is read once."""
    for c in observed:
        if c.config_id in done:
            continue
        done.add(c.config_id)
        seen = patterns.setdefault(frozenset(c.params), {})
        for name, value in c.params.items():
            if isinstance(encoder.distributions.get(name), CategoricalDistribution):
                seen.setdefault(name, set()).add(value)


def fresh_candidates(
    encoder: SearchSpaceEncoder,
    observed: Sequence[Configuration],
    n: int,
    seed: int,
    patterns: Patterns | None = None,
) -> tuple[Sequence[dict[str, Any]] | torch.Tensor, torch.Tensor]:
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
        patterns: The observed configurations' patterns, kept up to date by the caller with
            :func:`update_patterns` (``None``: computed here).

    Returns:
        The candidates (a ``(n, n_params)`` unit-cube tensor in a flat space, else a sequence
        of parameter dicts, each decoded when it is read) and their encodings, shape
        ``(n, encoder.dim)``.
    """
    import torch

    if encoder.n_params == 0:
        u = torch.zeros((1, 0), dtype=torch.float64)
    else:
        sobol = torch.quasirandom.SobolEngine(encoder.n_params, scramble=True, seed=seed)
        u = sobol.draw(n, dtype=torch.float64)
    if patterns is None:
        patterns = {}
        update_patterns(patterns, set(), encoder, observed)
    if len(patterns) <= 1:
        return u, encoder.encode_unit(u)
    seen_anywhere: dict[str, set[Any]] = {}
    for seen in patterns.values():
        for name, values in seen.items():
            seen_anywhere.setdefault(name, set()).update(values)
    keys = sorted(patterns, key=lambda p: sorted(p))
    # Row i takes pattern i % len(keys). A categorical coordinate is moved to the centre of
    # the cell of an allowed choice, so that decoding and encoding the rows agree.
    u = u.clone()
    inactive = torch.zeros_like(u, dtype=torch.bool)
    for k, pattern in enumerate(keys):
        rows = torch.arange(k, len(u), len(keys))
        for j, (name, dist) in enumerate(encoder.distributions.items()):
            if name not in pattern:
                inactive[rows, j] = True
            elif isinstance(dist, CategoricalDistribution):
                allowed = [
                    i
                    for i, ch in enumerate(dist.choices)
                    if ch in patterns[pattern].get(name, set())
                    or ch not in seen_anywhere.get(name, set())
                ] or list(range(len(dist.choices)))
                pick = (u[rows, j] * len(allowed)).long().clamp(0, len(allowed) - 1)
                choice = torch.tensor(allowed, dtype=torch.float64)[pick]
                u[rows, j] = (choice + 0.5) / len(dist.choices)
    x = encoder.encode_unit(u)
    col = 0
    for j, dist in enumerate(encoder.distributions.values()):
        width = len(dist.choices) if isinstance(dist, CategoricalDistribution) else 1
        off = inactive[:, j]
        x[off, col : col + width] = 0.0 if isinstance(dist, CategoricalDistribution) else INACTIVE
        col += width
    active = [[name for name in encoder.distributions if name in p] for p in keys]
    return _Conditional(encoder, u, active), x


class _Conditional(Sequence[dict[str, Any]]):
    """Fresh candidates of a conditional space, decoded when read (a decision reads one):
    row ``i`` of ``u`` with the parameters ``active[i % len(active)]``."""

    def __init__(
        self, encoder: SearchSpaceEncoder, u: torch.Tensor, active: list[list[str]]
    ) -> None:
        self._encoder = encoder
        self._u = u
        self._active = active

    def __len__(self) -> int:
        return len(self._u)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        i = int(i) + len(self) if int(i) < 0 else int(i)
        params = self._encoder.decode(self._u[i].tolist())
        return {name: params[name] for name in self._active[i % len(self._active)]}
