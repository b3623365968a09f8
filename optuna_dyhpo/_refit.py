"""When DyHPO's surrogate is fitted from scratch, refitted, adopted from the study or kept.

The rules of :class:`~optuna_dyhpo._engine.DecisionEngine` for its model; they depend only on
the observations and the model cache (and, between workers, on the model the study publishes
and its fit lease: ``_shared_model``).
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING
from typing import Literal

from optuna_dyhpo._logging import get_logger
from optuna_dyhpo._model_cache import ModelCache
from optuna_dyhpo._model_cache import PendingFit
from optuna_dyhpo._model_cache import fit_rows
from optuna_dyhpo._warnings import FitError
from optuna_dyhpo._warnings import ModelPending

if TYPE_CHECKING:
    from optuna_dyhpo._engine import DecisionEngine
    from optuna_dyhpo._gp import CurveTable
    from optuna_dyhpo._gp import Surrogate

_logger = get_logger("engine")
# How many of the newest out-of-sample errors the spread scale is computed from.
MAX_ERRORS = 100


def refit(
    engine: DecisionEngine,
    cache: ModelCache,
    table: CurveTable,
    lookahead: bool,
    n_pending: int,
    dim: int,
) -> None:
    """Fit, refit or keep the surrogate for the observations in ``table`` (its training
    rows; only the rows a fit optimises on are built)."""

    s = engine.settings
    n_obs = int(table.lengths.sum())
    if cache.pending is not None:
        if n_obs < cache.pending.ready_at:
            return  # the model being fitted in the background is not due yet
        _install(engine, cache)
    # Reference rule: a fit from scratch after a long stretch without a new best value.
    improved_at = table.last_improvement()
    # At least 60 observations (the rule's value on LCBench, where it was measured): with a
    # small max_budget it would otherwise refit from scratch every few epochs.
    patience = max(int(s.stagnation * s.max_budget), 60) if s.stagnation > 0 else 0
    restart = (
        patience > 0
        and n_obs - 1 - improved_at >= patience
        and cache.last_scratch_obs < improved_at + patience
    )
    # About to fit: another process may have published a fit on more observations.
    if (cache.surrogate is None or restart or _refit_due(engine, cache, n_obs, n_pending)) and (
        engine.models is not None and engine.models.adopt(cache, n_obs, dim)
    ):
        engine.stats.adopted_models += 1
        restart = restart and cache.last_scratch_obs < improved_at + patience
    due = _refit_due(engine, cache, n_obs, n_pending)
    if (
        engine.models is not None
        and not cache.scratch_next
        and ((cache.surrogate is None or restart or due) and engine.models.fitting_elsewhere())
    ):
        # Another worker is fitting (nearly) this model: use it once it is published.
        if cache.surrogate is None:
            raise ModelPending("another worker is fitting the study's first model")
        return
    if s.fit_in_background and cache.surrogate is not None and engine.fitter() is not None:
        _schedule(engine, cache, table, lookahead, n_pending, dim, n_obs, restart)
        return
    if _fit_kind(engine, cache, n_obs, n_pending, restart) is None:
        return  # nothing to fit: no fit lease taken (two storage writes) either
    fits = engine.stats.scratch_fits + engine.stats.warm_fits
    t0 = time.perf_counter()
    with contextlib.ExitStack() as lease:
        if engine.models is not None:
            lease.enter_context(engine.models.fitting())
        _fit_now(engine, cache, table, lookahead, n_pending, dim, n_obs, restart)
    engine.stats.fit_seconds += time.perf_counter() - t0
    if engine.models is not None and engine.stats.scratch_fits + engine.stats.warm_fits > fits:
        engine.models.publish(cache, dim)


def _fit_now(
    engine: DecisionEngine,
    cache: ModelCache,
    table: CurveTable,
    lookahead: bool,
    n_pending: int,
    dim: int,
    n_obs: int,
    restart: bool,
) -> None:
    kind = _fit_kind(engine, cache, n_obs, n_pending, restart)
    try:
        if kind == "scratch":
            record_errors(engine, cache, table, lookahead)
            surrogate = _scratch_surrogate(engine, dim, n_obs)
            surrogate.fit(*fit_rows(surrogate, table, lookahead), warm_start=False)
            cache.fits += 1
            cache.surrogate, cache.scratch_next = surrogate, False
            cache.last_scratch_obs, cache.fit_obs = n_obs, n_obs
            engine.stats.scratch_fits += 1
        elif kind == "warm":
            assert cache.surrogate is not None
            record_errors(engine, cache, table, lookahead)
            try:
                cache.surrogate.fit(*fit_rows(cache.surrogate, table, lookahead), warm_start=True)
                cache.fits += 1
                engine.stats.warm_fits += 1
            except FitError as err:
                _logger.debug(f"Warm refit failed ({err}); fitting from scratch.")
                cache.surrogate = None
                cache.scratch_next = True
                return _fit_now(engine, cache, table, lookahead, n_pending, dim, n_obs, restart)
            cache.fit_obs = n_obs
    except FitError:
        cache.scratch_next = True
        raise


def record_errors(
    engine: DecisionEngine, cache: ModelCache, table: CurveTable, lookahead: bool
) -> None:
    """Before the surrogate is replaced: its standardised errors on the observations that
    arrived since its fit, predicted from the rows before them (out of sample for its
    parameters and its data), kept for the spread scale of ``_gp._calibration``."""
    import torch

    from optuna_dyhpo._gp._calibration import spread_scale
    from optuna_dyhpo._gp._calibration import standardised_errors

    surrogate = cache.surrogate
    n_obs = int(table.lengths.sum())
    if (
        not engine.settings.recalibrate
        or surrogate is None
        or not surrogate.is_fitted
        or not 0 < cache.fit_obs < n_obs
    ):
        return
    keep = table.conditioning_subset(engine.settings.max_rows, lookahead, before=cache.fit_obs)
    query, observed = table.holdout_rows(cache.fit_obs)
    try:
        mean, sd = surrogate.predict_held_out(*table.training_rows(lookahead, keep), query)
    except FitError as err:
        _logger.debug(f"No calibration errors at {n_obs} observations: {err}.")
        return
    z = standardised_errors(mean, sd, observed)
    held = z if cache.errors is None else torch.cat([cache.errors, z])
    cache.errors = held[-MAX_ERRORS:]
    spread = spread_scale(cache.errors)
    if spread != cache.spread:
        _logger.debug(f"Predictive spread widened by {spread:.3g} (was {cache.spread:.3g}).")
    cache.spread = spread


def _refit_due(engine: DecisionEngine, cache: ModelCache, n_obs: int, n_pending: int) -> bool:
    """Whether enough observations arrived since the last fit for a (warm) refit."""
    s = engine.settings
    grow = max(s.refit_every, s.refit_growth * cache.fit_obs) * (1 + n_pending)
    return n_obs - cache.fit_obs >= grow


def _fit_kind(
    engine: DecisionEngine, cache: ModelCache, n_obs: int, n_pending: int, restart: bool
) -> Literal["scratch", "warm"] | None:
    """The fit the observations call for now: from scratch, a warm refit, or none."""
    if cache.surrogate is None or cache.scratch_next or restart:
        return "scratch"
    return "warm" if _refit_due(engine, cache, n_obs, n_pending) else None


def _scratch_surrogate(engine: DecisionEngine, dim: int, n_obs: int) -> Surrogate:
    """A fresh surrogate for a fit from scratch at ``n_obs`` observations (seeded by them)."""
    from optuna_dyhpo._gp import Surrogate

    return Surrogate(dim, engine.seed + 7919 * n_obs, engine.settings.surrogate)


def _schedule(
    engine: DecisionEngine,
    cache: ModelCache,
    table: CurveTable,
    lookahead: bool,
    n_pending: int,
    dim: int,
    n_obs: int,
    restart: bool,
) -> None:
    """Start the fit :func:`_fit_now` would make in the background helper, if one is due;
    the rows and the seed are those of a fit now, the bookkeeping is that of a fit now (so no
    second fit is started), the surrogate changes only in :func:`_install`."""
    fitter = engine.fitter()
    assert fitter is not None and cache.surrogate is not None
    kind = _fit_kind(engine, cache, n_obs, n_pending, restart)
    if kind == "scratch":
        surrogate, warm = _scratch_surrogate(engine, dim, n_obs), False
        cache.last_scratch_obs, cache.scratch_next = n_obs, False
    elif kind == "warm":
        surrogate, warm = cache.surrogate, True
    else:
        return
    record_errors(engine, cache, table, lookahead)
    job = fitter.submit(surrogate, *fit_rows(surrogate, table, lookahead), warm)
    cache.fit_obs = n_obs
    cache.pending = PendingFit(job, n_obs + engine.settings.background_lag)
    if engine.models is not None:
        engine.models.take_lease()  # released when the fit is installed (or has expired)


def _install(engine: DecisionEngine, cache: ModelCache) -> None:
    """Use the background fit of ``cache`` (waiting for it if it is still running)."""
    from optuna_dyhpo._gp._fit_server import BackgroundFitError

    pending, cache.pending = cache.pending, None
    assert pending is not None
    t0 = time.perf_counter()
    fitter = engine.fitter()
    in_helper = fitter is not None
    try:
        if fitter is None:
            raise BackgroundFitError("the fit helper was stopped")
        outcome = fitter.result(pending.job)
    except BackgroundFitError as err:
        if fitter is not None:
            engine.stop_background_fits(str(err))
        in_helper = False
        outcome = pending.job.fit_here()
    finally:
        if engine.models is not None:
            engine.models.release_lease()
    engine.stats.fit_seconds += time.perf_counter() - t0
    engine.stats.background_fit_seconds += outcome.seconds
    if outcome.error is not None:
        _logger.debug(f"Background fit failed ({outcome.error}); the next fit is from scratch.")
        if not pending.job.warm:
            engine.stats.failed_fits += 1
        cache.scratch_next = True
        return
    cache.surrogate = outcome.surrogate
    cache.fits += 1
    engine.stats.background_fits += int(in_helper)
    if pending.job.warm:
        engine.stats.warm_fits += 1
    else:
        engine.stats.scratch_fits += 1
    if engine.models is not None:
        engine.models.publish(cache, cache.surrogate.n_params)
