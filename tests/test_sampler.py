"""DyHPOSampler end to end: pause, resume, curves, reproducibility, search spaces, input checks."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.samplers import BaseSampler
from optuna.testing.pytest_samplers import SingleOnlySamplerTestCase
from optuna.trial import TrialState
import pytest

from optuna_dyhpo import DyHPOPruner
from optuna_dyhpo import DyHPOSampler
from optuna_dyhpo import DyHPOWarning
from optuna_dyhpo import StopAfterEpochs
from optuna_dyhpo import TrialResume
from optuna_dyhpo import epochs_spent
from optuna_dyhpo import get_configurations
from optuna_dyhpo._continuation import claim_continuation
from tests.synthetic import curve_value
from tests.synthetic import make_objective
from tests.synthetic import make_study

MAX_BUDGET = 8
TOTAL = 60


@pytest.fixture(params=["inmemory", "sqlite"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    return None if request.param == "inmemory" else f"sqlite:///{tmp_path / 'study.db'}"


def test_pause_resume_checkpoint_curve_and_budget(tmp_path: Path, storage: str | None) -> None:
    log: list[tuple[int, int, int]] = []
    study = make_study(MAX_BUDGET, tmp_path=tmp_path, storage=storage)
    study.optimize(make_objective(checkpoint=True, log=log), callbacks=[StopAfterEpochs(TOTAL)])
    trials = study.get_trials(deepcopy=False)
    # The objective asserts the checkpoint round trip; a failed assertion would FAIL a trial.
    assert not [t.number for t in trials if t.state == TrialState.FAIL]

    configs = get_configurations(study)
    resumed = [c for c in configs if len(c.trial_numbers) > 1]
    assert resumed, "no configuration was paused and resumed"
    by_number = {t.number: t for t in trials}
    for c in configs:
        segs = [by_number[n] for n in c.trial_numbers]
        # Identical params in every segment.
        assert all(s.params == segs[0].params for s in segs)
        # Each continuation points to its parent and starts right after the parent's last step.
        for parent, child in zip(segs, segs[1:], strict=False):
            assert child.user_attrs["dyhpo_continues_trial"] == parent.number
            assert child.user_attrs["dyhpo_start_epoch"] == parent.last_step + 1
            assert child.user_attrs["dyhpo_config"] == c.config_id
            assert parent.state == TrialState.PRUNED
            assert parent.user_attrs["dyhpo_status"] == "paused"
            assert "dyhpo_checkpoint" in parent.user_attrs
        # The latest trial carries the whole, contiguous curve, with the true values.
        last = segs[-1]
        assert sorted(last.intermediate_values) == list(range(1, c.last_step + 1))
        x, lr = c.params["x"], c.params["lr"]
        for step, value in last.intermediate_values.items():
            assert value == pytest.approx(curve_value(x, lr, step))
        assert c.last_step <= MAX_BUDGET
        if c.status == "completed":
            assert c.last_step == MAX_BUDGET

    # Every step of every configuration was trained exactly once.
    per_config = Counter((cfg, step) for _, cfg, step in log)
    assert max(per_config.values()) == 1
    # Continuation-aware budget: what was trained, not what the curves show.
    assert epochs_spent(study) == len(log)
    assert TOTAL <= len(log) <= TOTAL + MAX_BUDGET
    assert sum(c.last_step for c in configs) == len(log)


def _run(seed: int) -> list[tuple[int, int, int]]:
    log: list[tuple[int, int, int]] = []
    study = optuna.create_study(
        direction="maximize",
        sampler=DyHPOSampler(MAX_BUDGET, seed=seed, n_candidates=64),
        pruner=DyHPOPruner(),
    )
    study.optimize(make_objective(log=log), callbacks=[StopAfterEpochs(40)])
    return log + [(t.number, hash(tuple(sorted(t.params.items()))), 0) for t in study.trials]


def test_seed_makes_a_sequential_run_reproducible() -> None:
    assert _run(3) == _run(3)
    assert _run(3) != _run(4)


def test_conditional_and_mixed_search_space(tmp_path: Path) -> None:
    def objective(trial: optuna.Trial) -> float:
        from optuna_dyhpo import TrialResume

        kind = trial.suggest_categorical("kind", ["linear", "deep"])
        width = trial.suggest_int("width", 8, 128, log=True)
        depth = trial.suggest_int("depth", 1, 5, step=2) if kind == "deep" else 0
        drop = trial.suggest_float("drop", 0.0, 0.5, step=0.1)
        ceiling = 0.5 + 0.1 * depth + 0.001 * width - drop
        value = 0.0
        for epoch in TrialResume(trial).steps():
            value = ceiling * (1 - 0.8**epoch)
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    study = make_study(MAX_BUDGET, tmp_path=tmp_path)
    study.optimize(objective, callbacks=[StopAfterEpochs(60)])
    configs = get_configurations(study)
    assert any(len(c.trial_numbers) > 1 for c in configs)
    by_number = {t.number: t for t in study.trials}
    for c in configs:
        params = [by_number[n].params for n in c.trial_numbers]
        assert all(p == params[0] for p in params)
        assert ("depth" in params[0]) == (params[0]["kind"] == "deep")
    assert {c.params["kind"] for c in configs} == {"linear", "deep"}


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"max_budget": 0}, "`max_budget` must be an integer >= 1, but got 0"),
        ({"max_budget": 5.0}, "`max_budget` must be an integer >= 1, but got 5.0 (float)"),
        ({"max_budget": 5, "seed": -1}, "`seed` must be an integer >= 0, but got -1"),
        ({"max_budget": 5, "n_candidates": 0}, "`n_candidates` must be an integer >= 1"),
        ({"max_budget": 5, "n_startup_configs": True}, "`n_startup_configs` must be an integer"),
        ({"max_budget": 5, "artifact_store": "dir"}, "`artifact_store` must be an Optuna"),
        (
            {"max_budget": 5, "fit_in_background": 1},
            "`fit_in_background` must be True or False, but got 1",
        ),
        (
            {"max_budget": 5, "acquisition": "far"},
            "`acquisition` must be 'lookahead', 'rung', 'next-step', 'multi-horizon' or "
            "'evidence', but got 'far'",
        ),
        (
            {"max_budget": 5, "proposal": "random"},
            "`proposal` must be 'gp' or 'tpe', but got 'random'",
        ),
    ],
)
def test_sampler_validates_its_arguments(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ValueError) as err:
        DyHPOSampler(**kwargs)
    assert fragment in str(err.value)


def test_multi_objective_is_rejected() -> None:
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=DyHPOSampler(5))
    with pytest.raises(ValueError, match="single-objective"):
        study.optimize(lambda t: (t.suggest_float("x", 0, 1), 0.0), n_trials=1)


def _paused_study(tmp_path: Path) -> tuple[optuna.Study, DyHPOSampler]:
    study = make_study(MAX_BUDGET, tmp_path=tmp_path, n_startup_configs=2)
    study.optimize(make_objective(checkpoint=True), callbacks=[StopAfterEpochs(6)])
    sampler = study.sampler
    assert isinstance(sampler, DyHPOSampler)
    return study, sampler


def _ask_fresh(
    sampler: DyHPOSampler, study: optuna.Study, monkeypatch: pytest.MonkeyPatch
) -> optuna.Trial:
    """A trial whose own decision starts a new configuration (so that it claims nothing:
    the test decides what it claims)."""
    import math

    from optuna_dyhpo._engine import Decision

    with monkeypatch.context() as m:
        m.setattr(
            sampler._engine,
            "decide",
            lambda *a, **k: Decision("fresh", None, None, 1, math.nan, "test"),
        )
        return study.ask()


def test_a_paused_configuration_is_claimed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two trials that both decided to resume the same configuration: only one gets it."""
    study, sampler = _paused_study(tmp_path)
    configs = sampler._configurations(study)
    paused = next(c for c in configs.values() if c.status == "paused")
    # Both read the study before either claims.
    first, second = (
        _ask_fresh(sampler, study, monkeypatch),
        _ask_fresh(sampler, study, monkeypatch),
    )
    # Their own decisions started new configurations: force the race on `paused`, with a
    # stale view.
    for t in (first, second):
        study._storage.set_trial_system_attr(t._trial_id, "dyhpo:segment", None)
    a = claim_continuation(sampler, study, study._storage.get_trial(first._trial_id), paused)
    b = claim_continuation(sampler, study, study._storage.get_trial(second._trial_id), paused)
    assert (a, b) == (True, False)
    # No claim study is left behind.
    assert optuna.get_all_study_names(study._storage) == [study.study_name]


