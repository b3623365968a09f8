from __future__ import annotations

from collections.abc import Sequence
import os
import threading
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal
import uuid

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.samplers import BaseSampler
from optuna.samplers import RandomSampler
from optuna.storages._heartbeat import get_heartbeat_thread
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_dyhpo import _mistakes
from optuna_dyhpo._engine import Decision
from optuna_dyhpo._engine import DecisionEngine
from optuna_dyhpo._engine import EngineSettings
from optuna_dyhpo._incumbent import record_trial_best
from optuna_dyhpo._liveness import SilentTrialSweeper
from optuna_dyhpo._liveness import abandon_trial
from optuna_dyhpo._liveness import first_heartbeat
from optuna_dyhpo._liveness import install_optimize_hooks
from optuna_dyhpo._liveness import prepare_storage
from optuna_dyhpo._logging import get_logger
from optuna_dyhpo._planning import plan_trial
from optuna_dyhpo._planning import stop_resume
from optuna_dyhpo._shared_model import SharedModels
from optuna_dyhpo._state import PAUSED_KEY
from optuna_dyhpo._state import SEGMENT_KEY
from optuna_dyhpo._state import USER_STATUS
from optuna_dyhpo._state import Configuration
from optuna_dyhpo._state import finished_status
from optuna_dyhpo._study_io import StudyReader
from optuna_dyhpo._study_io import fit_lease
from optuna_dyhpo._study_io import model_attribute
from optuna_dyhpo._validation import check_bool
from optuna_dyhpo._validation import check_int
from optuna_dyhpo._warnings import OncePerStudy

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore


_logger = get_logger("sampler")
# How long a worker's fit lease lasts (a fit from scratch on an overloaded machine: < 90 s).
FIT_LEASE_SECONDS = 120.0


