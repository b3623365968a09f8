"""Incremental reads of a study, continuation lookups and the batched trial write."""

from __future__ import annotations

from collections.abc import Callable
import functools
import math
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState
import pytest
from sqlalchemy import event

from benchmarks._stub_policy import stub_study
from optuna_dyhpo import DyHPOSampler
from optuna_dyhpo import TrialResume
from optuna_dyhpo import _study_io
from optuna_dyhpo import epochs_spent
from optuna_dyhpo._budget import _epochs
from optuna_dyhpo._state import build_configurations
from optuna_dyhpo._study_io import StudyReader
from optuna_dyhpo._study_io import write_trial
from optuna_dyhpo.storages import create_sqlite_storage

MAX_BUDGET = 8


def _failing_objective(trial: optuna.Trial) -> float:
    """Rising curves; some trials fail (the objective raises) after their first step."""
    x = trial.suggest_float("x", 0.0, 1.0)
    resume = TrialResume(trial)
    value = 0.0
    for epoch in resume.steps():
        value = x * (1.0 - 0.8**epoch)
        trial.report(value, epoch)
        if trial.number % 7 == 3 and epoch > resume.start_step:
            raise RuntimeError("a failing objective")
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


@pytest.fixture(params=["inmemory", "sqlite"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "inmemory":
        return optuna.storages.InMemoryStorage()
    return create_sqlite_storage(tmp_path / "study.db")


def _count_calls(
    monkeypatch: pytest.MonkeyPatch, name: str, size: Callable[[Any], int]
) -> list[int]:
    """Count what ``_study_io.<name>`` returns (``size`` of each result)."""
    calls: list[int] = []
    original = getattr(_study_io, name)

    @functools.wraps(original)
    def counted(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        calls.append(size(result))
        return result

    monkeypatch.setattr(_study_io, name, counted)
    return calls


def test_incremental_read_equals_a_full_rebuild(storage: Any) -> None:
    study = stub_study(MAX_BUDGET, storage=storage)
    sampler = study.sampler
    assert isinstance(sampler, DyHPOSampler)
    reads = [0]
    original = sampler._configurations

    def checked(s: optuna.Study, trials: Any = None) -> Any:
        configs = original(s, trials)
        full = build_configurations(StudyReader().segments(s), MAX_BUDGET)
        assert configs == full
        assert list(configs) == sorted(configs)
        reads[0] += 1
        return configs

    sampler._configurations = checked  # type: ignore[method-assign,assignment]
    study.optimize(_failing_objective, n_trials=60, catch=(RuntimeError,))
    states = {t.state for t in study.get_trials(deepcopy=False)}
    assert {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL} <= states
    statuses = {c.status for c in original(study).values()}
    assert {"completed", "paused", "failed"} <= statuses
    assert reads[0] > 60


def test_a_read_parses_and_joins_only_what_changed(
    storage: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each read parses the running trial and the trials finished since the previous read,
    and joins only their configurations: its work does not grow with the history."""
    parsed = _count_calls(monkeypatch, "parse_trial", lambda r: 1)
    joined = _count_calls(monkeypatch, "build_configurations", len)
    study = stub_study(MAX_BUDGET, storage=storage)
    sampler = study.sampler
    assert isinstance(sampler, DyHPOSampler)
    per_read: list[tuple[int, int]] = []
    original = sampler._configurations

    def counted(s: optuna.Study, trials: Any = None) -> Any:
        p0, j0 = len(parsed), sum(joined)
        configs = original(s, trials)
        per_read.append((len(parsed) - p0, sum(joined) - j0))
        return configs

    sampler._configurations = counted  # type: ignore[method-assign,assignment]
    study.optimize(_failing_objective, n_trials=60, catch=(RuntimeError,))
    n_configs = len(original(study))
    assert n_configs > 10
    # A sequential study: at most the running trial and the one that just finished.
    assert max(p for p, _ in per_read) <= 2, per_read
    assert max(j for _, j in per_read) <= 2, per_read
    # Nothing changed: nothing is parsed or joined again.
    p0, j0 = len(parsed), sum(joined)
    original(study)
    assert (len(parsed), sum(joined)) == (p0, j0)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_incremental_epochs_spent_equals_a_full_count(storage: Any, n_jobs: int) -> None:
    """The reader counts the leading finished trials once; at every decision its count is
    the full count, with trials running in other threads and a trial waiting to run
    (enqueued: it holds the leading run back until it finished)."""
    study = stub_study(MAX_BUDGET, storage=storage)
    sampler = study.sampler
    assert isinstance(sampler, DyHPOSampler)
    counts: list[tuple[int, int]] = []
    original = sampler._epochs_spent

    def checked(s: optuna.Study, trials: Any = None) -> int:
        if trials is None:  # one list for both counts (other threads go on reporting)
            trials = s._storage.get_all_trials(s._study_id, deepcopy=False)
        spent = original(s, trials)
        counts.append((spent, _epochs(trials)))
        return spent

    sampler._epochs_spent = checked  # type: ignore[method-assign]
    study.optimize(_failing_objective, n_trials=20, catch=(RuntimeError,), n_jobs=n_jobs)
    study.enqueue_trial({"x": 0.5})
    study.optimize(_failing_objective, n_trials=30, catch=(RuntimeError,), n_jobs=n_jobs)
    assert len(counts) > 50
    assert all(spent == full for spent, full in counts), counts
    assert original(study) == epochs_spent(study) > 0
    # A new reader, or a list it did not count (another study's), counts again.
    assert StudyReader().epochs_spent(study) == epochs_spent(study)
    assert sampler._reader.epochs_spent(study, []) == 0


def test_continuations_fresh_and_as_of_the_last_read(storage: Any) -> None:
    study = stub_study(MAX_BUDGET, storage=storage)
    reader = StudyReader()
    parent = study.ask()
    study._storage.set_trial_system_attr(
        parent._trial_id, "dyhpo:segment", {"config": 0, "start": 1, "parent": None}
    )
    study.tell(parent, state=TrialState.PRUNED)
    assert reader.continuations(study, parent.number) == {}
    child = study.ask()
    study._storage.set_trial_system_attr(
        child._trial_id, "dyhpo:segment", {"config": 0, "start": 2, "parent": parent.number}
    )
    # Not read yet: only a fresh lookup sees the running continuation.
    assert reader.continuations(study, parent.number, fresh=False) == {}
    assert reader.continuations(study, parent.number) == {child.number: False}
    study._storage.set_trial_state_values(child._trial_id, TrialState.FAIL)  # worker died
    assert reader.continuations(study, parent.number) == {child.number: True}
    # A waiting copy of a continuation (as retry callbacks enqueue) counts as live.
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.WAITING,
            system_attrs={"dyhpo:segment": {"config": 0, "start": 2, "parent": parent.number}},
        )
    )
    copy = study.get_trials(deepcopy=False)[-1].number
    assert reader.continuations(study, parent.number) == {child.number: True, copy: False}


def test_write_trial_writes_every_value_once(storage: Any) -> None:
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    study._storage.set_trial_intermediate_value(trial._trial_id, 2, -1.0)  # replaced
    curve = {1: 0.5, 2: 0.25, 3: math.inf, 4: math.nan}
    write_trial(study._storage, trial._trial_id, values=curve)
    got = study._storage.get_trial(trial._trial_id).intermediate_values
    assert got.keys() == curve.keys()
    assert got[1] == 0.5 and got[2] == 0.25 and got[3] == math.inf and math.isnan(got[4])
    study.tell(trial, state=TrialState.PRUNED)
    with pytest.raises(UpdateFinishedTrialError):
        write_trial(study._storage, trial._trial_id, values={5: 1.0})


def test_a_curve_write_is_one_transaction_on_rdb(tmp_path: Path) -> None:
    storage = create_sqlite_storage(tmp_path / "study.db")
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    statements: list[str] = []
    event.listen(storage.engine, "before_cursor_execute", lambda *a: statements.append(str(a[2])))
    write_trial(study._storage, trial._trial_id, values={s: 1.0 / s for s in range(1, 201)})
    assert sum(s.startswith("BEGIN") for s in statements) == 1
    assert len(statements) <= 5, statements  # begin, trial, delete, insert (batched)
    assert len(study._storage.get_trial(trial._trial_id).intermediate_values) == 200
    storage.engine.dispose()


def test_write_trial_writes_values_and_attributes_together(storage: Any) -> None:
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    study._storage.set_trial_user_attr(trial._trial_id, "u", "old")  # replaced
    write_trial(
        study._storage,
        trial._trial_id,
        values={1: 0.5, 2: 0.25},
        system_attrs={"s": {"config": 3}},
        user_attrs={"u": 7, "v": [1, 2]},
    )
    got = study._storage.get_trial(trial._trial_id)
    assert got.intermediate_values == {1: 0.5, 2: 0.25}
    assert got.system_attrs["s"] == {"config": 3}
    assert got.user_attrs == {"u": 7, "v": [1, 2]}
    study.tell(trial, state=TrialState.PRUNED)
    with pytest.raises(UpdateFinishedTrialError):
        write_trial(study._storage, trial._trial_id, user_attrs={"u": 8})
    assert study._storage.get_trial(trial._trial_id).user_attrs["u"] == 7


def test_write_trial_is_one_transaction_on_rdb(tmp_path: Path) -> None:
    storage = create_sqlite_storage(tmp_path / "study.db")
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    statements: list[str] = []
    event.listen(storage.engine, "before_cursor_execute", lambda *a: statements.append(str(a[2])))
    write_trial(
        study._storage,
        trial._trial_id,
        values={1: 1.0},
        system_attrs={"a": 1, "b": 2},
        user_attrs={"c": 3},
    )
    assert sum(s.startswith("BEGIN") for s in statements) == 1
    storage.engine.dispose()


def test_threads_sharing_a_reader_see_each_trial_once() -> None:
    study = stub_study(MAX_BUDGET)
    study.optimize(_failing_objective, n_trials=40, n_jobs=2, catch=(RuntimeError,))
    sampler = study.sampler
    assert isinstance(sampler, DyHPOSampler)
    configs = sampler._configurations(study)
    assert configs == build_configurations(StudyReader().segments(study), MAX_BUDGET)
    for c in configs.values():
        assert len(set(c.trial_numbers)) == len(c.trial_numbers)