def test_a_stale_claim_of_a_dead_worker_is_broken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study, sampler = _paused_study(tmp_path)
    paused = next(c for c in sampler._configurations(study).values() if c.status == "paused")
    parent = study._storage.get_trial(paused.last_trial_id).number
    key = f"{study.study_name}:dyhpo-claim:{parent}:0"
    dead = study._storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], key)
    study._storage.set_study_system_attr(dead, "dyhpo:claimed_at", 0.0)  # long ago
    trial = _ask_fresh(sampler, study, monkeypatch)
    assert claim_continuation(sampler, study, study._storage.get_trial(trial._trial_id), paused)
    # A fresh claim by a live worker is respected.
    other = sampler._configurations(study)
    nxt = next(
        (c for c in other.values() if c.status == "paused" and c.config_id != paused.config_id),
        None,
    )
    if nxt is not None:
        p = study._storage.get_trial(nxt.last_trial_id).number
        study._storage.create_new_study(
            [optuna.study.StudyDirection.MINIMIZE], f"{study.study_name}:dyhpo-claim:{p}:0"
        )
        assert not claim_continuation(
            sampler,
            study,
            study._storage.get_trial(_ask_fresh(sampler, study, monkeypatch)._trial_id),
            nxt,
        )


def test_a_worker_killed_while_deciding_leaves_a_stale_trial(tmp_path: Path) -> None:
    """The heartbeat starts with DyHPO's decision, not after it, so the trial of a worker that
    died while deciding is failed as stale (and its configuration handled as a crash)."""
    import time
    import warnings

    from optuna.storages import RDBStorage
    from optuna.trial import TrialState

    storage = RDBStorage(f"sqlite:///{tmp_path / 'hb.db'}", heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(
        storage=storage, sampler=DyHPOSampler(MAX_BUDGET, seed=0), pruner=DyHPOPruner()
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Heartbeat ... supposed to be used with optimize"
        trial = study.ask()  # the worker dies right after the decision
    time.sleep(2.5)
    optuna.storages.fail_stale_trials(study)
    assert study._storage.get_trial(trial._trial_id).state == TrialState.FAIL


def test_an_unstamped_claim_of_a_dead_worker_becomes_stale(tmp_path: Path) -> None:
    """A worker that died between creating its claim and stamping it: the next worker stamps
    it, and it is broken once that stamp is older than the timeout."""
    import time

    study, sampler = _paused_study(tmp_path)
    paused = next(c for c in sampler._configurations(study).values() if c.status == "paused")
    parent = study._storage.get_trial(paused.last_trial_id).number
    key = f"{study.study_name}:dyhpo-claim:{parent}:0"
    study._storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], key)  # no stamp
    sampler._claim_timeout = 0.5
    trial = study._storage.get_trial(study.ask()._trial_id)
    assert not claim_continuation(sampler, study, trial, paused)  # stamped now, not yet stale
    time.sleep(1.0)
    assert claim_continuation(sampler, study, trial, paused)


