"""Liveness: trials failed by another worker, trials without a heartbeat, rejected studies.

DyHPO's decisions are scripted here (every configuration pauses at step 2, a paused
configuration is always resumed first) so that each scenario hits a known trial, whatever the
seed; the storage-level behaviour under test does not depend on what DyHPO decides.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import math
from pathlib import Path
import sqlite3
from typing import Any
import warnings

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial
from optuna.trial import TrialState
import pytest

from benchmarks.stress import check_invariants
from optuna_dyhpo import DyHPOPruner
from optuna_dyhpo import DyHPOSampler
from optuna_dyhpo import DyHPOWarning
from optuna_dyhpo import TrialResume
from optuna_dyhpo import _continuation
from optuna_dyhpo import _planning
from optuna_dyhpo import get_configurations
from optuna_dyhpo._continuation import claim_continuation
from optuna_dyhpo._decision import Decision
from optuna_dyhpo._liveness import SilentTrialSweeper
from optuna_dyhpo._liveness import _silent_running_trials
from optuna_dyhpo._state import SEGMENT_KEY
from optuna_dyhpo._state import USER_STATUS
from optuna_dyhpo._state import Configuration
from optuna_dyhpo._study_io import write_trial
from optuna_dyhpo.storages import create_sqlite_storage

MAX_BUDGET = 6
PAUSE_AT = 2

pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning"),
]


def scripted_decide(
    study: optuna.Study, configs: dict[int, Configuration], running: int | None
) -> Decision:
    """Pause every configuration once it has ``PAUSE_AT`` steps; resume paused ones first."""
    nan = math.nan
    if running is not None:
        c = configs[running]
        if c.last_step < PAUSE_AT:
            return Decision("continue", running, None, c.last_step + 1, nan, "script")
        return Decision("fresh", None, None, 1, nan, "script")
    paused = sorted(k for k, c in configs.items() if c.status == "paused")
    if paused:
        c = configs[paused[0]]
        return Decision("resume", c.config_id, None, c.last_step + 1, nan, "script")
    return Decision("fresh", None, None, 1, nan, "script")


class Objective:
    """Trains with real checkpoints; ``hook(trial, where)`` runs at named points."""

    def __init__(self, hook: Callable[[optuna.Trial, str], None]) -> None:
        self.hook = hook
        self.loaded: dict[int, int | None] = {}  # trial number -> checkpoint step loaded

    def __call__(self, trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        resume = TrialResume(trial)
        state = resume.load()
        self.loaded[trial.number] = None if state is None else state["step"]
        value = 0.0
        for epoch in resume.steps():
            self.hook(trial, "before report")
            value = x * epoch
            trial.report(value, epoch)
            if trial.should_prune():
                self.hook(trial, "before save")
                resume.save({"step": epoch})
                self.hook(trial, "before tell")
                raise optuna.TrialPruned()
        self.hook(trial, "before tell")
        return value


@pytest.fixture(params=["sqlite-heartbeat", "inmemory"])
def storages(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[BaseStorage, BaseStorage]]:
    """(the worker's storage, "another worker's" storage on the same study data)."""
    if request.param == "inmemory":
        storage: BaseStorage = optuna.storages.InMemoryStorage()
        yield storage, storage
        return
    path = tmp_path / "study.db"
    mine = create_sqlite_storage(path, heartbeat_interval=60, grace_period=120)
    other = create_sqlite_storage(path)
    try:
        yield mine, other
    finally:
        mine.engine.dispose()
        other.engine.dispose()


def scripted_study(storage: BaseStorage | str | None, tmp_path: Path) -> optuna.Study:
    sampler = DyHPOSampler(
        MAX_BUDGET, seed=0, artifact_store=FileSystemArtifactStore(str(tmp_path))
    )
    sampler._decide = scripted_decide  # type: ignore[method-assign,assignment]
    return optuna.create_study(
        storage=storage, direction="maximize", sampler=sampler, pruner=DyHPOPruner()
    )


def _no_running(study: optuna.Study) -> list[int]:
    return [
        t.number
        for t in study._storage.get_all_trials(study._study_id, deepcopy=False)
        if t.state == TrialState.RUNNING
    ]


# ----------------------------------------------------- a trial failed by another worker (2)
@pytest.mark.parametrize(
    "where", ["before report", "before save", "before tell", "deciding", "after_trial"]
)
def test_a_trial_failed_by_another_worker_does_not_stop_optimize(
    storages: tuple[BaseStorage, BaseStorage], tmp_path: Path, where: str
) -> None:
    """Trial 1 (the first continuation) is failed by "another worker" at ``where``: its own
    worker warns (naming the heartbeat settings), stops it and goes on; the configuration is
    paused again at its checkpoint and the next trial resumes it from there."""
    mine, other = storages
    study = scripted_study(mine, tmp_path)
    victim = 1
    killed: list[int] = []

    def kill(trial_id: int, number: int) -> None:
        if number == victim and not killed:
            killed.append(number)
            other.set_trial_state_values(trial_id, TrialState.FAIL)

    def hook(trial: optuna.Trial, point: str) -> None:
        if point == where:
            kill(trial._trial_id, trial.number)

    sampler = study.sampler
    assert isinstance(sampler, DyHPOSampler)
    plan, after = sampler._plan_trial, sampler.after_trial
    if where == "deciding":

        def plan_then_die(s: optuna.Study, t: FrozenTrial) -> None:
            kill(t._trial_id, t.number)
            plan(s, t)

        sampler._plan_trial = plan_then_die  # type: ignore[method-assign]
    if where == "after_trial":

        def die_in_after_trial(s: optuna.Study, t: FrozenTrial, *args: Any) -> None:
            kill(t._trial_id, t.number)
            after(s, t, *args)

        sampler.after_trial = die_in_after_trial  # type: ignore[method-assign]

    objective = Objective(hook)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study.optimize(objective, n_trials=4)  # must not raise

    assert killed == [victim]
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 4
    assert [t.number for t in trials if t.state == TrialState.FAIL] == [victim]
    assert USER_STATUS not in trials[victim].user_attrs  # a crashed segment
    stopped = [w for w in caught if issubclass(w.category, DyHPOWarning)]
    assert len(stopped) == 1, [str(w.message) for w in caught]
    message = str(stopped[0].message)
    assert f"Trial {victim} was finished (FAIL) by another worker" in message
    if mine is not other:  # the heartbeat storage
        assert "heartbeat_interval=60" in message and "grace_period=120" in message
    # Configuration 0 was paused at step 2 by trial 0; trial 1's steps are not part of it, and
    # trial 2 resumed it from trial 0's checkpoint.
    seg2 = trials[2].system_attrs[SEGMENT_KEY]
    if where == "deciding":
        assert SEGMENT_KEY not in trials[victim].system_attrs
    else:
        assert trials[victim].system_attrs[SEGMENT_KEY]["parent"] == 0
    assert (seg2["config"], seg2["parent"], seg2["start"]) == (0, 0, PAUSE_AT + 1)
    assert objective.loaded[2] == PAUSE_AT
    assert check_invariants(study._storage, study.study_name, MAX_BUDGET) == []


# ------------------------------------------------------ trials without a heartbeat (6)
def _backdate(db: Path, trial_id: int, seconds: int) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE trials SET datetime_start = datetime(datetime_start, ?) WHERE trial_id = ?",
            (f"-{seconds} seconds", trial_id),
        )


