from __future__ import annotations

import torch

from optuna_dyhpo._engine import DecisionEngine
from optuna_dyhpo._engine import EngineSettings
from optuna_dyhpo._gp import CurveTable
from optuna_dyhpo._gp import SurrogateInputs
from optuna_dyhpo._gp._calibration import MEDIAN_ABS_NORMAL
from optuna_dyhpo._model_cache import ModelCache
from optuna_dyhpo._refit import MAX_ERRORS
from optuna_dyhpo._refit import record_errors


class _Overconfident:
    """A fitted surrogate that predicts 0 +- 0.1 for every observation."""

    is_fitted = True

    def __init__(self) -> None:
        self.conditioned_on: list[int] = []

    def predict_held_out(
        self, rows: SurrogateInputs, targets: torch.Tensor, query: SurrogateInputs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.conditioned_on.append(rows.n)
        return torch.zeros(query.n, dtype=torch.float64), torch.full(
            (query.n,), 0.1, dtype=torch.float64
        )


def _table() -> CurveTable:
    g = torch.Generator().manual_seed(3)
    lengths = [1, 4, 2, 7, 3, 5]
    x = torch.rand((len(lengths), 2), generator=g, dtype=torch.float64)
    curves = [torch.rand(k, generator=g, dtype=torch.float64).tolist() for k in lengths]
    recency = [[b * 10 + i for b in range(1, k + 1)] for i, k in enumerate(lengths)]
    return CurveTable.build(x, curves, recency, 1.0, 10)


def _cache(fit_obs: int) -> ModelCache:
    cache = ModelCache()
    cache.surrogate = _Overconfident()  # type: ignore[assignment]
    cache.fit_obs = fit_obs
    return cache


def test_the_spread_comes_from_the_errors_on_observations_after_the_fit() -> None:
    table = _table()
    engine = DecisionEngine(EngineSettings(max_budget=10, max_rows=6), seed=0)
    cache = _cache(fit_obs=12)
    record_errors(engine, cache, table, lookahead=True)
    _, observed = table.holdout_rows(12)
    assert cache.errors is not None
    assert len(cache.errors) == int(table.lengths.sum()) - 12
    assert torch.allclose(cache.errors, observed / 0.1)
    expected = float((observed / 0.1).abs().median()) / MEDIAN_ABS_NORMAL
    assert abs(cache.spread - max(expected, 1.0)) < 1e-9
    # Conditioned on the rows that had arrived before the fit only (capped like a decision).
    surrogate = cache.surrogate
    assert isinstance(surrogate, _Overconfident)
    assert surrogate.conditioned_on == [len(table.conditioning_subset(6, True, before=12))]


def test_the_newest_errors_are_kept_and_nothing_without_new_observations() -> None:
    table = _table()
    n_obs = int(table.lengths.sum())
    engine = DecisionEngine(EngineSettings(max_budget=10), seed=0)
    cache = _cache(fit_obs=1)
    for _ in range(2 * MAX_ERRORS // (n_obs - 1) + 1):
        record_errors(engine, cache, table, lookahead=False)
    assert cache.errors is not None and len(cache.errors) == MAX_ERRORS
    held = cache.errors.clone()
    cache.fit_obs = n_obs  # the model has seen everything: no out-of-sample error
    record_errors(engine, cache, table, lookahead=False)
    assert torch.equal(cache.errors, held)


def test_recalibration_can_be_turned_off() -> None:
    engine = DecisionEngine(EngineSettings(max_budget=10, recalibrate=False), seed=0)
    cache = _cache(fit_obs=5)
    record_errors(engine, cache, _table(), lookahead=True)
    assert cache.errors is None and cache.spread == 1.0
