"""The compared optimisers. Each one runs into an Optuna study and spends an epoch budget.

Methods (``--methods``):
    dyhpo          DyHPOSampler + DyHPOPruner (freeze-thaw: paused configurations resume).
    tpe-hyperband  TPESampler + HyperbandPruner(min_resource=1, max_resource=max epochs, eta=3).
    tpe-sh         TPESampler + SuccessiveHalvingPruner(min_resource=1, reduction_factor=3).
    random         RandomSampler, no pruning: every configuration trains for max epochs.
    smac-mf        SMAC3 MultiFidelityFacade with its Hyperband intensifier (eta=3), driven by
                   ask/tell; every evaluation is recorded into the study with ``add_trial``.
    random-hyperband
                   RandomSampler + HyperbandPruner (the settings of tpe-hyperband).

Budget accounting counts the epochs the objective actually computes. DyHPO is
continuation-aware (a resumed configuration costs only its new epochs, because it restarts from
its checkpoint); all other methods are restart-aware (a trial, or a SMAC evaluation at budget b,
trains from scratch and costs all its epochs). The run stops as soon as the budget is spent, in
the middle of a trial if need be (that last trial then ends with the value it reached).

Every study has the problem's direction (``maximize`` or ``minimize``). A configuration that
diverges (its learner returns NaN) is handled as a user's objective would: the NaN is reported
(``trial.report``) so that the storage holds the divergence, then the trial raises
``TrialPruned`` at once, without consulting the pruner and without saving a checkpoint. Optuna's
TPE ranks such a pruned trial below every trial that reached the same step (it scores a NaN last
intermediate value as the worst), the Hyperband and successive-halving pruners never see the NaN
in their rungs, and DyHPO marks the configuration diverged and never resumes it. SMAC3 gets the
worst cost seen so far for a diverged evaluation (its cost must be finite).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
import math
from pathlib import Path
import time
from typing import Any

import optuna
from optuna.trial import TrialState

from benchmarks.problems import Learner
from benchmarks.problems import Problem
from benchmarks.timing import PRUNER_METHODS
from benchmarks.timing import SAMPLER_METHODS
from benchmarks.timing import OverheadTimer

CONTINUATION = "continuation"
RESTART = "restart"


class MethodUnavailable(RuntimeError):
    """Raised when a method's optional dependency is missing (the run is skipped, not faked)."""


class BudgetRecorder:
    """Counts epochs spent, the incumbent trajectory and where the time goes.

    The incumbent is the best observed value in the problem's direction; its regret is computed
    from the learner's noise-free value when the learner knows it (``Learner.noiseless_value``),
    else from the observed value.

    Args:
        problem: The problem (for the direction and the regret).
        budget: Epochs the run may spend.
        timer: The optimiser-overhead timer of the run.
        progress: Optional callback called with 1 after every epoch (a progress bar's update).
    """

    def __init__(
        self,
        problem: Problem,
        budget: int,
        timer: OverheadTimer,
        progress: Callable[[int], Any] | None = None,
    ) -> None:
        self.problem = problem
        self.budget = int(budget)
        self.timer = timer
        self.progress = progress
        self.spent = 0
        self.best = math.inf if problem.direction == "minimize" else -math.inf
        self.best_noiseless: float | None = None
        self.incumbent: list[float] = []
        self.regret: list[float] = []
        self.wall: list[float] = []
        self.overhead: list[float] = []
        self.objective_seconds = 0.0
        self.checkpoint_seconds = 0.0
        self.start = time.perf_counter()

    @property
    def exhausted(self) -> bool:
        """Whether the budget is spent."""
        return self.spent >= self.budget

    def train(self, learner: Learner, epoch: int) -> float:
        """Train one epoch of ``learner``, count it and update the incumbent.

        Args:
            learner: The configuration's learner.
            epoch: The epoch to train (1-based).

        Returns:
            The validation metric after the epoch.

        Raises:
            RuntimeError: When the budget is already spent (an accounting bug).
        """
        if self.exhausted:
            raise RuntimeError("epoch budget already spent")
        t0 = time.perf_counter()
        value = learner.train_epoch(epoch)
        self.objective_seconds += time.perf_counter() - t0
        self.spent += 1
        if math.isfinite(value) and self.problem.is_better(value, self.best):
            self.best = value
            noiseless = learner.noiseless_value
            self.best_noiseless = value if noiseless is None else float(noiseless)
        self.incumbent.append(self.best)
        self.regret.append(self.final_regret)
        self.wall.append(time.perf_counter() - self.start)
        self.overhead.append(self.timer.total)
        if self.progress is not None:
            self.progress(1)
        return value

    @property
    def final_regret(self) -> float:
        """Normalised regret of the current incumbent (1.0 before any finite value)."""
        if self.best_noiseless is None:
            return 1.0
        return float(self.problem.normalised_regret(self.best_noiseless))


