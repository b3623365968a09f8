"""DyHPO's decision: which configuration deserves the next step.

The decision is a function of the study's configurations (read from storage by ``_state``) and
of a model cache. The cache holds the fitted surrogate of one (storage, study, search-space
encoding); it only saves work: a refit is decided from the observations themselves, so the
same study state gives the same decision whatever else the process did. The engine never
touches storage.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal
import weakref

import numpy as np
from optuna.distributions import BaseDistribution

from optuna_dyhpo._candidates import SpaceTracker
from optuna_dyhpo._candidates import best_per_length
from optuna_dyhpo._candidates import fresh_candidates
from optuna_dyhpo._candidates import params_fit
from optuna_dyhpo._candidates import update_patterns
from optuna_dyhpo._decision import Decision
from optuna_dyhpo._decision import EngineSettings
from optuna_dyhpo._decision import EngineStats
from optuna_dyhpo._logging import get_logger
from optuna_dyhpo._model_cache import ModelCache
from optuna_dyhpo._model_cache import curve_table
from optuna_dyhpo._promotion import bracket_floor
from optuna_dyhpo._promotion import promotion
from optuna_dyhpo._proposal import tpe_proposal
from optuna_dyhpo._refit import refit
from optuna_dyhpo._scores import lookahead_scores
from optuna_dyhpo._scores import step_scores
from optuna_dyhpo._search_space import SearchSpaceEncoder
from optuna_dyhpo._state import Configuration
from optuna_dyhpo._warnings import FitError
from optuna_dyhpo._warnings import ModelPending
from optuna_dyhpo._warnings import warn_once

if TYPE_CHECKING:
    from optuna_dyhpo._gp import CurveTable
    from optuna_dyhpo._gp._fit_server import BackgroundFitter
    from optuna_dyhpo._shared_model import SharedModels


_logger = get_logger("engine")


class _Scope:
    """Stands for "no storage" (configurations passed in directly, as in tests)."""


_NO_SCOPE = _Scope()


def _uniform(seed: int, *keys: int) -> float:
    """A uniform draw that depends only on the seed and the decision's identity."""
    return float(np.random.default_rng([seed, *(k & 0x7FFFFFFF for k in keys)]).random())


