"""How DyHPO scores its candidates: log expected improvement, at one budget or several ahead.

Pure functions of the engine's settings, the study's curve table and the model cache (which
holds the fitted surrogate and the fresh candidates' predictions of the current
conditioning).
"""

from __future__ import annotations

import math
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
    observed anywhere). Evidence: its next budget or the evidence budget if that is larger
    (the largest budget that ``n_startup_configs`` configurations reached; see
    :func:`fresh_choice`), against the best value observed there."""
    import torch

    from optuna_dyhpo._gp import log_expected_improvement

    surrogate = cache.surrogate
    assert surrogate is not None
    n_fresh = int(fresh_x.shape[0])
    nxt = torch.cat([table.lengths[idx] + 1, torch.ones(n_fresh, dtype=torch.long)])
    if s.acquisition == "evidence":
        ahead = nxt.clamp_min(table.evidence_budget(s.n_startup_configs))
    else:
        ahead = (s.horizon if s.acquisition == "rung" else 1) * nxt
    targets = torch.clamp(ahead, max=s.max_budget)
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
    that, the maximum) and scored by the best of them (see ``_gp.best_over_budgets``). Of
    the fresh candidates only the one :func:`fresh_choice` picks is scored; the others get
    ``-inf``."""
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
        cache.fresh_winner = fresh_choice(s, table, cache, fresh_x)
        w = cache.fresh_winner
        # A fresh candidate starts at budget 1: its look-ahead budgets are those of budget 1.
        one = torch.ones(1, dtype=torch.long)
        fresh_budgets = lookahead_budgets(one, s.max_budget, factors).unique().tolist()
        means, stds = zip(
            *(surrogate.predict(table.fresh_rows(fresh_x[w : w + 1], b)) for b in fresh_budgets),
            strict=True,
        )
        cache.fresh_pred = (cache.conditioned, torch.cat(means), torch.cat(stds))
    _, mean_w, std_w = cache.fresh_pred
    log_ei_f = torch.full((int(fresh_x.shape[0]),), -math.inf, dtype=torch.float64)
    if len(log_ei_f):
        log_ei_f[cache.fresh_winner] = log_expected_improvement(
            mean_w, cache.spread * std_w, incumbent
        ).max()
    return torch.cat([best_over_budgets(log_ei_e, keep), log_ei_f])


def fresh_choice(
    s: EngineSettings, table: CurveTable, cache: ModelCache, fresh_x: torch.Tensor
) -> int:
    """The fresh candidate the look-ahead may start: the best expected improvement at the
    *evidence budget*, the largest budget that ``n_startup_configs`` configurations reached,
    against the best value observed there.

    Far beyond the budgets many curves reached, the model hardly ranks new configurations
    (``benchmarks/calibration.py``: rank correlation 0.06-0.38 at ``max_budget`` on the
    robustness suite), so judging them there picks the most uncertain ones (measured on
    ``fam-noisy``: the new configurations it chose were worse than random ones). Whether to
    start the chosen one rather than continue a paused configuration is still decided by
    its look-ahead score.
    """
    import torch

    from optuna_dyhpo._gp import log_expected_improvement

    surrogate = cache.surrogate
    assert surrogate is not None
    if int(fresh_x.shape[0]) == 0:
        return 0
    evidence = min(table.evidence_budget(s.n_startup_configs), s.max_budget)
    mean, sd = surrogate.predict(table.fresh_rows(fresh_x, evidence))
    at = table.incumbents(torch.tensor([evidence]))
    return int(torch.argmax(log_expected_improvement(mean, cache.spread * sd, at)))