@dataclass
class RunContext:
    """Everything a method needs for one run."""

    problem: Problem
    seed: int
    budget: int
    study_name: str
    storage: optuna.storages.BaseStorage
    work_dir: Path
    recorder: BudgetRecorder
    timer: OverheadTimer
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    """A compared optimiser."""

    name: str
    accounting: str
    description: str
    run: Callable[[RunContext], dict[str, Any]]
    warm_up: Callable[[], None] | None = None


def _create_study(
    ctx: RunContext,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner | None,
    method: str,
) -> optuna.Study:
    study = optuna.create_study(
        storage=ctx.storage,
        study_name=ctx.study_name,
        direction=ctx.problem.direction,
        sampler=sampler,
        pruner=pruner,
    )
    study.set_user_attr("benchmark_method", method)
    study.set_user_attr("benchmark_problem", ctx.problem.name)
    study.set_user_attr("benchmark_seed", ctx.seed)
    study.set_user_attr("benchmark_budget_epochs", ctx.budget)
    return study


def _finish_step(trial: optuna.Trial, ctx: RunContext) -> bool:
    """Return True (and stop the study) when the budget is spent."""
    if ctx.recorder.exhausted:
        trial.study.stop()
        return True
    return False


def _restart_objective(ctx: RunContext, prunes: bool) -> Callable[[optuna.Trial], float]:
    """Objective of the restart-aware methods: every trial trains from epoch 1."""
    problem = ctx.problem

    def objective(trial: optuna.Trial) -> float:
        config = problem.suggest(trial)
        learner = problem.new_learner(config, ctx.seed)
        value = math.nan
        for epoch in range(1, problem.max_epochs + 1):
            value = ctx.recorder.train(learner, epoch)
            trial.report(value, epoch)
            stopped = _finish_step(trial, ctx)
            if not math.isfinite(value):
                raise optuna.TrialPruned()  # Diverged: the NaN is stored, training stops.
            if stopped:
                trial.set_user_attr("benchmark_stopped_by_budget", True)
                break
            if prunes and trial.should_prune():
                raise optuna.TrialPruned()
        return value

    return objective


def _run_optuna(
    ctx: RunContext,
    name: str,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner | None,
    objective: Callable[[optuna.Trial], float],
) -> optuna.Study:
    ctx.timer.wrap(sampler, SAMPLER_METHODS, "sampler")
    if pruner is not None:
        ctx.timer.wrap(pruner, PRUNER_METHODS, "pruner")
    study = _create_study(ctx, sampler, pruner, name)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective)
    if not ctx.recorder.exhausted:
        raise RuntimeError(f"{name}: optimisation ended before the budget was spent")
    return study


def _optuna_stats(ctx: RunContext, study: optuna.Study, prunes: bool) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for t in trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    n_prune = sum(ctx.timer.calls[k] for k in ctx.timer.calls if k.startswith("pruner."))
    return {
        "n_trials": len(trials),
        "trial_states": states,
        "n_prune_calls": int(n_prune) if prunes else 0,
        "n_diverged_trials": sum(
            1 for t in trials if any(not math.isfinite(v) for v in t.intermediate_values.values())
        ),
        "n_decisions": len(trials) + (int(n_prune) if prunes else 0),
        "decision_definition": "one per trial started (sampler) + one per should_prune call",
    }


