"""Pause, resume, checkpoints, curves and budget accounting, end to end through Optuna."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState
import pytest

from optuna_dyhpo import DyHPOPruner
from optuna_dyhpo import DyHPOSampler
from optuna_dyhpo import StopAfterEpochs
from optuna_dyhpo import epochs_spent
from optuna_dyhpo import get_configurations
from tests.synthetic import curve_value
from tests.synthetic import make_objective

MAX_BUDGET = 8
TOTAL = 60


def _study(tmp_path: Path, storage: str | None, seed: int = 0) -> optuna.Study:
    store = FileSystemArtifactStore(str(tmp_path / "artifacts"))
    (tmp_path / "artifacts").mkdir(exist_ok=True)
    return optuna.create_study(
        direction="maximize",
        storage=storage,
        sampler=DyHPOSampler(MAX_BUDGET, seed=seed, n_candidates=64, artifact_store=store),
        pruner=DyHPOPruner(),
    )


@pytest.fixture(params=["inmemory", "sqlite"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    return None if request.param == "inmemory" else f"sqlite:///{tmp_path / 'study.db'}"


def test_pause_resume_checkpoint_curve_and_budget(tmp_path: Path, storage: str | None) -> None:
    log: list[tuple[int, int, int]] = []
    study = _study(tmp_path, storage)
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


def test_checkpoints_are_artifacts_of_the_paused_trial(tmp_path: Path) -> None:
    study = _study(tmp_path, None)
    study.optimize(make_objective(checkpoint=True), callbacks=[StopAfterEpochs(30)])
    paused = [t for t in study.trials if t.user_attrs.get("dyhpo_status") == "paused"]
    assert paused
    metas = optuna.artifacts.get_all_artifact_meta(paused[0], storage=study._storage)
    assert [m.artifact_id for m in metas] == [paused[0].user_attrs["dyhpo_checkpoint"]]


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


def _bad_objective(kind: str) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        lr = trial.suggest_float("lr", 1e-2, 1.0, log=True)
        from optuna_dyhpo import TrialResume

        value = 0.0
        for epoch in TrialResume(trial).steps():
            value = curve_value(x, lr, epoch)
            if kind == "nan" and trial.number == 1 and epoch == 1:
                value = float("nan")
            if kind == "fail" and trial.number == 1 and epoch == 1:
                raise RuntimeError("simulated crash in the objective")
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    return objective


@pytest.mark.parametrize("kind,status", [("nan", "diverged"), ("fail", "failed")])
def test_diverged_and_failed_configurations_are_never_resumed(kind: str, status: str) -> None:
    study = optuna.create_study(
        direction="maximize",
        sampler=DyHPOSampler(MAX_BUDGET, seed=0, n_candidates=64, n_startup_configs=2),
        pruner=DyHPOPruner(),
    )
    study.optimize(_bad_objective(kind), callbacks=[StopAfterEpochs(40)], catch=(RuntimeError,))
    configs = {c.config_id: c for c in get_configurations(study)}
    assert configs[1].status == status and configs[1].trial_numbers == [1]
    others = [c for cid, c in configs.items() if cid != 1]
    assert all(c.status != status for c in others)  # nothing else was touched
    assert study.trials[1].user_attrs["dyhpo_status"] == status


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
            value = ceiling * (1 - 0.6**epoch)
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    study = _study(tmp_path, None)
    study.optimize(objective, callbacks=[StopAfterEpochs(50)])
    configs = get_configurations(study)
    assert any(len(c.trial_numbers) > 1 for c in configs)
    by_number = {t.number: t for t in study.trials}
    for c in configs:
        params = [by_number[n].params for n in c.trial_numbers]
        assert all(p == params[0] for p in params)
        assert ("depth" in params[0]) == (params[0]["kind"] == "deep")
    assert {c.params["kind"] for c in configs} == {"linear", "deep"}


def test_budget_counts_only_new_epochs_of_other_samplers_too() -> None:
    study = optuna.create_study()

    def objective(trial: optuna.Trial) -> float:
        for step in range(1, 4):
            trial.report(float(step), step)
        return 0.0

    study.optimize(objective, n_trials=3)
    assert epochs_spent(study) == 9
    study.optimize(objective, n_trials=100, callbacks=[StopAfterEpochs(15)])
    assert epochs_spent(study) == 15