def test_start_up_draws_are_not_on_the_diagonal() -> None:
    """Each parameter of a start-up trial gets its own draw (they were all equal)."""
    study = optuna.create_study(sampler=DyHPOSampler(5, seed=3, n_startup_configs=10))
    for _ in range(10):
        t = study.ask()
        x, y = t.suggest_float("x", 0.0, 1.0), t.suggest_float("y", 0.0, 1.0)
        study.tell(t, x + y)
    pairs = [(t.params["x"], t.params["y"]) for t in study.trials]
    assert all(x != y for x, y in pairs)
    xs = sorted(x for x, _ in pairs)
    assert xs[-1] - xs[0] > 0.3  # spread over the range, not clustered by similar seeds


def test_one_sampler_for_two_studies_keeps_them_apart(tmp_path: Path) -> None:
    sampler = DyHPOSampler(MAX_BUDGET, seed=0, n_candidates=32, n_startup_configs=2)
    storage = optuna.storages.InMemoryStorage()
    studies = [
        optuna.create_study(
            storage=storage, direction="maximize", sampler=sampler, pruner=DyHPOPruner()
        )
        for _ in range(2)
    ]
    objective = make_objective()
    studies[0].optimize(objective, callbacks=[StopAfterEpochs(20)])
    studies[1].optimize(objective, callbacks=[StopAfterEpochs(20)])
    for study in studies:
        own = {t.number for t in study.get_trials(deepcopy=False)}
        for c in get_configurations(study):
            assert set(c.trial_numbers) <= own
        for t in study.get_trials(deepcopy=False):
            # A continuation's copied curve comes from its own study's configuration.
            parent = t.user_attrs.get("dyhpo_continues_trial")
            if parent is not None:
                p = study.trials[parent]
                assert p.params == t.params
                steps = [s for s in p.intermediate_values if s < t.user_attrs["dyhpo_start_epoch"]]
                assert all(t.intermediate_values[s] == p.intermediate_values[s] for s in steps)