def _run_restart_method(
    ctx: RunContext,
    name: str,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner | None,
) -> dict[str, Any]:
    prunes = pruner is not None
    study = _run_optuna(ctx, name, sampler, pruner, _restart_objective(ctx, prunes))
    stats = _optuna_stats(ctx, study, prunes)
    trials = study.get_trials(deepcopy=False)
    # Restart-aware: every trial trained its reported epochs from scratch.
    stats["epochs_from_storage"] = sum(len(t.intermediate_values) for t in trials)
    stats["n_configs"] = len(trials)
    return stats


def run_tpe_hyperband(ctx: RunContext) -> dict[str, Any]:
    """TPESampler + HyperbandPruner (steps 1-based, min_resource 1, max_resource max epochs)."""
    sampler = optuna.samplers.TPESampler(seed=ctx.seed)
    pruner = optuna.pruners.HyperbandPruner(
        min_resource=1, max_resource=ctx.problem.max_epochs, reduction_factor=3
    )
    return _run_restart_method(ctx, "tpe-hyperband", sampler, pruner)


def run_tpe_sh(ctx: RunContext) -> dict[str, Any]:
    """TPESampler + SuccessiveHalvingPruner (min_resource 1, reduction factor 3)."""
    sampler = optuna.samplers.TPESampler(seed=ctx.seed)
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return _run_restart_method(ctx, "tpe-sh", sampler, pruner)


def run_random_hyperband(ctx: RunContext) -> dict[str, Any]:
    """RandomSampler + HyperbandPruner (the pruner settings of ``tpe-hyperband``)."""
    sampler = optuna.samplers.RandomSampler(seed=ctx.seed)
    pruner = optuna.pruners.HyperbandPruner(
        min_resource=1, max_resource=ctx.problem.max_epochs, reduction_factor=3
    )
    return _run_restart_method(ctx, "random-hyperband", sampler, pruner)


def run_random(ctx: RunContext) -> dict[str, Any]:
    """RandomSampler without pruning (every configuration trains for max epochs)."""
    return _run_restart_method(ctx, "random", optuna.samplers.RandomSampler(seed=ctx.seed), None)


# --------------------------------------------------------------------------------------------
# DyHPO
# --------------------------------------------------------------------------------------------


def _import_dyhpo() -> Any:
    try:
        import optuna_dyhpo
        from optuna_dyhpo import DyHPOPruner  # noqa: F401
        from optuna_dyhpo import DyHPOSampler  # noqa: F401
        from optuna_dyhpo import TrialResume  # noqa: F401
    except ImportError as exc:
        raise MethodUnavailable(f"optuna_dyhpo is not importable: {exc}") from exc
    return optuna_dyhpo


def _warm_up_dyhpo() -> None:
    # The core imports torch and gpytorch lazily at its first decision; import them before the
    # clock starts so that the first run of a process is not charged for it.
    _import_dyhpo()
    import gpytorch  # noqa: F401
    import torch

    # The first optimiser step imports torch's compile machinery (seconds on a cold start).
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([param], lr=1e-3)
    (param**2).sum().backward()
    opt.step()


def run_dyhpo_rung(ctx: RunContext) -> dict[str, Any]:
    """:func:`run_dyhpo` with ``DyHPOSampler(acquisition="rung")``."""
    return run_dyhpo(ctx, acquisition="rung")


def run_dyhpo_multi_horizon(ctx: RunContext) -> dict[str, Any]:
    """:func:`run_dyhpo` with ``DyHPOSampler(acquisition="multi-horizon")``."""
    return run_dyhpo(ctx, acquisition="multi-horizon")


def run_dyhpo_evidence(ctx: RunContext) -> dict[str, Any]:
    """:func:`run_dyhpo` with ``DyHPOSampler(acquisition="evidence")``."""
    return run_dyhpo(ctx, acquisition="evidence")


def run_dyhpo_background(ctx: RunContext) -> dict[str, Any]:
    """:func:`run_dyhpo` with ``DyHPOSampler(fit_in_background=True)``."""
    return run_dyhpo(ctx, fit_in_background=True)


