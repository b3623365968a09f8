"""How DyHPO scores its candidates: log expected improvement, at one budget or several ahead.

Pure functions of the engine's settings, the study's curve table and the model cache (which
holds the fitted surrogate and the fresh candidates' predictions of the current
conditioning).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from optuna_dyhpo._decision import EngineSettings
from optuna_dyhpo._model_cache import ModelCache

if TYPE_CHECKING:
    import torch

    from optuna_dyhpo._gp import CurveTable


def step_scores(
    s: EngineSettings,
    table: CurveTable,
    cache: ModelCache,
    idx: torch.Tensor,
    fresh_x: torch.Tensor,
) -> torch.Tensor:
    """Log EI of the existing configurations ``idx`` (rows of ``table``), then of the fresh
    ones, each judged at one budget. Next step: its next budget, against the best value
    observed at that budget (the paper). Rung: ``horizon`` times its next budget (capped
    at the maximum), against the best value observed at that budget (else the best
    observed anywhere)."""
    import torch

    from optuna_dyhpo._gp import log_expected_improvement

    surrogate = cache.surrogate
    assert surrogate is not None
    n_fresh = int(fresh_x.shape[0])
    factor = s.horizon if s.acquisition == "rung" else 1
    nxt = torch.cat([table.lengths[idx] + 1, torch.ones(n_fresh, dtype=torch.long)])
    targets = torch.clamp(factor * nxt, max=s.max_budget)
    fresh_target = int(targets[-1]) if n_fresh else 1
    if cache.fresh_pred is None or cache.fresh_pred[0] != cache.conditioned:
        cache.fresh_pred = (
            cache.conditioned,
            *surrogate.predict(table.fresh_rows(fresh_x, fresh_target)),
        )
    _, mean_f, std_f = cache.fresh_pred
    if len(idx):
        mean_e, std_e = surrogate.predict(table.next_step_rows(idx, targets[: len(idx)]))
    else:
        mean_e = std_e = torch.zeros(0, dtype=torch.float64)
    incumbent = table.incumbents(targets, cumulative=s.incumbent == "up-to-budget")
    return log_expected_improvement(
        torch.cat([mean_e, mean_f]), cache.spread * torch.cat([std_e, std_f]), incumbent
    )


def lookahead_scores(
    s: EngineSettings,
    table: CurveTable,
    cache: ModelCache,
    idx: torch.Tensor,
    fresh_x: torch.Tensor,
) -> torch.Tensor:
    """Log EI of the existing configurations ``idx``, then of the fresh ones, over the best
    value observed (as DPL and ifBO do), each judged at the maximum budget (``"lookahead"``),
    or with ``"multi-horizon"`` at several budgets ahead (its next budget, 3 and 9 times
    that, the maximum) and scored by the best of them (see ``_gp.best_over_budgets``)."""
    import torch

    from optuna_dyhpo._gp import LOOKAHEAD_FACTORS
    from optuna_dyhpo._gp import best_over_budgets
    from optuna_dyhpo._gp import distinct_budgets
    from optuna_dyhpo._gp import log_expected_improvement
    from optuna_dyhpo._gp import lookahead_budgets

    surrogate = cache.surrogate
    assert surrogate is not None
    incumbent = torch.tensor(table.best(), dtype=torch.float64)
    factors = LOOKAHEAD_FACTORS if s.acquisition == "multi-horizon" else ()
    budgets = lookahead_budgets(table.lengths[idx] + 1, s.max_budget, factors)
    keep = distinct_budgets(budgets)
    rows, cols = torch.nonzero(keep, as_tuple=True)
    log_ei_e = torch.zeros(budgets.shape, dtype=torch.float64)
    if len(rows):
        mean_e, std_e = surrogate.predict(table.next_step_rows(idx[rows], budgets[rows, cols]))
        log_ei_e[rows, cols] = log_expected_improvement(mean_e, cache.spread * std_e, incumbent)
    if cache.fresh_pred is None or cache.fresh_pred[0] != cache.conditioned:
        # Every fresh candidate starts at budget 1: the same few budgets for all.
        one = torch.ones(1, dtype=torch.long)
        fresh_budgets = lookahead_budgets(one, s.max_budget, factors).unique().tolist()
        means, stds = zip(
            *(surrogate.predict(table.fresh_rows(fresh_x, b)) for b in fresh_budgets),
            strict=True,
        )
        cache.fresh_pred = (cache.conditioned, torch.stack(means), torch.stack(stds))
    _, mean_f, std_f = cache.fresh_pred
    log_ei_f = log_expected_improvement(
        mean_f.flatten(), cache.spread * std_f.flatten(), incumbent
    ).reshape(mean_f.shape)
    return torch.cat([best_over_budgets(log_ei_e, keep), log_ei_f.max(dim=0).values])
