from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
import itertools
import math

import torch


@dataclass(frozen=True)
class SurrogateInputs:
    """Rows of the surrogate's input: configuration, budget, and the partial learning curve.

    Attributes:
        params: Encoded hyperparameters, shape ``(n, d)``, each feature in ``[0, 1]`` (or a
            negative sentinel for an inactive conditional parameter).
        budgets: Budget of each row (the step whose value it predicts) divided by the maximum
            budget, shape ``(n,)``.
        curves: Normalised learning curve the row sees (a prefix of the curve observed before
            its budget), left aligned and zero padded, shape ``(n, width)``.
        masks: 1 where ``curves`` holds an observation, 0 for padding, shape ``(n, width)``.
        prefix: Length of the seen prefix divided by the maximum budget, shape ``(n,)``: a row
            may look several steps ahead of what it sees.
    """

    params: torch.Tensor
    budgets: torch.Tensor
    curves: torch.Tensor
    masks: torch.Tensor
    prefix: torch.Tensor

    @property
    def n(self) -> int:
        return int(self.params.shape[0])

    def pack(self) -> torch.Tensor:
        """One ``(n, d + 2 + 2 * width)`` tensor, the layout the feature extractor reads."""
        return torch.cat(
            [
                self.params,
                self.budgets.unsqueeze(-1),
                self.prefix.unsqueeze(-1),
                self.curves,
                self.masks,
            ],
            dim=-1,
        )

    def concat(self, other: SurrogateInputs) -> SurrogateInputs:
        """These rows followed by ``other``'s (same curve width)."""
        return SurrogateInputs(
            torch.cat([self.params, other.params]),
            torch.cat([self.budgets, other.budgets]),
            torch.cat([self.curves, other.curves]),
            torch.cat([self.masks, other.masks]),
            torch.cat([self.prefix, other.prefix]),
        )

    def select(self, index: torch.Tensor) -> SurrogateInputs:
        return SurrogateInputs(
            self.params[index],
            self.budgets[index],
            self.curves[index],
            self.masks[index],
            self.prefix[index],
        )

    @staticmethod
    def build(
        params: torch.Tensor,
        budgets: Sequence[int],
        prefixes: Sequence[Sequence[float]],
        max_budget: int,
    ) -> SurrogateInputs:
        """Assemble rows from per-row encoded params, integer budgets and curve prefixes.

        Args:
            params: Encoded hyperparameters, shape ``(n, d)``.
            budgets: Budget (1-based step) of each row.
            prefixes: For each row, the normalised curve values observed before its budget.
            max_budget: Largest budget; the curve width.
        """
        n = len(budgets)
        curves = torch.zeros((n, max_budget), dtype=torch.float64)
        masks = torch.zeros((n, max_budget), dtype=torch.float64)
        for i, prefix in enumerate(prefixes):
            k = min(len(prefix), max_budget)
            if k:
                curves[i, :k] = torch.as_tensor(prefix[:k], dtype=torch.float64)
                masks[i, :k] = 1.0
        b = torch.as_tensor(list(budgets), dtype=torch.float64) / float(max_budget)
        seen = masks.sum(dim=-1) / float(max_budget)
        return SurrogateInputs(params.to(torch.float64), b, curves, masks, seen)


def normalise_targets(values: torch.Tensor) -> tuple[float, float]:
    """Location and scale that map ``values`` to zero mean and unit variance.

    Returns ``(mean, std)``; ``std`` falls back to 1 when the values are (nearly) constant so
    that the normalisation never divides by zero.
    """
    if values.numel() == 0:
        return 0.0, 1.0
    mean = float(values.mean())
    std = float(values.std(unbiased=False)) if values.numel() > 1 else 0.0
    if not std > 1e-12:
        std = 1.0
    return mean, std