def run_dyhpo_tpe(ctx: RunContext) -> dict[str, Any]:
    """:func:`run_dyhpo` with ``DyHPOSampler(proposal="tpe")``."""
    return run_dyhpo(ctx, proposal="tpe")


def run_dyhpo(
    ctx: RunContext,
    acquisition: str = "lookahead",
    fit_in_background: bool = False,
    proposal: str = "gp",
) -> dict[str, Any]:
    """DyHPOSampler + DyHPOPruner; paused configurations resume from their checkpoint.

    The objective is written exactly as a user would write it: ``TrialResume.load`` at the start
    (None for a fresh configuration), ``TrialResume.save`` before raising ``TrialPruned``; a
    diverged configuration (NaN) is reported and pruned at once, with no checkpoint.
    """
    dy = _import_dyhpo()
    from optuna.artifacts import FileSystemArtifactStore

    problem = ctx.problem
    artifact_dir = ctx.work_dir / "artifacts"
    artifact_dir.mkdir(parents=True, exist_ok=True)
    store = FileSystemArtifactStore(str(artifact_dir))
    sampler = dy.DyHPOSampler(
        max_budget=problem.max_epochs,
        seed=ctx.seed,
        artifact_store=store,
        acquisition=acquisition,
        fit_in_background=fit_in_background,
        proposal=proposal,
    )
    pruner = dy.DyHPOPruner()
    rec = ctx.recorder
    counters = {"resumed_trials": 0, "checkpoints_saved": 0, "checkpoints_loaded": 0}

    def objective(trial: optuna.Trial) -> float:
        config = problem.suggest(trial)
        resume = dy.TrialResume(trial, artifact_store=store)
        learner = problem.new_learner(config, ctx.seed)
        if resume.is_resumed:
            counters["resumed_trials"] += 1
        if problem.needs_checkpoint:
            t0 = time.perf_counter()
            state = resume.load()
            rec.checkpoint_seconds += time.perf_counter() - t0
            if state is not None:
                learner.load_state_dict(state)
                counters["checkpoints_loaded"] += 1
        value = math.nan
        steps = resume.steps()
        if len(steps) == 0:
            raise RuntimeError(
                f"DyHPO started trial {trial.number} with nothing to train "
                f"(start_step={resume.start_step}, max_budget={resume.max_budget})"
            )
        for epoch in steps:
            value = rec.train(learner, epoch)
            trial.report(value, epoch)
            stopped = _finish_step(trial, ctx)
            if not math.isfinite(value):
                raise optuna.TrialPruned()  # Diverged: nothing worth saving or resuming.
            if stopped:
                trial.set_user_attr("benchmark_stopped_by_budget", True)
                break
            if trial.should_prune():
                if problem.needs_checkpoint:
                    t0 = time.perf_counter()
                    resume.save(learner.state_dict())
                    rec.checkpoint_seconds += time.perf_counter() - t0
                    counters["checkpoints_saved"] += 1
                raise optuna.TrialPruned()
        return value

    study = _run_optuna(ctx, "dyhpo", sampler, pruner, objective)
    stats = _optuna_stats(ctx, study, prunes=True)
    stats.update(counters)
    # Continuation-aware, read back from the storage two ways: the core's own count and the
    # steps each trial added beyond the curve it inherited from its parent.
    stats["epochs_from_storage"] = int(dy.epochs_spent(study))
    new_steps = 0
    for t in study.get_trials(deepcopy=False):
        start = int(t.user_attrs.get("dyhpo_start_epoch", 1))
        if t.intermediate_values:
            new_steps += max(0, max(t.intermediate_values) - start + 1)
    stats["epochs_from_segments"] = new_steps
    configs = dy.get_configurations(study)
    stats["n_configs"] = len(configs)
    stats["configuration_status"] = {
        s: sum(1 for c in configs if c.status == s) for s in sorted({c.status for c in configs})
    }
    return stats


# --------------------------------------------------------------------------------------------
# SMAC3
# --------------------------------------------------------------------------------------------