class DyHPOSampler(BaseSampler):
    """DyHPO: learning-curve-aware multi-fidelity Bayesian optimisation (freeze-thaw).

    Use it together with :class:`~optuna_dyhpo.DyHPOPruner`. Whenever a trial starts, the
    sampler decides which configuration gets the next step: a paused configuration (the new
    trial then *continues* it: same parameters, its learning curve copied in, and its checkpoint
    available through :class:`~optuna_dyhpo.TrialResume`) or a fresh one. The choice maximises
    DyHPO's multi-fidelity expected improvement under a deep-kernel Gaussian process over
    (hyperparameters, budget, learning curve so far), as in Wistuba, Kadra & Grabocka,
    "Supervising the Multi-Fidelity Race of Hyperparameter Configurations" (NeurIPS 2022).

    Steps are epochs counted from 1: report ``trial.report(value, epoch)`` for
    ``epoch in TrialResume(trial).steps()``. Everything the sampler knows lives in the study's
    storage, so any number of processes can share a study and a sampler can be rebuilt
    anywhere.

    Example:

        .. testcode::

            import optuna
            from optuna_dyhpo import DyHPOPruner, DyHPOSampler, StopAfterEpochs, TrialResume

            def objective(trial):
                x = trial.suggest_float("x", 0.0, 1.0)
                value = 0.0
                for epoch in TrialResume(trial).steps():
                    value = x * (1.0 - 0.5**epoch)  # a learning curve
                    trial.report(value, epoch)
                    if trial.should_prune():
                        raise optuna.TrialPruned()
                return value

            study = optuna.create_study(
                direction="maximize",
                sampler=DyHPOSampler(max_budget=10, seed=0),
                pruner=DyHPOPruner(),
            )
            study.optimize(objective, callbacks=[StopAfterEpochs(30)])

    Args:
        max_budget: The largest number of steps (epochs) a configuration may train.
        seed: Seed of every random choice; a sequential run with a seed is reproducible on
            one machine (a CPU that rounds differently in the last bits can, over a long run,
            lead to other decisions).
        n_startup_configs: Configurations that each get one step, chosen at random, before the
            surrogate model takes over.
        n_candidates: Fresh random configurations (scrambled Sobol points) scored at every
            decision alongside the paused ones.
        artifact_store: Where :class:`~optuna_dyhpo.TrialResume` keeps checkpoints. Any Optuna
            artifact store works (a shared file system or S3 for multi-machine runs). Default:
            ``FileSystemArtifactStore("./dyhpo_artifacts")``.
        acquisition: How a candidate's promise is judged. ``"lookahead"`` (default): its
            predicted value at ``max_budget`` against the best value observed; best on smooth,
            low-noise learning curves whose order changes late (curves that cross).
            ``"rung"``: its predicted value at three times its next epoch against the best value
            observed at that epoch; more robust when the metric is noisy, when weakly
            regularised configurations overfit, or when some diverge (see
            ``benchmarks/RESULTS.md``). ``"next-step"``: its next epoch (the paper's rule).
            ``"multi-horizon"``: the best of its expected improvements at its next epoch, 3
            and 9 times that and ``max_budget``, so that a curve that peaks early (overfitting,
            a loss that turns up) is judged at its peak; at about 1.5 times the look-ahead's
            decision cost. ``"evidence"``: its predicted value at its next epoch or, if that
            is later, the largest epoch that ``n_startup_configs`` configurations reached,
            against the best value observed there; best on noisy and diverging metrics,
            weak on crossing curves and late starters. With ``"lookahead"`` and
            ``"multi-horizon"``, the new configuration that may be started is chosen by its
            expected improvement at that same epoch, where the model has seen enough curves
            to rank new configurations.
        fit_in_background: Refit the surrogate in a helper process (started on the first
            refit, one per sampler and process) while the objective trains, instead of inside
            the decision. A refit started at ``n`` observations is used from the first decision
            with ``n + 5`` observations, which waits for it if it is not done; so a seeded run
            stays reproducible, and with epochs longer than a fit (a few seconds at most) the
            decisions never wait for one. The study's first fit runs in this process.
        proposal: Which new configuration may be started, in a flat search space: ``"gp"``,
            the best of ``n_candidates`` scrambled Sobol points by the surrogate's expected
            improvement (see ``acquisition``); ``"tpe"``, the proposal of Optuna's
            :class:`~optuna.samplers.TPESampler` given every configuration as a trial stopped
            at the epoch its curve reached (what TPE sees next to a successive-halving pruner).
            The surrogate still decides whether to start it or continue a paused one. A
            conditional search space always uses ``"gp"``.
    """

    def __init__(
        self,
        max_budget: int,
        *,
        seed: int | None = None,
        n_startup_configs: int = 5,
        n_candidates: int = 512,
        artifact_store: ArtifactStore | None = None,
        acquisition: Literal[
            "lookahead", "rung", "next-step", "multi-horizon", "evidence"
        ] = "lookahead",
        fit_in_background: bool = False,
        proposal: Literal["gp", "tpe"] = "gp",
    ) -> None:
        self.max_budget = check_int("max_budget", max_budget, 1)
        if seed is not None:
            check_int("seed", seed, 0)
        self.n_startup_configs = check_int("n_startup_configs", n_startup_configs, 1)
        self.n_candidates = check_int("n_candidates", n_candidates, 1)
        if artifact_store is not None and not (
            hasattr(artifact_store, "write") and hasattr(artifact_store, "open_reader")
        ):
            raise ValueError(
                "`artifact_store` must be an Optuna artifact store (with `write` and "
                f"`open_reader`), e.g. FileSystemArtifactStore, but got {artifact_store!r}."
            )
        if acquisition not in ("lookahead", "rung", "next-step", "multi-horizon", "evidence"):
            raise ValueError(
                "`acquisition` must be 'lookahead', 'rung', 'next-step', 'multi-horizon' or "
                f"'evidence', but got {acquisition!r}."
            )
        self.acquisition = acquisition
        if proposal not in ("gp", "tpe"):
            raise ValueError(f"`proposal` must be 'gp' or 'tpe', but got {proposal!r}.")
        self.proposal = proposal
        check_bool("fit_in_background", fit_in_background)
        self._seed = seed if seed is not None else int.from_bytes(os.urandom(4), "little") >> 1
        self._artifact_store = artifact_store
        self._reader = StudyReader()
        self._engine = DecisionEngine(
            EngineSettings(
                self.max_budget,
                self.n_startup_configs,
                self.n_candidates,
                acquisition=acquisition,
                fit_in_background=fit_in_background,
                proposal=proposal,
            ),
            self._seed,
        )
        self._plans: dict[int, dict[str, Any]] = {}
        self._resumes: set[int] = set()  # trial ids this sampler made continuations
        self._random: dict[int, RandomSampler] = {}
        self._claim_timeout = 600.0
        self._lock = threading.RLock()
        self._owner = uuid.uuid4().hex  # this sampler in this process holds the fit lease
        # Liveness (``_liveness.py``): trials another worker finished while this one planned
        # them, and the sweep for trials whose worker died before their first heartbeat.
        self._lost: set[int] = set()
        self._over_budget: set[int] = set()
        self._sweeper = SilentTrialSweeper()
        install_optimize_hooks()
        # Why each trial of this process started, for the pruner's one line per trial.
        self._start_notes: dict[int, str] = {}
        self._warned = OncePerStudy()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()
        self._owner = uuid.uuid4().hex  # another process: another holder of the fit lease
        install_optimize_hooks()

    # ------------------------------------------------------------------ helpers
    @property
    def artifact_store(self) -> ArtifactStore:
        """The checkpoint store (created on first use)."""
        if self._artifact_store is None:
            from optuna.artifacts import FileSystemArtifactStore

            os.makedirs("dyhpo_artifacts", exist_ok=True)
            self._artifact_store = FileSystemArtifactStore("dyhpo_artifacts")
        return self._artifact_store

    @staticmethod
    def _check_study(study: optuna.Study) -> None:
        if study._is_multi_objective():
            raise ValueError(
                "DyHPOSampler supports single-objective studies only, but this study has "
                f"{len(study.directions)} objectives."
            )

    def _configurations(
        self, study: optuna.Study, trials: list[FrozenTrial] | None = None
    ) -> dict[int, Configuration]:
        return self._reader.read(study, self.max_budget, trials=trials)

    def _decide(
        self, study: optuna.Study, configs: dict[int, Configuration], running: int | None
    ) -> Decision:
        maximize = study.direction == StudyDirection.MAXIMIZE
        with self._lock:  # one engine per sampler; threads (n_jobs > 1) take turns
            # The model other processes fitted (read only when this one is about to fit).
            read, write = model_attribute(study._storage, study._study_id)
            lease = fit_lease(study._storage, study._study_id, self._owner, FIT_LEASE_SECONDS)
            self._engine.models = SharedModels(self._engine.settings, read, write, lease)
            try:
                return self._engine.decide(
                    configs, maximize, running, scope=study._storage, study_id=study._study_id
                )
            finally:
                self._engine.models = None

    # ------------------------------------------------------------------ BaseSampler
    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        self._check_study(study)
        return {}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        self._check_study(study)
        plan = self._plans.get(trial._trial_id)
        if trial._trial_id in self._lost:
            raise optuna.TrialPruned(
                f"Trial {trial.number} was finished by another worker while DyHPO planned it."
            )
        if trial._trial_id in self._over_budget:
            raise optuna.TrialPruned(
                f"Trial {trial.number} started after the study's epoch budget was spent; it "
                "trains nothing."
            )
        if plan is not None:  # planned here: no storage read (trial.system_attrs is one)
            resumed = trial._trial_id in self._resumes
        else:
            seg = trial.system_attrs.get(SEGMENT_KEY)
            resumed = isinstance(seg, dict) and seg.get("parent") is not None
        if plan is not None and param_name in plan:
            value = plan[param_name]
            try:
                if param_distribution._contains(param_distribution.to_internal_repr(value)):
                    return value
            except (ValueError, TypeError):
                pass
            if resumed:
                stop_resume(
                    trial, f"its '{param_name}' is {value!r}, outside {param_distribution}"
                )
        elif resumed:
            stop_resume(trial, f"it was trained without parameter '{param_name}'")
        # One generator per trial, seeded by its number: every parameter gets its own draw,
        # runs are reproducible, and workers given the same seed still draw differently. The
        # seed is hashed (SeedSequence): Mersenne Twisters seeded with consecutive integers
        # give nearly equal first draws.
        random = self._random.get(trial._trial_id)
        if random is None:
            seed = int(np.random.SeedSequence([self._seed, trial.number]).generate_state(1)[0])
            random = self._random[trial._trial_id] = RandomSampler(seed=seed)
        return random.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        try:
            self._check_study(study)
            _mistakes.check_pruner(study, self._warned)
            prepare_storage(study)
            # The first heartbeat precedes any DyHPO state (Optuna's starts after `ask()`);
            # beating while deciding keeps a slow decision from looking stale.
            first_heartbeat(study._storage, trial._trial_id)
            with get_heartbeat_thread(trial._trial_id, study._storage):
                self._sweeper.sweep(study)
                self._plan_trial(study, trial)
        except BaseException as e:
            lost = isinstance(e, UpdateFinishedTrialError) and (
                study._storage.get_trial(trial._trial_id).state.is_finished()
            )
            self._forget(trial._trial_id)
            if not lost:  # rejected: `ask()` raises, so nobody would tell the trial
                abandon_trial(study, trial)
                raise
            # Failed as stale by another worker while this one decided: the objective stops
            # at its first suggestion and `study.optimize` goes on (`_liveness`).
            self._lost.add(trial._trial_id)

    def _epochs_spent(self, study: optuna.Study, trials: list[FrozenTrial] | None = None) -> int:
        """:func:`~optuna_dyhpo.epochs_spent`, from the incremental read."""
        return self._reader.epochs_spent(study, trials)

    def _forget(self, trial_id: int) -> None:
        self._plans.pop(trial_id, None)
        self._resumes.discard(trial_id)
        self._random.pop(trial_id, None)
        self._lost.discard(trial_id)
        self._over_budget.discard(trial_id)
        self._start_notes.pop(trial_id, None)

    def _plan_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        plan_trial(self, study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._forget(trial._trial_id)
        seg = trial.system_attrs.get(SEGMENT_KEY)
        if not isinstance(seg, dict):
            return
        paused = trial.system_attrs.get(PAUSED_KEY)
        status = finished_status(
            state,
            dict(trial.intermediate_values),
            None if paused is None else int(paused),
            self.max_budget,
        )
        study._storage.set_trial_user_attr(trial._trial_id, USER_STATUS, status)
        record_trial_best(study, trial)  # the study user attr "dyhpo:best"
        if status == "finished_early":
            last = max(trial.intermediate_values, default=0)
            _mistakes.finished_early(study, self._warned, trial.number, last, self.max_budget)
        from optuna_dyhpo import _checkpoints

        _checkpoints.after_trial(study, self, trial)  # superseded checkpoints leave the store

    def reseed_rng(self) -> None:
        # Called by Optuna in each process of a process pool: give every process its own seed.
        self._seed = int.from_bytes(os.urandom(4), "little") >> 1
        self._engine.seed = self._seed
