"""Rebuilding configurations from trials, including crashed workers' trials."""

from __future__ import annotations

from typing import Any

from optuna.distributions import FloatDistribution
from optuna.trial import TrialState
from optuna.trial import create_trial

from optuna_dyhpo._state import Configuration
from optuna_dyhpo._state import build_configurations
from optuna_dyhpo._state import parse_trial
from optuna_dyhpo._study_io import StudyReader

DIST = {"x": FloatDistribution(0.0, 1.0)}


def _trial(
    number: int,
    state: TrialState,
    config: int,
    start: int,
    parent: int | None,
    values: dict[int, float],
    status: str | None,
    paused_at: int | None = None,
) -> Any:
    t = create_trial(
        state=state,
        params={"x": 0.5},
        distributions=DIST,
        intermediate_values=values,
        value=None if state != TrialState.COMPLETE else values[max(values)],
        system_attrs={
            "dyhpo:segment": {"config": config, "start": start, "parent": parent},
            **({} if paused_at is None else {"dyhpo:paused_at": paused_at}),
        },
        user_attrs={} if status is None else {"dyhpo_status": status},
    )
    t.number = number
    t._trial_id = number
    return t


def _configurations(trials: list[Any], max_budget: int) -> dict[int, Configuration]:
    segments = [parse_trial(t) for t in trials]
    return build_configurations([s for s in segments if s is not None], max_budget)


def test_crashed_continuation_leaves_the_configuration_paused_at_its_checkpoint() -> None:
    trials = [
        _trial(0, TrialState.PRUNED, 0, 1, None, {1: 0.1, 2: 0.2}, "paused", paused_at=2),
        # The continuation's worker was killed mid-epoch (heartbeat -> FAIL, no status).
        _trial(1, TrialState.FAIL, 0, 3, 0, {1: 0.1, 2: 0.2, 3: 0.3}, None),
    ]
    configs = _configurations(trials, max_budget=10)
    c = configs[0]
    assert c.status == "paused" and c.curve == [0.1, 0.2] and c.trial_numbers == [0, 1]
    assert c.last_trial_id == 0  # resumed from trial 0's checkpoint


def test_killed_between_status_and_state_write_counts_as_its_status() -> None:
    """Optuna calls after_trial (which writes the status) before storing the state: a worker
    dying in between leaves FAIL with status "paused". Its objective had ended (and saved its
    checkpoint): the configuration is paused there, also when it was the first trial."""
    trials = [
        _trial(0, TrialState.PRUNED, 0, 1, None, {1: 0.1}, "paused", paused_at=1),
        _trial(1, TrialState.FAIL, 0, 2, 0, {1: 0.1, 2: 0.2}, "paused", paused_at=2),
        _trial(2, TrialState.FAIL, 2, 1, None, {1: 0.3}, "paused", paused_at=1),
        _trial(3, TrialState.FAIL, 3, 1, None, {b: b / 10 for b in range(1, 11)}, "completed"),
    ]
    configs = _configurations(trials, max_budget=10)
    c = configs[0]
    assert c.status == "paused" and c.curve == [0.1, 0.2] and c.last_trial_id == 1
    assert configs[2].status == "paused" and configs[2].curve == [0.3]
    assert configs[3].status == "completed"


def test_failed_in_the_objective_is_final_and_crashed_root_is_not_resumable() -> None:
    trials = [
        _trial(0, TrialState.PRUNED, 0, 1, None, {1: 0.1}, "paused", paused_at=1),
        _trial(1, TrialState.FAIL, 0, 2, 0, {1: 0.1, 2: 0.2}, "failed"),
        _trial(2, TrialState.FAIL, 2, 1, None, {1: 0.4}, None),
    ]
    configs = _configurations(trials, max_budget=10)
    assert configs[0].status == "failed"
    assert configs[2].status == "crashed" and configs[2].curve == []


def test_statuses() -> None:
    trials = [
        _trial(0, TrialState.RUNNING, 0, 1, None, {1: 0.1}, None),
        _trial(1, TrialState.COMPLETE, 1, 1, None, {1: 0.1, 2: 0.2}, "completed"),
        _trial(2, TrialState.PRUNED, 2, 1, None, {1: 0.1, 2: 0.2}, "paused", paused_at=2),
        _trial(3, TrialState.PRUNED, 3, 1, None, {1: 0.1}, "stopped"),  # pruned by the user
        _trial(4, TrialState.PRUNED, 4, 1, None, {1: 0.1, 2: float("nan")}, "diverged"),
    ]
    configs = _configurations(trials, max_budget=2)
    assert [configs[i].status for i in range(5)] == [
        "running",
        "completed",
        "stopped",  # paused, but at the maximum budget: never resumed
        "stopped",
        "diverged",
    ]
    assert configs[4].curve == [0.1]


def test_finished_trials_are_parsed_once() -> None:
    import optuna

    study = optuna.create_study()
    study.add_trial(_trial(0, TrialState.COMPLETE, 0, 1, None, {1: 0.1}, "completed"))
    t = study._storage.get_all_trials(study._study_id, deepcopy=False)[0]
    reader = StudyReader()
    first = reader.segments(study)
    t.intermediate_values[2] = 0.2  # a finished trial cannot change; the cache is trusted
    assert reader.segments(study) == first


def test_one_reader_keeps_studies_and_storages_apart() -> None:
    """The cache is keyed by storage and study: the same trial id in another study or storage
    is another trial."""
    import optuna

    reader = StudyReader()
    storage = optuna.storages.InMemoryStorage()
    a = optuna.create_study(storage=storage)
    a.add_trial(_trial(0, TrialState.COMPLETE, 0, 1, None, {1: 0.1}, "completed"))
    b = optuna.create_study(storage=storage)
    b.add_trial(_trial(0, TrialState.COMPLETE, 0, 1, None, {1: 0.9, 2: 0.95}, "completed"))
    c = optuna.create_study()  # another storage: its first trial has id 0 like a's
    c.add_trial(_trial(0, TrialState.COMPLETE, 0, 1, None, {1: 0.5}, "completed"))
    assert reader.read(a)[0].curve == [0.1]
    assert reader.read(b)[0].curve == [0.9, 0.95]
    assert reader.read(c)[0].curve == [0.5]
    assert reader.read(a)[0].curve == [0.1]
