"""Bad input: at construction (clear messages) and at run time (clear errors, no data lost)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
import subprocess
import sys

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState
import pytest

from optuna_dyhpo import CheckpointError
from optuna_dyhpo import DyHPOPruner
from optuna_dyhpo import DyHPOSampler
from optuna_dyhpo import StopAfterEpochs
from optuna_dyhpo import TrialResume
from tests.synthetic import make_objective


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"max_budget": 0}, "`max_budget` must be an integer >= 1, but got 0"),
        ({"max_budget": 5.0}, "`max_budget` must be an integer >= 1, but got 5.0 (float)"),
        ({"max_budget": 5, "seed": -1}, "`seed` must be an integer >= 0, but got -1"),
        ({"max_budget": 5, "n_candidates": 0}, "`n_candidates` must be an integer >= 1"),
        ({"max_budget": 5, "n_startup_configs": True}, "`n_startup_configs` must be an integer"),
        ({"max_budget": 5, "artifact_store": "dir"}, "`artifact_store` must be an Optuna"),
    ],
)
def test_sampler_validates_its_arguments(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ValueError) as err:
        DyHPOSampler(**kwargs)
    assert fragment in str(err.value)


def test_stop_after_epochs_validates() -> None:
    with pytest.raises(ValueError, match="`n_epochs` must be an integer >= 1, but got 0"):
        StopAfterEpochs(0)


def test_multi_objective_is_rejected() -> None:
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=DyHPOSampler(5))
    with pytest.raises(ValueError, match="single-objective"):
        study.optimize(lambda t: (t.suggest_float("x", 0, 1), 0.0), n_trials=1)


def test_pruner_without_dyhpo_sampler_is_rejected() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(), pruner=DyHPOPruner())

    def objective(trial: optuna.Trial) -> float:
        trial.report(1.0, 1)
        trial.should_prune()
        return 1.0

    with pytest.raises(RuntimeError, match="DyHPOPruner needs DyHPOSampler"):
        study.optimize(objective, n_trials=1)


def _study(**kwargs: object) -> optuna.Study:
    return optuna.create_study(
        sampler=DyHPOSampler(5, seed=0, n_candidates=32, **kwargs),  # type: ignore[arg-type]
        pruner=DyHPOPruner(),
    )


@pytest.mark.parametrize(
    "steps,message",
    [
        ([1, 3], r"must report steps 1, 2, \.\.\. in order without gaps; steps \[2\]"),
        ([0], "counts steps \\(epochs\\) from 1"),
        ([1, 2, 3, 4, 5, 6], "reported step 6, beyond the sampler's max_budget=5"),
    ],
)
def test_steps_out_of_order_fail_only_that_trial(steps: list[int], message: str) -> None:
    study = _study()
    study.optimize(make_objective(), callbacks=[StopAfterEpochs(8)])
    before = {t.number: (t.state, t.intermediate_values) for t in study.trials}

    def bad(trial: optuna.Trial) -> float:
        trial.suggest_float("x", 0.0, 1.0)
        for s in steps:
            trial.report(0.5, s)
            trial.should_prune()
        return 0.5

    with pytest.raises(ValueError, match=message):
        study.optimize(bad, n_trials=1)
    assert study.trials[-1].state == TrialState.FAIL
    after = {t.number: (t.state, t.intermediate_values) for t in study.trials[:-1]}
    assert after == before


def _recording(
    objective: Callable[[optuna.Trial], float], errors: dict[int, str]
) -> Callable[[optuna.Trial], float]:
    def wrapped(trial: optuna.Trial) -> float:
        try:
            return objective(trial)
        except CheckpointError as err:
            errors[trial.number] = str(err)
            raise

    return wrapped


def test_missing_checkpoint_names_the_trial_and_artifact(tmp_path: Path) -> None:
    store_dir = tmp_path / "artifacts"
    store_dir.mkdir()
    study = _study(artifact_store=FileSystemArtifactStore(str(store_dir)))
    study.optimize(make_objective(checkpoint=True), callbacks=[StopAfterEpochs(12)])
    n_before = len(study.trials)
    for f in store_dir.iterdir():  # the checkpoints vanish (e.g. a wiped scratch disk)
        f.unlink()
    errors: dict[int, str] = {}
    objective = _recording(make_objective(checkpoint=True), errors)
    study.optimize(objective, n_trials=20, catch=(CheckpointError,))
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert failed and {t.number for t in failed} == set(errors)
    for t in failed:
        parent = t.user_attrs["dyhpo_continues_trial"]
        artifact = study.trials[parent].user_attrs["dyhpo_checkpoint"]
        assert (
            f"Trial {t.number} cannot read the checkpoint of paused trial {parent}"
            in (errors[t.number])
        )
        assert artifact in errors[t.number]
    # Nothing else was lost: the trials from before are untouched.
    assert all(t.state != TrialState.FAIL for t in study.trials[:n_before])


def test_resuming_without_a_saved_checkpoint_is_a_clear_error() -> None:
    study = _study()
    errors: dict[int, str] = {}
    study.optimize(make_objective(checkpoint=False), callbacks=[StopAfterEpochs(20)])

    def loads_first(trial: optuna.Trial) -> float:
        TrialResume(trial).load()
        return make_objective(checkpoint=False)(trial)

    study.optimize(_recording(loads_first, errors), n_trials=30, catch=(CheckpointError,))
    assert errors, "no configuration was resumed"
    for number, message in errors.items():
        parent = study.trials[number].user_attrs["dyhpo_continues_trial"]
        assert f"the paused trial {parent} saved no checkpoint" in message


def test_trial_resume_needs_the_dyhpo_sampler() -> None:
    study = optuna.create_study()
    with pytest.raises(RuntimeError, match="TrialResume needs a study created with"):
        TrialResume(study.ask())


def test_import_is_light() -> None:
    code = "import sys, optuna_dyhpo; assert 'torch' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr
