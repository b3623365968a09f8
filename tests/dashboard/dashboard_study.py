"""DyHPO studies in SQLite with checkpoint artifacts, for the dashboard test.

* :func:`build_quickstart_study` (the one the test uses): runs ``examples/quickstart.py
  --smoke`` in a subprocess, a real DyHPO race with real ``torch.save`` checkpoints; its
  ``DashboardUpdater`` saves the three DyHPO plots and the study note into the study.
* :func:`build_study`: a hand-made four-trial study going through Optuna's ask/report/tell
  flow the way the DyHPO objective does (paused trials upload a checkpoint artifact while still
  RUNNING and then end PRUNED; a continuation is a NEW trial with the same params that carries
  its parent's values). Fast and without torch; kept for debugging the dashboard test.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from pathlib import Path
import subprocess
import sys

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.artifacts import upload_artifact
from optuna.trial import TrialState

from optuna_dyhpo import DashboardUpdater


@dataclass(frozen=True)
class DashboardStudy:
    """What the dashboard test needs to know about the study it shows.

    Attributes:
        storage_url: SQLAlchemy URL of the study's storage.
        artifact_dir: Folder of the ``FileSystemArtifactStore``.
        study_name: Name of the study.
        n_trials: Number of trials in it.
        continuation_trial: Number of a trial that resumes a paused configuration.
        continued_trial: Number of the trial it continues (its parent).
        paused_trial: Number of a paused trial that has a checkpoint artifact.
        checkpoint_name: File name of that artifact.
        checkpoint_prefix: The first bytes of that file (``PK\\x03\\x04`` for ``torch.save``).
    """

    storage_url: str
    artifact_dir: Path
    study_name: str
    n_trials: int
    continuation_trial: int
    continued_trial: int
    paused_trial: int
    checkpoint_name: str
    checkpoint_prefix: bytes = b"DyHPO test checkpoint"


_CURVES = {0: [0.92, 0.71, 0.55, 0.48], 1: [0.85, 0.66], 2: [1.10, 0.97]}
_PARAMS = {0: {"lr": 0.03, "width": 64}, 1: {"lr": 0.2, "width": 32}, 2: {"lr": 0.9, "width": 16}}


def _run_segment(
    study: optuna.Study,
    store: FileSystemArtifactStore,
    workdir: Path,
    config: int,
    *,
    parent: int | None,
    start: int,
    end: int,
    max_budget: int,
) -> int:
    cfg_params = _PARAMS[config]
    study.enqueue_trial(cfg_params)
    trial = study.ask()
    lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)
    width = trial.suggest_int("width", 16, 64)
    assert (lr, width) == (cfg_params["lr"], cfg_params["width"])
    if parent is None:
        assert trial.number == config, "a configuration's id is its first trial's number"
    config_id = config
    storage = study._storage
    storage.set_trial_system_attr(
        trial._trial_id, "dyhpo:segment", {"config": config_id, "start": start, "parent": parent}
    )
    trial.set_user_attr("dyhpo_config", config_id)
    trial.set_user_attr("dyhpo_continues_trial", parent)
    trial.set_user_attr("dyhpo_start_epoch", start)
    curve = _CURVES[config_id]
    for step in range(1, end + 1):  # steps < start are the parent's values, copied
        trial.report(curve[step - 1], step)
    if end == max_budget:
        trial.set_user_attr("dyhpo_status", "completed")
        study.tell(trial, curve[end - 1])
        return trial.number
    ckpt = workdir / f"checkpoint-trial{trial.number}.pt"
    ckpt.write_bytes(b"DyHPO test checkpoint: config %d, epoch %d\n" % (config_id, end))
    artifact_id = upload_artifact(
        artifact_store=store,
        file_path=str(ckpt),
        study_or_trial=trial,
        mimetype="application/octet-stream",
    )
    storage.set_trial_system_attr(trial._trial_id, "dyhpo:paused_at", end)
    storage.set_trial_system_attr(
        trial._trial_id, "dyhpo:checkpoint", {"artifact_id": artifact_id, "step": end}
    )
    trial.set_user_attr("dyhpo_checkpoint", artifact_id)
    trial.set_user_attr("dyhpo_status", "paused")
    study.tell(trial, state=TrialState.PRUNED)
    return trial.number


REPO = Path(__file__).resolve().parents[2]


def checkout_env() -> dict[str, str]:
    """The environment with this checkout first on ``PYTHONPATH``, so that a script run in a
    subprocess imports the ``optuna_dyhpo`` under test (not another installed copy)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def build_quickstart_study(workdir: Path) -> DashboardStudy:
    """Run ``examples/quickstart.py --smoke --output workdir`` and describe its study.

    The continuation is the first trial that resumes a paused configuration; the paused trial is
    the first trial paused with a checkpoint artifact that no trial resumed. The three DyHPO
    plots and the study note are in the study already: the quickstart runs with
    :class:`optuna_dyhpo.DashboardUpdater`.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(
        [sys.executable, str(REPO / "examples" / "quickstart.py"), "--smoke", "--output",
         str(workdir)],
        capture_output=True,
        text=True,
        timeout=900,  # seconds of a few on an idle machine; minutes on a loaded one
        cwd=REPO,
        env=checkout_env(),
    )  # fmt: skip
    assert run.returncode == 0, f"quickstart failed:\n{run.stdout}\n{run.stderr}"
    url = f"sqlite:///{workdir / 'dyhpo.db'}"
    study = optuna.load_study(study_name="dyhpo-quickstart", storage=url)
    trials = study.get_trials(deepcopy=False)
    continuation = next(
        (t for t in trials if t.user_attrs.get("dyhpo_continues_trial") is not None), None
    )
    assert continuation is not None, f"the smoke run resumed no configuration:\n{run.stdout}"
    # A paused trial that nobody resumed: its checkpoint is its configuration's live one (DyHPO
    # removes a checkpoint once a newer one of the configuration replaced it).
    continued = {t.user_attrs.get("dyhpo_continues_trial") for t in trials}
    paused = next(
        t
        for t in trials
        if t.user_attrs.get("dyhpo_status") == "paused"
        and "dyhpo_checkpoint" in t.user_attrs
        and t.number not in continued
    )
    metas = {
        m.artifact_id: m
        for m in optuna.artifacts.get_all_artifact_meta(paused, storage=study._storage)
    }
    meta = metas[paused.user_attrs["dyhpo_checkpoint"]]
    # No plot is saved here: the quickstart's DashboardUpdater keeps them in the study.
    return DashboardStudy(
        storage_url=url,
        artifact_dir=workdir / "artifacts",
        study_name=study.study_name,
        n_trials=len(trials),
        continuation_trial=continuation.number,
        continued_trial=int(continuation.user_attrs["dyhpo_continues_trial"]),
        paused_trial=paused.number,
        checkpoint_name=meta.filename,
        checkpoint_prefix=b"PK\x03\x04",  # torch.save writes a zip archive
    )


def build_study(workdir: Path) -> DashboardStudy:
    """Create the study in ``workdir/dyhpo.db`` with artifacts in ``workdir/artifacts``.

    Trials: 0 (config 0, epochs 1-2, paused), 1 (config 1, epochs 1-2, paused), 2 (config 2,
    epochs 1-2, paused), 3 (config 0 resumed from trial 0, epochs 3-4, completed).
    :class:`optuna_dyhpo.DashboardUpdater` saves the plots and the note into the study.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    artifact_dir = workdir / "artifacts"
    artifact_dir.mkdir(exist_ok=True)
    store = FileSystemArtifactStore(str(artifact_dir))
    url = f"sqlite:///{workdir / 'dyhpo.db'}"
    study = optuna.create_study(study_name="dyhpo-dashboard-test", storage=url)
    for config in range(3):
        _run_segment(
            study, store, workdir, config=config, parent=None, start=1, end=2, max_budget=4
        )
    _run_segment(study, store, workdir, config=0, parent=0, start=3, end=4, max_budget=4)
    DashboardUpdater().update(study)  # the DyHPO plots, the note and dyhpo:best
    return DashboardStudy(
        storage_url=url,
        artifact_dir=artifact_dir,
        study_name=study.study_name,
        n_trials=4,
        continuation_trial=3,
        continued_trial=0,
        paused_trial=1,
        checkpoint_name="checkpoint-trial1.pt",
    )