def _import_smac() -> Any:
    try:
        import smac
    except ImportError as exc:
        raise MethodUnavailable(
            f"SMAC3 is not installed ({exc}); install it with `pip install smac` "
            "(the smac-mf method is skipped, not approximated)"
        ) from exc
    return smac


def _configspace(problem: Problem, seed: int) -> Any:
    from ConfigSpace import ConfigurationSpace
    from ConfigSpace import Float
    from ConfigSpace import Integer
    from optuna.distributions import FloatDistribution
    from optuna.distributions import IntDistribution

    cs = ConfigurationSpace(seed=seed)
    for name, dist in problem.search_space().items():
        if isinstance(dist, FloatDistribution):
            cs.add(Float(name, (dist.low, dist.high), log=dist.log))
        elif isinstance(dist, IntDistribution):
            cs.add(Integer(name, (dist.low, dist.high), log=dist.log))
        else:
            raise MethodUnavailable(
                f"smac-mf here translates numeric search spaces only; {problem.name} has "
                f"{name}: {dist!r} (the run is skipped, not approximated)"
            )
    return cs


def _smac_unused_target(config: Any, seed: int = 0, budget: float = 0.0) -> float:
    raise RuntimeError("SMAC is driven by ask/tell here; its target function is never called")


def _warm_up_smac() -> None:
    _import_smac()
    from smac import MultiFidelityFacade  # noqa: F401


