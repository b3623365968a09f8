"""TrialResume: checkpoints as artifacts, and clear errors when they are missing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.trial import TrialState
import pytest

from optuna_dyhpo import CheckpointError
from optuna_dyhpo import StopAfterEpochs
from optuna_dyhpo import TrialResume
from tests.synthetic import make_objective
from tests.synthetic import make_study


def test_checkpoints_are_artifacts_of_the_paused_trial(tmp_path: Path) -> None:
    study = make_study(8, tmp_path=tmp_path)
    study.optimize(make_objective(checkpoint=True), callbacks=[StopAfterEpochs(30)])
    paused = [t for t in study.trials if t.user_attrs.get("dyhpo_status") == "paused"]
    assert paused
    metas = optuna.artifacts.get_all_artifact_meta(paused[0], storage=study._storage)
    assert [m.artifact_id for m in metas] == [paused[0].user_attrs["dyhpo_checkpoint"]]


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
    study = make_study(5, direction="minimize", tmp_path=tmp_path)
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
    study = make_study(5, direction="minimize")
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