def test_first_heartbeat_is_written_before_any_dyhpo_state(tmp_path: Path) -> None:
    storage = create_sqlite_storage(tmp_path / "s.db", heartbeat_interval=60)
    try:
        study = scripted_study(storage, tmp_path)
        seen: list[bool] = []

        def checked(storage_: Any, trial_id: int, **attrs: Any) -> None:
            if SEGMENT_KEY in (attrs.get("system_attrs") or {}):
                silent = [t for t, _ in _silent_running_trials(storage, study._study_id)]
                seen.append(trial_id not in silent)
            write_trial(storage_, trial_id, **attrs)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(_planning, "write_trial", checked)
            patch.setattr(_continuation, "write_trial", checked)
            study.optimize(Objective(lambda t, p: None), n_trials=3)
        assert len(seen) == 3 and all(seen)
    finally:
        storage.engine.dispose()


def test_a_trial_without_heartbeat_is_failed_and_its_configuration_resumed(
    tmp_path: Path,
) -> None:
    """A continuation whose worker died before its first heartbeat (RUNNING, no heartbeat
    row, older than the grace period): Optuna's ``fail_stale_trials`` never fails it; the next
    DyHPO decision does, and the configuration is resumed from its last checkpoint."""
    db = tmp_path / "s.db"
    # A long grace period: no live trial of this test looks stale, however loaded the machine.
    storage = create_sqlite_storage(db, heartbeat_interval=1, grace_period=600)
    try:
        study = scripted_study(storage, tmp_path)
        study.optimize(Objective(lambda t, p: None), n_trials=1)  # config 0 paused at 2
        sampler = study.sampler
        assert isinstance(sampler, DyHPOSampler)
        (paused,) = [c for c in get_configurations(study) if c.status == "paused"]
        # The dead worker: it created its trial and claimed configuration 0, no heartbeat.
        dead_id = storage.create_new_trial(study._study_id)
        assert claim_continuation(sampler, study, storage.get_trial(dead_id), paused)
        young_id = storage.create_new_trial(study._study_id)  # a live worker, just started
        _backdate(db, dead_id, 3600)
        assert get_configurations(study)[0].status == "running"
        optuna.storages.fail_stale_trials(study)  # Optuna skips trials without a heartbeat
        assert storage.get_trial(dead_id).state == TrialState.RUNNING

        objective = Objective(lambda t, p: None)
        sampler._sweeper = SilentTrialSweeper()  # as in another worker: no sweep this second
        study.optimize(objective, n_trials=1)

        assert storage.get_trial(dead_id).state == TrialState.FAIL
        assert storage.get_trial(young_id).state == TrialState.RUNNING  # not old enough
        new = study.get_trials(deepcopy=False)[-1]
        seg = new.system_attrs[SEGMENT_KEY]
        assert (seg["config"], seg["parent"], seg["start"]) == (0, 0, PAUSE_AT + 1)
        assert objective.loaded[new.number] == PAUSE_AT
    finally:
        storage.engine.dispose()