def run_smac(ctx: RunContext) -> dict[str, Any]:
    """SMAC3's MultiFidelityFacade + Hyperband intensifier (eta 3) through ask/tell.

    An evaluation at budget b trains a fresh learner for round(b) epochs (restart-aware); its
    curve is recorded into the Optuna study with ``study.add_trial``. Overhead is the time in
    ``ask`` and ``tell``.
    """
    _import_smac()
    from smac import MultiFidelityFacade
    from smac import Scenario
    from smac.intensifier.hyperband import Hyperband
    from smac.runhistory.dataclasses import TrialValue

    problem = ctx.problem
    space = problem.search_space()
    timer = ctx.timer
    rec = ctx.recorder
    study = _create_study(ctx, optuna.samplers.RandomSampler(seed=ctx.seed), None, "smac-mf")
    scenario = Scenario(
        _configspace(problem, ctx.seed),
        name=ctx.study_name,
        output_directory=ctx.work_dir / "smac3_output",
        deterministic=True,
        n_trials=10**9,
        min_budget=1,
        max_budget=problem.max_epochs,
        seed=ctx.seed,
    )
    intensifier = Hyperband(scenario, eta=3, incumbent_selection="highest_budget", seed=ctx.seed)
    with timer.measure("smac.setup"):
        facade = MultiFidelityFacade(
            scenario,
            _smac_unused_target,
            intensifier=intensifier,
            overwrite=True,
            logging_level=40,
        )
    n_ask = 0
    epochs_recorded = 0
    sign = 1.0 if problem.direction == "minimize" else -1.0  # SMAC minimises a cost.
    # Cost of a diverged evaluation: the worst finite cost so far (before any, a value of 0
    # for a maximised metric, or a huge loss).
    worst_cost = 0.0 if sign < 0 else 1e6
    seen_finite = False
    states: dict[str, int] = {}
    while not rec.exhausted:
        with timer.measure("smac.ask"):
            info = facade.ask()
        n_ask += 1
        budget = float(info.budget) if info.budget is not None else float(problem.max_epochs)
        n_epochs = min(problem.max_epochs, max(1, int(round(budget))))
        config = {}
        for name, dist in space.items():
            raw = info.config[name]
            config[name] = (
                int(raw) if isinstance(dist, optuna.distributions.IntDistribution) else float(raw)
            )
        learner = problem.new_learner(config, ctx.seed)
        curve: dict[int, float] = {}
        t_start = time.perf_counter()
        diverged = False
        for epoch in range(1, n_epochs + 1):
            curve[epoch] = rec.train(learner, epoch)
            if not math.isfinite(curve[epoch]):
                diverged = True
                break
            if rec.exhausted:
                break
        truncated = len(curve) < n_epochs and not diverged
        value = curve[max(curve)]
        state = TrialState.PRUNED if diverged else TrialState.COMPLETE
        states[state.name] = states.get(state.name, 0) + 1
        study.add_trial(
            optuna.trial.create_trial(
                state=state,
                value=None if diverged else value,
                params=config,
                distributions=space,
                intermediate_values=curve,
                user_attrs={
                    "smac_budget": budget,
                    "smac_epochs": n_epochs,
                    "smac_seconds": time.perf_counter() - t_start,
                    "benchmark_stopped_by_budget": truncated,
                },
            )
        )
        epochs_recorded += len(curve)
        if not truncated:
            cost = worst_cost if diverged else sign * value
            if not diverged:
                worst_cost = max(worst_cost, cost) if seen_finite or sign < 0 else cost
                seen_finite = True
            with timer.measure("smac.tell"):
                facade.tell(info, TrialValue(cost=cost, time=time.perf_counter() - t_start))
    trials = study.get_trials(deepcopy=False)
    return {
        "n_trials": len(trials),
        "trial_states": states,
        "n_diverged_trials": states.get("PRUNED", 0),
        "n_prune_calls": 0,
        "n_decisions": n_ask,
        "decision_definition": "one per SMAC ask (a configuration and a budget)",
        "epochs_from_storage": sum(len(t.intermediate_values) for t in trials),
        "n_configs": len({tuple(sorted(t.params.items())) for t in trials}),
        "n_evaluations": n_ask,
    }


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("dyhpo", CONTINUATION, "DyHPOSampler + DyHPOPruner", run_dyhpo, _warm_up_dyhpo),
        Method(
            "dyhpo-rung",
            CONTINUATION,
            'DyHPOSampler(acquisition="rung") + DyHPOPruner',
            run_dyhpo_rung,
            _warm_up_dyhpo,
        ),
        Method(
            "dyhpo-mh",
            CONTINUATION,
            'DyHPOSampler(acquisition="multi-horizon") + DyHPOPruner',
            run_dyhpo_multi_horizon,
            _warm_up_dyhpo,
        ),
        Method(
            "dyhpo-ev",
            CONTINUATION,
            'DyHPOSampler(acquisition="evidence") + DyHPOPruner',
            run_dyhpo_evidence,
            _warm_up_dyhpo,
        ),
        Method(
            "dyhpo-tpe",
            CONTINUATION,
            'DyHPOSampler(proposal="tpe") + DyHPOPruner',
            run_dyhpo_tpe,
            _warm_up_dyhpo,
        ),
        Method(
            "dyhpo-bg",
            CONTINUATION,
            "DyHPOSampler(fit_in_background=True) + DyHPOPruner",
            run_dyhpo_background,
            _warm_up_dyhpo,
        ),
        Method(
            "tpe-hyperband",
            RESTART,
            "TPESampler + HyperbandPruner(min_resource=1, max_resource=max_epochs, eta=3)",
            run_tpe_hyperband,
        ),
        Method(
            "tpe-sh",
            RESTART,
            "TPESampler + SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)",
            run_tpe_sh,
        ),
        Method("random", RESTART, "RandomSampler, no pruning (max epochs each)", run_random),
        Method(
            "smac-mf",
            RESTART,
            "SMAC3 MultiFidelityFacade + Hyperband intensifier (eta=3), ask/tell",
            run_smac,
            _warm_up_smac,
        ),
        Method(
            "random-hyperband",
            RESTART,
            "RandomSampler + HyperbandPruner(min_resource=1, max_resource=max_epochs, eta=3)",
            run_random_hyperband,
        ),
    )
}


def check_available(name: str) -> str | None:
    """Return None if method ``name`` can run here, else the reason it cannot."""
    try:
        if name in ("dyhpo", "dyhpo-rung", "dyhpo-mh", "dyhpo-ev", "dyhpo-tpe", "dyhpo-bg"):
            _import_dyhpo()
        elif name == "smac-mf":
            _import_smac()
    except MethodUnavailable as exc:
        return str(exc)
    return None
