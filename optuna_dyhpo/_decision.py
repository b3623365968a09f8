"""What DyHPO decides and how: the decision record, the engine's settings and counters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal

if TYPE_CHECKING:
    from optuna_dyhpo._gp import SurrogateSettings


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
        reason: ``"ei"``, ``"successive halving"``, ``"initial design"``, ``"collapse"`` or
            ``"fallback: ..."``.
    """

    kind: Literal["continue", "resume", "fresh"]
    config_id: int | None
    params: dict[str, Any] | None
    budget: int
    log_ei: float
    reason: str


@dataclass(frozen=True)
class EngineSettings:
    """How DyHPO decides (defaults chosen by ``benchmarks/ablation.py``).

    Attributes:
        max_budget: Largest step a configuration may reach.
        n_startup_configs: Configurations started (one step each) before the model is used.
        n_candidates: Fresh configurations scored at every decision.
        refit_every: New observations after which the surrogate is refitted (warm-started),
            or ``refit_growth`` times the observations of the last fit if that is more; in
            between it is conditioned on the new data with its learned parameters. With other
            workers' configurations pending, it is multiplied by the number of workers.
        max_rows: Most rows the GP conditions on (every configuration's newest rows first).
        max_paused: Most paused configurations scored at a decision: the best ones at each
            curve length first (the first, second, ... best of every length, better ones
            first), so that a decision's cost does not grow with the study's history.
        promotion_probability: Probability that a decision first asks successive halving
            for a promotion (Syne Tune's DyHPO mixes in promotions with 0.25).
        eta: Reduction factor of the successive-halving rungs.
        collapse_window: When this many newest configurations all stopped after one step and
            DyHPO would start yet another one, a successive-halving promotion is made instead
            (with a warning): no configuration stays at one step because all the others do.
        stagnation: A fit from scratch happens after ``stagnation * max_budget`` (at least 60)
            observations without a new best value (the reference implementation's restart
            rule); ``0`` turns it off.
        incumbent: ``"at-budget"`` compares a candidate at budget ``b`` with the best value
            observed at exactly ``b`` (the paper); ``"up-to-budget"`` with the best value
            observed at any budget up to ``b``, so that continuing a poor curve at a budget
            only poor curves reached is not rewarded.
        hyperband_brackets: Promotions judge each configuration first at its Hyperband
            bracket's budget (most after one epoch, a few only at ``max_budget``): a hedge
            against early epochs that mislead, such as crossing learning curves.
        acquisition: ``"next-step"``: expected improvement of each candidate's next step over
            the incumbent at that budget (the paper); ``"lookahead"``: of its value at
            ``max_budget`` (predicted from the curve so far, with a surrogate that also learns
            from rows looking several steps ahead) over the best value observed; ``"rung"``:
            of its value at ``horizon`` times its next budget (capped at ``max_budget``) over
            the best value observed at that budget, so it looks past slow starts without
            judging every configuration by a far extrapolation; ``"multi-horizon"``: like
            ``"lookahead"``, but at its next budget, 3 and 9 times that and ``max_budget``, the
            best of the four (a lower bound on the expected improvement of the best value along
            the rest of its curve, which also holds when curves peak early); ``"evidence"``: of
            its value at its next budget or, if that is larger, the largest budget that
            ``n_startup_configs`` configurations reached, over the best value observed there.
            With ``"lookahead"`` and ``"multi-horizon"`` the one fresh candidate scored is
            chosen at that evidence budget (``_scores.fresh_choice``).
        proposal: Which new configuration is the candidate in a flat search space: ``"gp"``,
            the best of ``n_candidates`` scrambled Sobol points by the surrogate's expected
            improvement; ``"tpe"``, Optuna's TPE proposal given every configuration's curve
            as a stopped trial (``_proposal``). A conditional space always uses ``"gp"``.
        horizon: How far ``"rung"`` looks ahead, as a multiple of the next budget.
        surrogate: The surrogate's own settings (fit steps, fit rows); ``None``: its defaults.
        fit_in_background: Refits (all fits but a study's first) run in a helper process
            while the objective trains; a refit started at ``n`` observations is used from the
            first decision with ``n + background_lag`` observations (waiting for it there if it
            is not done), so decisions stay a function of the study's state.
        background_lag: See ``fit_in_background``.
        recalibrate: Widen the surrogate's predictive spread by how far its out-of-sample
            errors exceed it (``_gp._calibration``; measured before each refit on the
            observations that arrived since the previous fit).
    """

    max_budget: int
    n_startup_configs: int = 5
    n_candidates: int = 512
    proposal: Literal["gp", "tpe"] = "gp"
    refit_every: int = 20
    refit_growth: float = 0.1
    max_rows: int = 500
    max_paused: int = 512
    promotion_probability: float = 0.25
    eta: int = 3
    collapse_window: int = 10
    stagnation: float = 1.2
    incumbent: Literal["at-budget", "up-to-budget"] = "at-budget"
    hyperband_brackets: bool = True
    acquisition: Literal["next-step", "lookahead", "rung", "multi-horizon", "evidence"] = (
        "lookahead"
    )
    horizon: int = 3
    surrogate: SurrogateSettings | None = None
    fit_in_background: bool = False
    background_lag: int = 5
    recalibrate: bool = True


@dataclass
class EngineStats:
    """Counters for overhead reporting."""

    decisions: int = 0
    scratch_fits: int = 0
    warm_fits: int = 0
    failed_fits: int = 0
    adopted_models: int = 0
    promotions: int = 0
    background_fits: int = 0
    fit_seconds: float = 0.0
    background_fit_seconds: float = 0.0
    predict_seconds: float = 0.0