class TestSamplerContract(SingleOnlySamplerTestCase):
    """Optuna's own test case for single-objective samplers."""

    @pytest.fixture
    def sampler(self) -> Callable[[], BaseSampler]:
        return lambda: DyHPOSampler(5, seed=0)


def _resume_everything(study: optuna.Study, objective: Callable[[optuna.Trial], float]) -> None:
    study.optimize(objective, callbacks=[StopAfterEpochs(epochs_spent(study) + 30)])


def test_a_new_parameter_is_never_invented_for_a_resumed_configuration() -> None:
    study = make_study(MAX_BUDGET, n_startup_configs=2)
    study.optimize(make_objective(), callbacks=[StopAfterEpochs(25)])
    assert any(c.status == "paused" for c in get_configurations(study))

    def with_y(trial: optuna.Trial) -> float:
        trial.suggest_float("y", 0.0, 1.0)
        return make_objective()(trial)

    n_before = len(study.trials)
    with pytest.warns(DyHPOWarning, match="trained without parameter 'y'"):
        _resume_everything(study, with_y)
    stopped = 0
    for t in study.get_trials(deepcopy=False)[n_before:]:
        root = study.trials[t.user_attrs.get("dyhpo_config", t.number)]
        if t.user_attrs.get("dyhpo_continues_trial") is not None and "y" not in root.params:
            # Stopped before training, never given a made-up y, never resumed again.
            assert t.state == TrialState.PRUNED and "y" not in t.params
            assert t.user_attrs["dyhpo_status"] == "stopped"
            assert max(t.intermediate_values) < t.user_attrs["dyhpo_start_epoch"]
            stopped += 1
    assert stopped