def test_an_enqueued_trial_whose_worker_died_before_its_heartbeat_is_enqueued_again(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.db"
    # A long grace period: no live trial of this test looks stale, however loaded the machine.
    storage = create_sqlite_storage(db, heartbeat_interval=1, grace_period=600)
    try:
        study = scripted_study(storage, tmp_path)
        study.enqueue_trial({"x": 0.25})
        (waiting,) = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        assert storage.set_trial_state_values(waiting._trial_id, TrialState.RUNNING)  # dies
        _backdate(db, waiting._trial_id, 3600)
        # The first decision fails and re-enqueues it; the next trial runs it.
        study.optimize(Objective(lambda t, p: None), n_trials=2)
        assert storage.get_trial(waiting._trial_id).state == TrialState.FAIL
        runs = [t for t in study.get_trials(deepcopy=False) if t.params == {"x": 0.25}]
        assert [t.state for t in runs] == [TrialState.PRUNED]  # ran again, exactly once
    finally:
        storage.engine.dispose()


# ----------------------------------------------------------------- rejected studies (7)
def _reject_multi_objective(storage: str | None, tmp_path: Path) -> optuna.Study:
    study = optuna.create_study(
        storage=storage, directions=["minimize", "minimize"], sampler=DyHPOSampler(5)
    )
    with pytest.raises(ValueError, match="single-objective"):
        study.optimize(lambda t: (t.suggest_float("x", 0, 1), 0.0), n_trials=1)
    with pytest.raises(ValueError, match="single-objective"):
        study.ask()
    return study


def _reject_wrong_sampler(storage: str | None, tmp_path: Path) -> optuna.Study:
    study = optuna.create_study(
        storage=storage, sampler=optuna.samplers.RandomSampler(0), pruner=DyHPOPruner()
    )

    def objective(trial: optuna.Trial) -> float:
        trial.report(trial.suggest_float("x", 0, 1), 1)
        trial.should_prune()
        return 0.0

    with pytest.raises(RuntimeError, match="DyHPOPruner needs DyHPOSampler"):
        study.optimize(objective, n_trials=1)
    return study


def _reject_bad_step(storage: str | None, tmp_path: Path) -> optuna.Study:
    study = scripted_study(storage, tmp_path)

    def objective(trial: optuna.Trial) -> float:
        trial.report(trial.suggest_float("x", 0, 1), 0)
        trial.should_prune()
        return 0.0

    with pytest.raises(ValueError, match="counts steps"):
        study.optimize(objective, n_trials=1)
    return study


def _reject_failing_decision(storage: str | None, tmp_path: Path) -> optuna.Study:
    study = scripted_study(storage, tmp_path)

    def broken(*args: Any, **kwargs: Any) -> Decision:
        raise RuntimeError("decision failed")

    study.sampler._decide = broken  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="decision failed"):
        study.optimize(Objective(lambda t, p: None), n_trials=1)
    with pytest.raises(RuntimeError, match="decision failed"):
        study.ask()
    return study


@pytest.mark.parametrize(
    "reject",
    [_reject_multi_objective, _reject_wrong_sampler, _reject_bad_step, _reject_failing_decision],
)
@pytest.mark.parametrize("kind", ["inmemory", "sqlite"])
def test_a_rejected_study_leaves_no_running_trial(
    reject: Callable[[str | None, Path], optuna.Study], kind: str, tmp_path: Path
) -> None:
    storage = None if kind == "inmemory" else f"sqlite:///{tmp_path / 'r.db'}"
    study = reject(storage, tmp_path)
    trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
    assert trials, "the rejection happened before any trial was created"
    assert _no_running(study) == []
    assert {t.state for t in trials} == {TrialState.FAIL}


def test_other_studies_keep_optuna_behaviour(tmp_path: Path) -> None:
    """The optimize hooks are installed by DyHPOSampler and change nothing for a study whose
    sampler is not DyHPO's: its trial failed by someone else still ends optimize."""
    from optuna.study import _optimize

    DyHPOSampler(MAX_BUDGET)
    assert hasattr(_optimize._run_trial, "__dyhpo_wrapped__")
    assert hasattr(_optimize._tell_with_warning, "__dyhpo_wrapped__")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(0))

    def objective(trial: optuna.Trial) -> float:
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        return 0.0

    with pytest.raises((ValueError, AssertionError)):
        study.optimize(objective, n_trials=1)