@dataclass(frozen=True)
class CurveTable:
    """The observed configurations' learning curves, normalised for the surrogate.

    Attributes:
        x: Encoded hyperparameters, shape ``(n, d)``.
        curves: Normalised curves (larger is better), left aligned and zero padded, shape
            ``(n, width)`` where ``width`` is the longest observed curve: the surrogate's cost
            depends on what was observed, never on the maximum budget.
        lengths: Observed steps of each configuration, shape ``(n,)``.
        recency: Order in which the observations arrived (larger is newer), ``(n, width)``.
        max_budget: The budget that normalises the budget feature.
        loc: Location of the normalisation (in the user's metric times the sign).
        scale: Its scale.
    """

    x: torch.Tensor
    curves: torch.Tensor
    lengths: torch.Tensor
    recency: torch.Tensor
    max_budget: int
    loc: float
    scale: float
    _memo: dict[bool, tuple[torch.Tensor, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @staticmethod
    def build(
        x: torch.Tensor,
        curves: Sequence[Sequence[float]],
        recency: Sequence[Sequence[float]],
        sign: float,
        max_budget: int,
    ) -> CurveTable:
        """Normalise ``sign * curves`` with :func:`normalise_targets` over every observation.

        Args:
            x: Encoded hyperparameters, shape ``(n, d)``.
            curves: Each configuration's observed values (at least one each).
            recency: For each value, a key that orders observations by arrival.
            sign: ``1`` to maximise, ``-1`` to minimise.
            max_budget: The largest budget.
        """
        n = len(curves)
        width = max((len(c) for c in curves), default=1)
        lengths = torch.tensor([len(c) for c in curves], dtype=torch.long)
        valid = torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)
        # One flat copy each (row-major order matches ``valid``'s): a Python loop per
        # configuration costs tens of milliseconds once there are thousands of them.
        padded = torch.zeros((n, width), dtype=torch.float64)
        order = torch.zeros((n, width), dtype=torch.float64)
        flat_order = list(itertools.chain.from_iterable(recency))
        if len(flat_order) != int(lengths.sum()):
            raise ValueError("recency must hold one key per observed value")
        flat = list(itertools.chain.from_iterable(curves))
        padded[valid] = torch.tensor(flat, dtype=torch.float64)
        order[valid] = torch.tensor(flat_order, dtype=torch.float64)
        return CurveTable.from_padded(x, padded, order, lengths, sign, max_budget)

    @staticmethod
    def from_padded(
        x: torch.Tensor,
        padded: torch.Tensor,
        recency: torch.Tensor,
        lengths: torch.Tensor,
        sign: float,
        max_budget: int,
    ) -> CurveTable:
        """:meth:`build` from the curves and their keys already left aligned and zero padded
        to shape ``(n, width)``, ``width`` the longest of ``lengths``."""
        valid = torch.arange(padded.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
        loc, scale = normalise_targets(sign * padded[valid])
        normed = torch.where(valid, (sign * padded - loc) / scale, 0.0)
        x, recency = x.to(torch.float64), recency.to(torch.float64)
        return CurveTable(x, normed, lengths, recency, max_budget, loc, scale)

    @property
    def n(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def width(self) -> int:
        return int(self.curves.shape[1])

    def _rows(
        self, cfg: torch.Tensor, budgets: torch.Tensor, seen: torch.Tensor
    ) -> SurrogateInputs:
        """Rows predicting step ``budgets`` of configurations ``cfg`` from their first
        ``seen`` steps."""
        mask = (torch.arange(self.width).unsqueeze(0) < seen.unsqueeze(1)).to(torch.float64)
        return SurrogateInputs(
            self.x[cfg],
            budgets.to(torch.float64) / self.max_budget,
            self.curves[cfg] * mask,
            mask,
            seen.to(torch.float64) / self.max_budget,
        )

    def _observations(self, lookahead: bool) -> tuple[torch.Tensor, ...]:
        """(configuration index, budget, seen steps, depth key) of every training row, oldest
        observation first.

        Every observation gives the one-step row that sees the whole curve before it. With
        ``lookahead``, an observation at budget ``b >= 2`` also gives a row that sees only the
        first ``k < b - 1`` steps (``k`` spread deterministically over ``0 .. b - 2``), so the
        surrogate learns to predict several steps ahead.
        """
        if lookahead not in self._memo:
            self._memo[lookahead] = self._compute_observations(lookahead)
        return self._memo[lookahead]

    def _compute_observations(self, lookahead: bool) -> tuple[torch.Tensor, ...]:
        cfg = torch.repeat_interleave(torch.arange(self.n), self.lengths)
        first = torch.cumsum(self.lengths, 0) - self.lengths
        starts = torch.repeat_interleave(first, self.lengths)
        budgets = torch.arange(len(cfg)) - starts + 1
        order = torch.argsort(self.recency[cfg, budgets - 1], stable=True)
        cfg, budgets = cfg[order], budgets[order]
        seen = budgets - 1
        depth = (self.lengths[cfg] - budgets).to(torch.float64)
        if not lookahead:
            return cfg, budgets, seen, depth
        far = budgets >= 2
        # A low-discrepancy spread of the prefix length over 0 .. b - 2.
        golden = 0.6180339887498949
        frac = torch.remainder((cfg * 7919 + budgets).to(torch.float64) * golden, 1.0)
        k = torch.floor(frac[far] * (budgets[far] - 1).to(torch.float64)).to(torch.long)
        return (
            torch.cat([cfg, cfg[far]]),
            torch.cat([budgets, budgets[far]]),
            torch.cat([seen, k]),
            torch.cat([depth, depth[far] + 0.25]),
        )

    def n_training_rows(self, lookahead: bool = False) -> int:
        """How many rows :meth:`training_rows` has."""
        return len(self._observations(lookahead)[0])

    def training_rows(
        self, lookahead: bool = False, index: torch.Tensor | None = None
    ) -> tuple[SurrogateInputs, torch.Tensor]:
        """Rows ``(config, b, curve[:k]) -> curve[b]``: one per observation with ``k = b - 1``
        (oldest first), then the look-ahead rows (see :meth:`_observations`).

        Args:
            lookahead: Add the look-ahead rows.
            index: Build only these rows (indices into all of them): the fit and the
                conditioning use capped subsets, so a decision's cost does not grow with the
                number of observations.

        Returns:
            The rows and their targets.
        """
        cfg, budgets, seen, _ = self._observations(lookahead)
        if index is not None:
            cfg, budgets, seen = cfg[index], budgets[index], seen[index]
        return self._rows(cfg, budgets, seen), self.curves[cfg, budgets - 1]

    def last_improvement(self) -> int:
        """Index, in arrival order, of the last observation that set a new best value."""
        cfg, budgets, _, _ = self._observations(False)
        values = self.curves[cfg, budgets - 1]
        improved = torch.nonzero(values >= torch.cummax(values, dim=0).values).flatten()
        return int(improved[-1]) if len(improved) else 0

    def conditioning_subset(
        self, max_rows: int, lookahead: bool = False, before: int | None = None
    ) -> torch.Tensor:
        """Indices (into :meth:`training_rows`, ascending) of at most ``max_rows`` rows to
        condition the GP on: every configuration's newest rows first (its older rows are
        prefixes of the curve its newest row already sees), the better configurations' first
        among rows equally deep. With ``before``, only rows whose target is among the first
        ``before`` observations (in arrival order), as if the others had not arrived yet."""
        cfg, budgets, _, depth = self._observations(lookahead)
        rows = torch.arange(len(cfg))
        lengths = self.lengths
        if before is not None:
            rows = torch.nonzero(self._arrival(lookahead) < before).flatten()
            lengths = self.lengths_before(before)
            depth = (lengths[cfg] - budgets).to(torch.float64) + (depth - depth.floor())
        if len(rows) <= max_rows:
            return rows
        last = self.curves[torch.arange(self.n), (lengths - 1).clamp_min(0)]
        last = torch.where(lengths > 0, last, -math.inf)
        rank = torch.argsort(torch.argsort(last, descending=True)).to(torch.float64)
        key = (depth + 0.1 * rank[cfg] / self.n)[rows]
        return rows[torch.argsort(key, stable=True)[:max_rows]].sort().values

    def _arrival(self, lookahead: bool) -> torch.Tensor:
        """Arrival rank (0: oldest) of each training row's target observation."""
        cfg, budgets, _, _ = self._observations(lookahead)
        n_obs = int(self.lengths.sum())
        one = torch.arange(n_obs)
        if not lookahead:
            return one
        return torch.cat([one, one[budgets[:n_obs] >= 2]])

    def lengths_before(self, before: int) -> torch.Tensor:
        """Each configuration's number of observations among the first ``before``."""
        cfg = self._observations(False)[0][:before]
        return torch.bincount(cfg, minlength=self.n)

    def holdout_rows(self, before: int) -> tuple[SurrogateInputs, torch.Tensor]:
        """Rows predicting every observation after the first ``before`` (in arrival order)
        from what its configuration had shown within them (nothing, for a configuration
        started since): the predictions a model of those ``before`` observations would
        have made. Returns the rows and the observed (normalised) values."""
        cfg, budgets, _, _ = self._observations(False)
        cfg, budgets = cfg[before:], budgets[before:]
        return self._rows(cfg, budgets, self.lengths_before(before)[cfg]), self.curves[
            cfg, budgets - 1
        ]

    def next_step_rows(
        self, index: torch.Tensor, target: int | torch.Tensor | None = None
    ) -> SurrogateInputs:
        """Rows that predict each listed configuration's next step (or step ``target``, one
        for all or one per configuration) from its whole curve."""
        lengths = self.lengths[index]
        if target is None:
            budgets = lengths + 1
        elif isinstance(target, torch.Tensor):
            budgets = target
        else:
            budgets = torch.full_like(lengths, target)
        return self._rows(index, budgets, lengths)

    def fresh_rows(self, x: torch.Tensor, target: int = 1) -> SurrogateInputs:
        """Rows that predict step ``target`` of new configurations ``x``."""
        m = int(x.shape[0])
        zeros = torch.zeros((m, self.width), dtype=torch.float64)
        budgets = torch.full((m,), target / self.max_budget, dtype=torch.float64)
        none = torch.zeros(m, dtype=torch.float64)
        return SurrogateInputs(x.to(torch.float64), budgets, zeros, zeros.clone(), none)

    def best(self) -> float:
        """The best normalised value observed."""
        valid = torch.arange(self.width).unsqueeze(0) < self.lengths.unsqueeze(1)
        return float(torch.where(valid, self.curves, -math.inf).max())

    def evidence_budget(self, min_configs: int) -> int:
        """The largest budget that at least ``min_configs`` configurations reached (1 if
        fewer configurations were observed)."""
        if len(self.lengths) < min_configs or min_configs < 1:
            return 1
        return max(1, int(torch.topk(self.lengths, min_configs).values[-1]))

    def incumbents(self, budgets: torch.Tensor, cumulative: bool = False) -> torch.Tensor:
        """DyHPO's incumbent for a candidate at each budget: the best normalised value observed
        at exactly that budget (with ``cumulative``: at any budget up to it), or the best
        observed anywhere if nobody reached it."""
        valid = torch.arange(self.width).unsqueeze(0) < self.lengths.unsqueeze(1)
        best_at = torch.where(valid, self.curves, -math.inf).max(dim=0).values
        if cumulative:
            best_at = torch.cummax(best_at, dim=0).values
        overall = float(best_at.max())
        best_at = torch.cat([best_at, torch.tensor([-math.inf], dtype=torch.float64)])
        inc = best_at[(budgets - 1).clamp(max=self.width)]
        return torch.where(torch.isfinite(inc), inc, torch.full_like(inc, overall))