def test_a_configuration_outside_the_new_range_is_not_resumed() -> None:
    study = make_study(MAX_BUDGET, n_startup_configs=3)
    study.optimize(make_objective(), callbacks=[StopAfterEpochs(25)])

    def narrowed(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 0.5)
        lr = trial.suggest_float("lr", 1e-2, 1.0, log=True)
        value = 0.0
        for epoch in TrialResume(trial).steps():
            value = curve_value(x, lr, epoch)
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    n_before = len(study.trials)
    with pytest.warns(DyHPOWarning, match="no longer contains"):
        _resume_everything(study, narrowed)
    for t in study.trials[n_before:]:
        assert 0.0 <= t.params["x"] <= 0.5  # never mutated, never resumed outside the range
        if t.user_attrs.get("dyhpo_continues_trial") is not None:
            assert study.trials[t.user_attrs["dyhpo_config"]].params == t.params


def _decisions(study: optuna.Study) -> list[tuple[object, ...]]:
    return [
        (t.params, t.user_attrs.get("dyhpo_config"), t.user_attrs.get("dyhpo_start_epoch"))
        for t in study.get_trials(deepcopy=False)
    ]


def test_a_seeded_run_decides_the_same_under_load_and_other_thread_counts() -> None:
    """Same seed, same decisions: once on a quiet process, once with other torch work running
    in parallel, another thread count and a model of another study fitted first."""
    import threading

    import torch

    def run() -> list[tuple[object, ...]]:
        study = make_study(MAX_BUDGET, seed=7, n_startup_configs=3)
        study.optimize(make_objective(), callbacks=[StopAfterEpochs(40)])
        return _decisions(study)

    quiet = run()
    stop = threading.Event()

    def busy() -> None:
        a = torch.randn(300, 300, dtype=torch.float64)
        while not stop.is_set():
            a = torch.tanh(a @ a.T / 300.0)

    threads = torch.get_num_threads()
    worker = threading.Thread(target=busy, daemon=True)
    worker.start()
    try:
        torch.set_num_threads(1 if threads > 1 else 2)
        other = make_study(MAX_BUDGET, seed=1, n_startup_configs=2)
        other.optimize(make_objective(), callbacks=[StopAfterEpochs(15)])
        loaded = run()
    finally:
        stop.set()
        worker.join()
        torch.set_num_threads(threads)
    assert loaded == quiet


def test_fits_in_the_background_decide_the_same_under_load_and_survive_a_dead_helper() -> None:
    """``fit_in_background``: refits run in the helper process, a seeded run decides the same
    with other work in parallel, and when the helper dies the study goes on fitting in its own
    process, with a warning."""
    import os
    import signal
    import threading

    import torch

    def run(kill_helper: bool = False) -> tuple[list[tuple[object, ...]], DyHPOSampler]:
        study = make_study(MAX_BUDGET, seed=3, n_startup_configs=3, fit_in_background=True)
        sampler = study.sampler
        assert isinstance(sampler, DyHPOSampler)

        def kill(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            pid = sampler._engine._fitter.pid if sampler._engine._fitter else None
            if kill_helper and pid is not None and sampler._engine.stats.background_fits:
                os.kill(pid, signal.SIGKILL)

        study.optimize(make_objective(), callbacks=[kill, StopAfterEpochs(70)])
        assert epochs_spent(study) == 70
        return _decisions(study), sampler

    quiet, sampler = run()
    stats = sampler._engine.stats
    assert stats.background_fits >= 2 and stats.scratch_fits + stats.warm_fits > 2
    stop = threading.Event()

    def busy() -> None:
        a = torch.randn(300, 300, dtype=torch.float64)
        while not stop.is_set():
            a = torch.tanh(a @ a.T / 300.0)

    worker = threading.Thread(target=busy, daemon=True)
    worker.start()
    try:
        loaded, _ = run()
    finally:
        stop.set()
        worker.join()
    assert loaded == quiet
    with pytest.warns(DyHPOWarning, match="fits its model in this process from now on"):
        _, sampler = run(kill_helper=True)
    assert sampler._engine.fitter() is None