class DecisionEngine:
    """Scores candidates with DyHPO's multi-fidelity expected improvement.

    Args:
        settings: How to decide.
        seed: Seed of everything random in the decision.
    """

    def __init__(self, settings: EngineSettings, seed: int) -> None:
        self.settings = settings
        self.seed = seed
        self.stats = EngineStats()
        self._caches: weakref.WeakKeyDictionary[Any, dict[Any, ModelCache]] = (
            weakref.WeakKeyDictionary()
        )
        self._spaces: weakref.WeakKeyDictionary[Any, dict[int, SpaceTracker]] = (
            weakref.WeakKeyDictionary()
        )
        self._warned: set[Any] = set()
        # The study's published model, set by the caller around one decision (the engine
        # itself never touches storage; see ``_shared_model``).
        self.models: SharedModels | None = None
        self._fitter: BackgroundFitter | None = None
        self._background_failed = False

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_caches"] = state["_spaces"] = None
        state["_fitter"] = None
        return state

    def fitter(self) -> BackgroundFitter | None:
        """The background fit helper (``settings.fit_in_background``), created on first use;
        ``None`` when fits run in this process."""
        if not self.settings.fit_in_background or self._background_failed:
            return None
        if self._fitter is None:
            from optuna_dyhpo._gp._fit_server import BackgroundFitter

            self._fitter = BackgroundFitter()
        return self._fitter

    def stop_background_fits(self, reason: str) -> None:
        """Fit in this process from now on (the helper failed)."""
        if self._fitter is not None:
            self._fitter.close()
        self._fitter, self._background_failed = None, True
        warn_once(_logger, f"DyHPO fits its model in this process from now on: {reason}.")

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._caches, self._spaces = weakref.WeakKeyDictionary(), weakref.WeakKeyDictionary()

    def cache(self, scope: Any, study_id: int, encoder_key: Any) -> ModelCache:
        """The model cache of (storage ``scope``, study, encoding)."""
        per_scope = self._caches.setdefault(_NO_SCOPE if scope is None else scope, {})
        key = (study_id, encoder_key)
        if key not in per_scope:
            # Only the current encoding of a study is worth keeping.
            for old in [k for k in per_scope if k[0] == study_id]:
                del per_scope[old]
            per_scope[key] = ModelCache(encoder_key=encoder_key)
        return per_scope[key]

    # ------------------------------------------------------------------ decide
    def decide(
        self,
        configs: dict[int, Configuration],
        maximize: bool,
        running: int | None = None,
        *,
        scope: Any = None,
        study_id: int = 0,
    ) -> Decision:
        """Pick the configuration that gets the next step.

        Args:
            configs: Every configuration of the study (see ``_state.StudyReader``).
            maximize: Direction of the study.
            running: The configuration whose trial asks (pruner), or ``None`` (a new trial).
            scope: The storage the configurations come from (keys the model cache).
            study_id: The study they come from.

        Returns:
            The decision. Candidates are the running configuration, every paused one below
            the maximum budget whose parameters the current search space still contains, and
            ``n_candidates`` fresh ones. Configurations running in other trials never are.
        """
        s = self.settings
        self.stats.decisions += 1
        ordered = [configs[i] for i in sorted(configs)]  # by configuration id
        observed = [c for c in ordered if c.curve]
        if len(configs) < s.n_startup_configs or not observed:
            return Decision("fresh", None, None, 1, math.nan, "initial design")
        per_scope = self._spaces.setdefault(_NO_SCOPE if scope is None else scope, {})
        space = per_scope.setdefault(study_id, SpaceTracker()).space(observed)
        encoder = SearchSpaceEncoder(space)
        cache = self.cache(
            scope, study_id, tuple((k, repr(v)) for k, v in encoder.distributions.items())
        )
        existing = [c for c in ordered if c.status == "paused" and 0 < len(c.curve) < s.max_budget]
        existing = self._still_valid(existing, space, cache, scope, study_id)
        existing = best_per_length(existing, s.max_paused, 1.0 if maximize else -1.0)
        if running is not None:
            existing.append(configs[running])
        pending = [c for c in ordered if c.status == "running" and c.config_id != running]
        pending = [c for c in pending if c.curve and c.last_step < s.max_budget]
        sign = 1.0 if maximize else -1.0
        n_obs = sum(len(c.curve) for c in observed)
        step = configs[running].last_step if running is not None else 0
        if _uniform(self.seed, n_obs, len(configs), step) < s.promotion_probability:
            chosen = self._promotion(observed, existing, sign, running)
            if chosen is not None:
                self.stats.promotions += 1
                return self._step_to(chosen, running, math.nan, "successive halving")
        # A diverged configuration informs the model too (see ``curve_table``).
        modelled = [c for c in ordered if c.curve or c.status == "diverged"]
        from optuna_dyhpo._gp import small_math

        try:
            # The whole decision on one torch thread where that is safe: its tensors are small
            # and OpenMP's thread team costs milliseconds per operation on busy cores.
            with small_math():
                decision = self._decide_with_model(
                    modelled, existing, pending, encoder, cache, sign, running
                )
        except FitError as err:
            reason = f"fallback: {type(err).__name__}: {err}"
            if isinstance(err, ModelPending):
                _logger.debug(f"{reason}; successive halving decides.")
            else:
                self.stats.failed_fits += 1
                _logger.warning(
                    f"DyHPO's surrogate is unavailable ({reason}); successive halving decides."
                )
            chosen = self._promotion(observed, existing, sign, running)
            if chosen is None:
                return Decision("fresh", None, None, 1, math.nan, reason)
            return self._step_to(chosen, running, math.nan, reason)
        if decision.kind == "fresh" and self._collapsed(ordered):
            chosen = self._promotion(observed, existing, sign, running)
            if chosen is not None:
                if (scope, study_id, "collapse") not in self._warned:
                    self._warned.add((scope, study_id, "collapse"))
                    warn_once(
                        _logger,
                        f"DyHPO keeps starting new configurations: the newest "
                        f"{s.collapse_window} all stopped after one step (its expected "
                        f"improvement still favours a new one: log EI {decision.log_ei:.3g}). "
                        "Successive-halving promotions give the best paused configurations "
                        "their next steps instead, until the model itself prefers to continue "
                        "one.",
                    )
                self.stats.promotions += 1
                return self._step_to(chosen, running, decision.log_ei, "collapse")
        return decision

    def _promotion(
        self,
        observed: list[Configuration],
        existing: list[Configuration],
        sign: float,
        running: int | None,
    ) -> Configuration | None:
        s = self.settings
        floors = None
        if s.hyperband_brackets:
            floors = {
                c.config_id: bracket_floor(self.seed, c.config_id, s.max_budget, s.eta)
                for c in existing
            }
        return promotion(observed, existing, sign, s.max_budget, s.eta, running, floors)

    def _still_valid(
        self,
        configs: list[Configuration],
        space: dict[str, BaseDistribution],
        cache: ModelCache,
        scope: Any,
        study_id: int,
    ) -> list[Configuration]:
        """The ``configs`` whose parameters the current ``space`` still contains (warned once
        per configuration that it is not resumed otherwise)."""
        # A configuration's parameters never change, and the cache belongs to one space: a
        # known configuration costs one lookup.
        known = cache.valid
        out = []
        for c in configs:
            ok = known.get(c.config_id)
            if ok is None:
                bad = params_fit(c.params, space)
                ok = known[c.config_id] = not bad
                if bad and (scope, study_id, c.config_id) not in self._warned:
                    self._warned.add((scope, study_id, c.config_id))
                    warn_once(
                        _logger,
                        f"Paused configuration {c.config_id} is not resumed: the search space "
                        f"no longer contains its value(s) of {bad} (params {c.params}).",
                    )
            if ok:
                out.append(c)
        return out

    def _collapsed(self, ordered: list[Configuration]) -> bool:
        w = self.settings.collapse_window
        newest = ordered[-w:]
        return len(newest) == w and all(c.last_step <= 1 and c.status != "running" for c in newest)

    @staticmethod
    def _step_to(c: Configuration, running: int | None, log_ei: float, reason: str) -> Decision:
        kind: Literal["continue", "resume"] = "continue" if c.config_id == running else "resume"
        return Decision(kind, c.config_id, None, c.last_step + 1, log_ei, reason)

    # ------------------------------------------------------------------ model
    def _fit(
        self, cache: ModelCache, table: CurveTable, lookahead: bool, n_pending: int, dim: int
    ) -> None:
        refit(self, cache, table, lookahead, n_pending, dim)

    def _decide_with_model(
        self,
        observed: list[Configuration],
        existing: list[Configuration],
        pending: list[Configuration],
        encoder: SearchSpaceEncoder,
        cache: ModelCache,
        sign: float,
        running: int | None,
    ) -> Decision:
        import torch

        s = self.settings
        table = curve_table(observed, encoder, sign, s.max_budget, cache)
        n_obs = int(table.lengths.sum())
        lookahead = s.acquisition != "next-step"
        self._fit(cache, table, lookahead, len(pending), encoder.dim)
        surrogate = cache.surrogate
        assert surrogate is not None

        row_of = cache.rows.row_of
        data_key = (cache.rows.version, cache.fits)
        pending_key = tuple((c.config_id, c.last_step) for c in pending)
        t0 = time.perf_counter()
        if cache.conditioned != (data_key, pending_key):
            keep = table.conditioning_subset(s.max_rows, lookahead)
            rows, targets = table.training_rows(lookahead, keep)
            surrogate.condition(rows, targets)
            if pending:
                fantasy = table.next_step_rows(
                    torch.tensor([row_of[c.config_id] for c in pending])
                )
                believed, _ = surrogate.predict(fantasy)
                surrogate.condition(rows.concat(fantasy), torch.cat([targets, believed]))
            cache.conditioned = (data_key, pending_key)
            cache.fresh_pred = None

        if cache.fresh is None or cache.fresh[0] != data_key[0]:
            seed = int(_uniform(self.seed, n_obs, len(observed)) * 2**31)
            update_patterns(cache.patterns, cache.patterned, encoder, observed)
            proposed = None
            if s.proposal == "tpe" and len(cache.patterns) <= 1:  # a flat space
                proposed = tpe_proposal(encoder, observed, sign, s.max_budget, seed)
            if proposed is None or not len(proposed):
                cands, x = fresh_candidates(
                    encoder, observed, s.n_candidates, seed, cache.patterns
                )
            else:
                cands, x = proposed, encoder.encode_unit(proposed)
            cache.fresh = (data_key[0], cands, x)
        _, fresh_params, fresh_x = cache.fresh
        idx = torch.tensor([row_of[c.config_id] for c in existing], dtype=torch.long)
        if s.acquisition in ("lookahead", "multi-horizon"):
            log_ei = lookahead_scores(s, table, cache, idx, fresh_x)
        else:
            log_ei = step_scores(s, table, cache, idx, fresh_x)
        self.stats.predict_seconds += time.perf_counter() - t0
        best = int(torch.argmax(log_ei))
        score = float(log_ei[best])
        if best < len(existing):
            return self._step_to(existing[best], running, score, "ei")
        row = fresh_params[best - len(existing)]
        params = dict(row) if isinstance(row, dict) else encoder.decode(row.tolist())
        return Decision("fresh", None, params, 1, score, "ei")
