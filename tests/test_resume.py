"""TrialResume: checkpoints as artifacts, and clear errors when they are missing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
import pytest
import torch

from optuna_dyhpo import CheckpointError
from optuna_dyhpo import StopAfterEpochs
from optuna_dyhpo import TrialResume
from tests.synthetic import curve_value
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


class _Opaque:
    """A user-defined object in a checkpoint: only a full unpickle can rebuild it."""

    def __init__(self, value: int) -> None:
        self.value = value


def _model_and_optimizer() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(2, 3)).sum().backward()
    optimizer.step()  # so that the optimizer state holds momentum buffers
    return model, optimizer


def _first_resume(
    tmp_path: Path, payload: Callable[[int], Any], **load_kwargs: Any
) -> dict[str, Any]:
    """Run until a configuration is resumed; its trial calls ``load(**load_kwargs)``.

    Paused trials save ``payload(epoch)``. Returns ``{"loaded": obj}`` or ``{"error": err}``.
    """
    tmp_path.mkdir(parents=True, exist_ok=True)
    study = make_study(4, tmp_path=tmp_path)
    result: dict[str, Any] = {}

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        lr = trial.suggest_float("lr", 1e-2, 1.0, log=True)
        resume = TrialResume(trial)
        if resume.is_resumed and not result:
            try:
                result["loaded"] = resume.load(**load_kwargs)
            except CheckpointError as err:
                result["error"] = err
            trial.study.stop()
        value = 0.0
        for epoch in resume.steps():
            value = curve_value(x, lr, epoch)
            trial.report(value, epoch)
            if trial.should_prune():
                resume.save(payload(epoch))
                raise optuna.TrialPruned()
        return value

    study.optimize(objective, n_trials=60)
    assert result, "no configuration was resumed"
    return result


def test_state_dicts_load_with_the_default(tmp_path: Path) -> None:
    model, optimizer = _model_and_optimizer()
    generator = torch.Generator().manual_seed(3)

    def payload(epoch: int) -> dict[str, Any]:
        return {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "epoch": epoch,
            "history": [0.5, 0.25],
        }

    state = _first_resume(tmp_path, payload)["loaded"]
    assert isinstance(state["epoch"], int) and state["history"] == [0.5, 0.25]
    restored, restored_optimizer = _model_and_optimizer()
    restored.load_state_dict(state["model"])
    restored_optimizer.load_state_dict(state["optimizer"])
    for a, b in zip(model.parameters(), restored.parameters(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(
        optimizer.state_dict()["state"][0]["momentum_buffer"],
        restored_optimizer.state_dict()["state"][0]["momentum_buffer"],
    )
    regenerated = torch.Generator()
    regenerated.set_state(state["generator"])
    assert torch.equal(torch.rand(3, generator=regenerated), torch.rand(3, generator=generator))


def test_arbitrary_objects_need_the_explicit_opt_in(tmp_path: Path) -> None:
    def payload(epoch: int) -> dict[str, Any]:
        return {"epoch": epoch, "extra": _Opaque(7)}

    err = _first_resume(tmp_path / "default", payload)["error"]
    message = str(err)
    assert "cannot read the checkpoint of paused trial" in message
    assert "with weights_only=True" in message
    assert "_Opaque" in message  # what was refused
    assert "TrialResume(trial).load(weights_only=False)" in message  # how to opt in
    assert "\x1b[" not in message

    state = _first_resume(tmp_path / "opt-in", payload, weights_only=False)["loaded"]
    assert isinstance(state["extra"], _Opaque) and state["extra"].value == 7


@pytest.mark.parametrize("value", ["yes", 1, None, 0.0])
def test_weights_only_must_be_a_bool(value: Any) -> None:
    study = make_study(4)
    resume = TrialResume(study.ask())
    with pytest.raises(TypeError) as info:
        resume.load(weights_only=value)
    message = str(info.value)
    assert "weights_only" in message and "True or False" in message
    assert repr(value) in message and type(value).__name__ in message
