"""Synthetic learning curves and objectives shared by the tests."""

from __future__ import annotations

from collections.abc import Callable
import math
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import FileSystemArtifactStore

from optuna_dyhpo import DyHPOPruner
from optuna_dyhpo import DyHPOSampler
from optuna_dyhpo import TrialResume

optuna.logging.set_verbosity(optuna.logging.WARNING)


def curve_value(x: float, lr: float, epoch: int) -> float:
    """A synthetic learning curve: rises towards a ceiling that peaks at x = 0.7."""
    return (1.0 - (x - 0.7) ** 2) * (1.0 - math.exp(-3.0 * lr * epoch))


def make_objective(
    *, checkpoint: bool = False, log: list[tuple[int, int, int]] | None = None
) -> Callable[[optuna.Trial], float]:
    """Objective over the synthetic curves. With ``checkpoint``, it saves and loads its state
    like a user would; ``log`` collects (trial number, config id, step) per trained step."""

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        lr = trial.suggest_float("lr", 1e-2, 1.0, log=True)
        resume = TrialResume(trial)
        trained = 0
        if checkpoint:
            state = resume.load()
            if resume.is_resumed:
                assert state is not None
                assert state["config"] == resume.config_id
                assert state["epoch"] == resume.start_step - 1
                trained = state["trained"]
        value = 0.0
        for epoch in resume.steps():
            trained += 1
            value = curve_value(x, lr, epoch)
            if log is not None:
                log.append((trial.number, resume.config_id, epoch))
            trial.report(value, epoch)
            if trial.should_prune():
                if checkpoint:
                    resume.save({"config": resume.config_id, "epoch": epoch, "trained": trained})
                raise optuna.TrialPruned()
        return value

    return objective


def make_study(
    max_budget: int = 8,
    *,
    tmp_path: Path | None = None,
    storage: str | None = None,
    direction: str = "maximize",
    seed: int = 0,
    **sampler_kwargs: Any,
) -> optuna.Study:
    """A DyHPO study over the synthetic curves (checkpoints under ``tmp_path`` if given)."""
    if tmp_path is not None:
        (tmp_path / "artifacts").mkdir(exist_ok=True)
        sampler_kwargs.setdefault(
            "artifact_store", FileSystemArtifactStore(str(tmp_path / "artifacts"))
        )
    sampler_kwargs.setdefault("n_candidates", 64)
    return optuna.create_study(
        direction=direction,
        storage=storage,
        sampler=DyHPOSampler(max_budget, seed=seed, **sampler_kwargs),
        pruner=DyHPOPruner(),
    )
