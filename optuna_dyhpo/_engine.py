"""DyHPO's decision: which configuration deserves the next step.

The engine turns the configurations read from storage into surrogate rows, keeps one fitted
surrogate between decisions (refitting only when enough new data arrived), and scores the
candidates with multi-fidelity expected improvement. It never touches storage itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import math
import time
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal

from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution

from optuna_dyhpo._logging import get_logger
from optuna_dyhpo._search_space import SearchSpaceEncoder
from optuna_dyhpo._state import Configuration

if TYPE_CHECKING:
    import torch

    from optuna_dyhpo._gp import SurrogateInputs


_logger = get_logger("engine")


@dataclass(frozen=True)
class Decision:
    """Who gets the next step.

    Attributes:
        kind: ``"continue"`` (the running configuration), ``"resume"`` (a paused one) or
            ``"fresh"`` (a new configuration).
        config_id: The configuration to continue or resume.
        params: Parameters of the fresh configuration (``None``: sample at random).
        budget: The step the winner will train next.
        log_ei: Log expected improvement of the winner (``nan`` without a model).
        reason: ``"ei"``, ``"initial design"`` or ``"fallback: ..."``.
    """

    kind: Literal["continue", "resume", "fresh"]
    config_id: int | None
    params: dict[str, Any] | None
    budget: int
    log_ei: float
    reason: str


@dataclass
class EngineStats:
    """Counters for overhead reporting."""

    decisions: int = 0
    scratch_fits: int = 0
    warm_fits: int = 0
    failed_fits: int = 0
    fit_seconds: float = 0.0
    predict_seconds: float = 0.0


def _union_space(configs: Sequence[Configuration]) -> dict[str, BaseDistribution]:
    space: dict[str, BaseDistribution] = {}
    for c in configs:
        for name, dist in c.distributions.items():
            space.setdefault(name, dist)
    return space


class DecisionEngine:
    """Scores candidates with DyHPO's multi-fidelity expected improvement.

    Args:
        max_budget: Largest step a configuration may reach.
        seed: Seed of everything random in the decision.
        n_startup_configs: Configurations started (one step each) before the model is used.
        n_candidates: Fresh configurations scored at every decision.
        refit_growth: Relative growth of the data that triggers a warm-started refit; between
            refits the model is conditioned on the new data with its learned parameters. With
            other workers' configurations pending, it is multiplied by the number of workers.
        max_rows: Most rows the GP conditions on. Beyond it, every configuration keeps its
            newest rows first (its older rows are prefixes of the curve the newest row already
            sees); the per-budget incumbent always uses all observations.
    """

    def __init__(
        self,
        max_budget: int,
        seed: int,
        n_startup_configs: int,
        n_candidates: int,
        refit_growth: float = 0.1,
        max_rows: int = 400,
    ) -> None:
        self.max_budget = max_budget
        self.seed = seed
        self.n_startup_configs = n_startup_configs
        self.n_candidates = n_candidates
        self.refit_growth = refit_growth
        self.max_rows = max_rows
        self.stats = EngineStats()
        self._surrogate: Any = None
        self._encoder_key: tuple[tuple[str, str], ...] | None = None
        self._fit_rows = 0
        self._conditioned_key: tuple[Any, ...] | None = None
        self._fresh_cache: tuple[Any, Any, torch.Tensor] | None = None
        self._x_cache: dict[int, list[float]] = {}
        self._x_cache_key: Any = None
        self._pred_key: Any = None
        self._pred: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._pred_fresh: tuple[torch.Tensor, torch.Tensor] = (None, None)  # type: ignore[assignment]

    # ------------------------------------------------------------------ rows
    def _rows(
        self,
        observed: list[Configuration],
        x_cfg: torch.Tensor,
        sign: float,
    ) -> tuple[SurrogateInputs, torch.Tensor, torch.Tensor, float, float]:
        """Training rows ``(config, b, curve[:b-1]) -> curve[b]`` of every observed step.

        Returns the rows, their normalised targets, each configuration's normalised curve
        (zero padded, shape ``(n_configs, max_budget)``), and the normalisation.
        """
        import torch

        from optuna_dyhpo._gp import SurrogateInputs
        from optuna_dyhpo._gp import normalise_targets

        L = self.max_budget
        lengths = torch.tensor([min(c.last_step, L) for c in observed])
        padded = torch.tensor(
            [c.curve[:L] + [0.0] * (L - min(c.last_step, L)) for c in observed],
            dtype=torch.float64,
        )
        valid = torch.arange(L).unsqueeze(0) < lengths.unsqueeze(1)
        loc, scale = normalise_targets(sign * padded[valid])
        curves_cfg = torch.where(valid, (sign * padded - loc) / scale, 0.0)
        cfg_idx = torch.repeat_interleave(torch.arange(len(observed)), lengths)
        budgets = torch.cat([torch.arange(1, int(k) + 1) for k in lengths])
        mask = (torch.arange(L).unsqueeze(0) < (budgets - 1).unsqueeze(1)).to(torch.float64)
        inputs = SurrogateInputs(
            x_cfg[cfg_idx], budgets.to(torch.float64) / L, curves_cfg[cfg_idx] * mask, mask
        )
        targets = curves_cfg[cfg_idx, budgets - 1]
        if inputs.n > self.max_rows:
            # Newest rows of every configuration first; among equally old rows, the better
            # configurations' first.
            depth = (lengths[cfg_idx] - budgets).to(torch.float64)
            last = curves_cfg[torch.arange(len(observed)), lengths - 1]
            rank = torch.argsort(torch.argsort(last, descending=True)).to(torch.float64)
            key = depth + 0.5 * rank[cfg_idx] / len(observed)
            keep = torch.argsort(key, stable=True)[: self.max_rows].sort().values
            inputs, targets = inputs.select(keep), targets[keep]
        return inputs, targets, curves_cfg, loc, scale

    # ------------------------------------------------------------------ model
    def _ensure_model(
        self,
        inputs: SurrogateInputs,
        targets: torch.Tensor,
        encoder_key: tuple[tuple[str, str], ...],
        data_key: tuple[Any, ...],
        dim: int,
        pending: SurrogateInputs | None,
        pending_key: tuple[Any, ...],
    ) -> tuple[Any, ...]:
        """Fit, refit or condition the surrogate for this data; returns the conditioning key.

        ``pending`` are the next steps of configurations that other workers are training right
        now: they enter the data as fantasies at the model's own prediction (kriging
        believer), which shrinks the uncertainty, and with it the expected improvement, of
        candidates close to them.
        """
        import torch

        from optuna_dyhpo._gp import SurrogateInputs as Inputs

        key = (data_key, pending_key)
        if key == self._conditioned_key:
            return key
        # Every worker refits its own model. With k configurations training elsewhere, about
        # k + 1 workers share the study: each refits (k + 1) times less often, so the study's
        # total refit work stays that of one worker as workers are added.
        growth = self.refit_growth * (1 + len(pending_key))
        t0 = time.perf_counter()
        if self._conditioned_key is None or self._conditioned_key[0] != data_key:
            n = inputs.n
            if self._surrogate is None or encoder_key != self._encoder_key:
                from optuna_dyhpo._gp import Surrogate

                self._surrogate = Surrogate(dim, self.max_budget, seed=self.seed)
                self._encoder_key = encoder_key
                self._surrogate.fit(inputs, targets, warm_start=False)
                self.stats.scratch_fits += 1
                self._fit_rows = n
            elif n >= max(self._fit_rows + 1, self._fit_rows * (1.0 + growth)):
                self._surrogate.fit(inputs, targets, warm_start=True)
                self.stats.warm_fits += 1
                self._fit_rows = n
            else:
                self._surrogate.condition(inputs, targets)
        elif pending_key != self._conditioned_key[1]:
            self._surrogate.condition(inputs, targets)  # drop the previous fantasies
        if pending is not None and pending.n:
            believed, _ = self._surrogate.predict(pending)
            both = Inputs(
                torch.cat([inputs.params, pending.params]),
                torch.cat([inputs.budgets, pending.budgets]),
                torch.cat([inputs.curves, pending.curves]),
                torch.cat([inputs.masks, pending.masks]),
            )
            self._surrogate.condition(both, torch.cat([targets, believed]))
        self.stats.fit_seconds += time.perf_counter() - t0
        self._conditioned_key = key
        self._pred_key = None
        return key

    # ------------------------------------------------------------------ decide
    def decide(
        self,
        configs: dict[int, Configuration],
        maximize: bool,
        running: int | None = None,
    ) -> Decision:
        """Pick the configuration that gets the next step.

        Args:
            configs: Every configuration of the study (see :class:`StudyReader`).
            maximize: Direction of the study.
            running: The configuration whose trial asks (pruner), or ``None`` (a new trial).

        Returns:
            The decision. Candidates are the running configuration, every paused one below
            the maximum budget, and ``n_candidates`` fresh ones. Configurations running in
            other trials are never candidates.
        """
        self.stats.decisions += 1
        paused = [
            c
            for c in sorted(configs.values(), key=lambda c: c.config_id)
            if c.status == "paused" and 0 < c.last_step < self.max_budget
        ]
        existing = list(paused)
        if running is not None:
            existing.append(configs[running])
        pending = [
            c
            for c in sorted(configs.values(), key=lambda c: c.config_id)
            if c.status == "running" and c.config_id != running and c.params
        ]
        if len(configs) < self.n_startup_configs:
            return Decision("fresh", None, None, 1, math.nan, "initial design")
        observed = [c for c in sorted(configs.values(), key=lambda c: c.config_id) if c.curve]
        if not observed:
            return Decision("fresh", None, None, 1, math.nan, "no observations yet")
        from optuna_dyhpo._gp import single_thread

        try:
            with single_thread():
                return self._decide_with_model(observed, existing, pending, maximize, running)
        except Exception as err:  # noqa: BLE001 - any model failure must still yield a decision
            self.stats.failed_fits += 1
            self._conditioned_key = None
            reason = f"fallback: {type(err).__name__}: {err}"
            _logger.warning(f"DyHPO surrogate unavailable, using the greedy fallback ({reason}).")
            return self._fallback(observed, existing, maximize, running, reason)

    def _fresh(
        self,
        encoder: SearchSpaceEncoder,
        observed: list[Configuration],
        data_key: tuple[Any, ...],
    ) -> tuple[list[dict[str, Any]] | torch.Tensor, torch.Tensor]:
        """Fresh candidates for this data and their encodings.

        In a flat search space these are scrambled Sobol points of the unit cube (returned as
        such; only the winner is decoded). In a conditional space, a candidate must look like
        what the objective will really train: each takes the set of parameters of an observed
        configuration (its "pattern"), the others stay inactive, and a categorical parameter
        takes the choices seen with that pattern plus any choice not seen anywhere yet.
        """
        import torch

        if self._fresh_cache is not None and self._fresh_cache[0] == data_key:
            return self._fresh_cache[1], self._fresh_cache[2]
        if encoder.n_params == 0:
            u = torch.zeros((1, 0), dtype=torch.float64)
        else:
            seed = (self.seed * 1_000_003 + hash(data_key[1]) % 1_000_000_007) % (2**31)
            sobol = torch.quasirandom.SobolEngine(encoder.n_params, scramble=True, seed=seed)
            u = sobol.draw(self.n_candidates, dtype=torch.float64)
        patterns: dict[frozenset[str], dict[str, set[Any]]] = {}
        for c in observed:
            seen = patterns.setdefault(frozenset(c.params), {})
            for name, value in c.params.items():
                if isinstance(encoder.distributions.get(name), CategoricalDistribution):
                    seen.setdefault(name, set()).add(value)
        if len(patterns) <= 1:
            x = encoder.encode_unit(u)
            self._fresh_cache = (data_key, u, x)
            return u, x
        seen_anywhere: dict[str, set[Any]] = {}
        for seen in patterns.values():
            for name, values in seen.items():
                seen_anywhere.setdefault(name, set()).update(values)
        keys = sorted(patterns, key=lambda p: sorted(p))
        candidates: list[dict[str, Any]] = []
        for i, row in enumerate(u.tolist()):
            pattern = keys[i % len(keys)]
            full = encoder.decode(row)
            params = {k: v for k, v in full.items() if k in pattern}
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
        x = x.reshape(len(candidates), encoder.dim)
        self._fresh_cache = (data_key, candidates, x)
        return candidates, x

    def _encode_configs(
        self, observed: list[Configuration], encoder: SearchSpaceEncoder, key: Any
    ) -> torch.Tensor:
        import torch

        if self._x_cache_key != key:
            self._x_cache = {}
            self._x_cache_key = key
        rows = []
        for c in observed:
            x = self._x_cache.get(c.config_id)
            if x is None:
                x = self._x_cache[c.config_id] = encoder.encode(c.params)
            rows.append(x)
        return torch.tensor(rows, dtype=torch.float64).reshape(len(observed), encoder.dim)

    def _decide_with_model(
        self,
        observed: list[Configuration],
        existing: list[Configuration],
        pending: list[Configuration],
        maximize: bool,
        running: int | None,
    ) -> Decision:
        import torch

        from optuna_dyhpo._gp import SurrogateInputs
        from optuna_dyhpo._gp import log_expected_improvement

        sign = 1.0 if maximize else -1.0
        L = self.max_budget
        encoder = SearchSpaceEncoder(_union_space(observed))
        encoder_key = tuple((k, repr(v)) for k, v in encoder.distributions.items())
        data_key = (encoder_key, tuple((c.config_id, c.last_step) for c in observed))
        x_cfg = self._encode_configs(observed, encoder, encoder_key)
        inputs, targets, curves_cfg, loc, scale = self._rows(observed, x_cfg, sign)
        pending_inputs = None
        pending_key: tuple[Any, ...] = tuple((c.config_id, c.last_step) for c in pending)
        if pending:
            pending_inputs = SurrogateInputs.build(
                torch.tensor(
                    [encoder.encode(c.params) for c in pending], dtype=torch.float64
                ).reshape(len(pending), encoder.dim),
                [min(c.last_step + 1, L) for c in pending],
                [[(v * sign - loc) / scale for v in c.curve] for c in pending],
                L,
            )
        key = self._ensure_model(
            inputs, targets, encoder_key, data_key, encoder.dim, pending_inputs, pending_key
        )
        fresh_u, fresh_x = self._fresh(encoder, observed, data_key)
        n_fresh = int(fresh_x.shape[0])

        # Per-budget incumbent: best normalised value observed at exactly that budget.
        lengths = torch.tensor([c.last_step for c in observed])
        valid = torch.arange(L).unsqueeze(0) < lengths.unsqueeze(1)
        best_at = torch.where(valid, curves_cfg, -math.inf).max(dim=0).values
        best_at = torch.cat([best_at, torch.tensor([-math.inf], dtype=torch.float64)])
        overall = float(targets.max())

        t0 = time.perf_counter()
        if self._pred_key != key:
            row_of = {c.config_id: i for i, c in enumerate(observed)}
            idx = torch.tensor([row_of[c.config_id] for c in existing], dtype=torch.long)
            ex_len = lengths[idx] if len(existing) else torch.zeros(0, dtype=torch.long)
            mask = (torch.arange(L).unsqueeze(0) < ex_len.unsqueeze(1)).to(torch.float64)
            both = SurrogateInputs(
                torch.cat([x_cfg[idx], fresh_x]),
                torch.cat([(ex_len + 1).to(torch.float64), torch.ones(n_fresh)]) / L,
                torch.cat([curves_cfg[idx] * mask, torch.zeros((n_fresh, L))]),
                torch.cat([mask, torch.zeros((n_fresh, L))]),
            )
            mean, std = self._surrogate.predict(both)
            self._pred_key = key
            self._pred = {c.config_id: (mean[i], std[i]) for i, c in enumerate(existing)}
            self._pred_fresh = (mean[len(existing) :], std[len(existing) :])
        missing = [c for c in existing if c.config_id not in self._pred]
        if missing:  # a configuration that was not a candidate when this data was scored
            self._pred_key = None
            return self._decide_with_model(observed, existing, pending, maximize, running)
        self.stats.predict_seconds += time.perf_counter() - t0

        mean_t = torch.cat(
            [torch.stack([self._pred[c.config_id][0] for c in existing]), self._pred_fresh[0]]
            if existing
            else [self._pred_fresh[0]]
        )
        std_t = torch.cat(
            [torch.stack([self._pred[c.config_id][1] for c in existing]), self._pred_fresh[1]]
            if existing
            else [self._pred_fresh[1]]
        )
        budgets = torch.tensor([c.last_step + 1 for c in existing] + [1] * n_fresh)
        inc = best_at[(budgets - 1).clamp(max=L)]
        inc = torch.where(torch.isfinite(inc), inc, torch.full_like(inc, overall))
        log_ei = log_expected_improvement(mean_t, std_t, inc)
        best = int(torch.argmax(log_ei))
        score = float(log_ei[best])
        if best < len(existing):
            c = existing[best]
            kind: Literal["continue", "resume"] = (
                "continue" if c.config_id == running else "resume"
            )
            return Decision(kind, c.config_id, None, c.last_step + 1, score, "ei")
        chosen = fresh_u[best - len(existing)]
        params = dict(chosen) if isinstance(chosen, dict) else encoder.decode(chosen.tolist())
        return Decision("fresh", None, params, 1, score, "ei")

    def _fallback(
        self,
        observed: list[Configuration],
        existing: list[Configuration],
        maximize: bool,
        running: int | None,
        reason: str,
    ) -> Decision:
        """Greedy decision without a model: the best last value wins; fresh scores the mean
        first-step value, so a new configuration is tried when the existing ones are poor."""
        sign = 1.0 if maximize else -1.0
        first = [sign * c.curve[0] for c in observed]
        fresh_score = sum(first) / len(first)
        best_c: Configuration | None = None
        best_score = fresh_score
        for c in existing:
            s = sign * c.curve[-1]
            if s >= best_score:
                best_c, best_score = c, s
        if best_c is None:
            return Decision("fresh", None, None, 1, math.nan, reason)
        kind: Literal["continue", "resume"] = (
            "continue" if best_c.config_id == running else "resume"
        )
        return Decision(kind, best_c.config_id, None, best_c.last_step + 1, math.nan, reason)
