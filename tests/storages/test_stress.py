"""DyHPO with several workers on one study: processes killed mid-epoch, threads, journal files.

The invariants (no duplicate resume, no lost paused configuration, contiguous learning curves,
no failure other than kills) are checked from the storage alone by
``benchmarks.stress.check_invariants``. ``python -m benchmarks.stress run`` is the longer
version of the first test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.storages import BaseStorage
import pytest

from benchmarks.stress import StressObjective
from benchmarks.stress import check_invariants
from benchmarks.stress import dispose_storage
from benchmarks.stress import run_stress
from optuna_dyhpo import DyHPOPruner
from optuna_dyhpo import DyHPOSampler
from optuna_dyhpo import StopAfterEpochs
from optuna_dyhpo.storages import create_sqlite_storage

MAX_BUDGET = 8


def _explain(figures: dict[str, Any]) -> str:
    shown = {k: v for k, v in figures.items() if k not in ("worker_warnings",)}
    return f"figures: {shown}"


def _overloaded(url: str, tmp_path: Path, *, enqueue: int) -> None:
    """Workers plus CPU burners on 2 cores (more busy processes than cores), a 1 s heartbeat
    and a 2 s grace period: live trials may be failed as stale by other workers (how many
    depends on the load). Whatever happens, no worker crashes, no trial is run twice, no trial
    stays RUNNING, and the invariants hold. One kill, once 8 epochs are spent, lands on a
    worker that has reported an epoch of its own."""
    figures = run_stress(
        url,
        workers=3,
        total_epochs=16,
        max_budget=MAX_BUDGET,
        epoch_seconds=0.1,
        kill_interval=None,
        kill_every_epochs=8,
        max_kills=1,
        seed=2,
        artifact_dir=tmp_path / "artifacts",
        burners=2,
        heartbeat_interval=1,
        grace_period=2,
        enqueue=enqueue,
    )
    assert figures["worker_errors"] == [], _explain(figures)
    assert figures["duplicate_runs"] == {}, _explain(figures)
    assert figures["finished_by_another_claimant"] == [], _explain(figures)
    assert figures["orphans"] == [], _explain(figures)
    assert figures["epochs"] >= 16
    assert check_invariants(url, figures["study_name"], MAX_BUDGET) == [], _explain(figures)


def test_overloaded_workers_on_a_plain_sqlite_url(tmp_path: Path) -> None:
    # A plain RDBStorage("sqlite:///...") with enqueued trials (the README's URL form).
    _overloaded(f"sqlite-plain:///{tmp_path / 'plain.db'}", tmp_path, enqueue=8)


def test_overloaded_workers_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    _overloaded(postgres_url, tmp_path, enqueue=4)


def test_processes_killed_mid_epoch_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    figures = run_stress(
        postgres_url,
        workers=4,
        total_epochs=50,
        max_budget=MAX_BUDGET,
        epoch_seconds=0.25,
        kill_interval=None,
        kill_every_epochs=15,  # at 15 and 30 of 50 epochs, whatever the machine's load
        max_kills=2,
        seed=0,
        artifact_dir=tmp_path / "artifacts",
    )
    assert figures["worker_errors"] == [], _explain(figures)
    assert figures["kills"] >= 2, _explain(figures)
    # Kills land only on workers that are training (after an epoch of their own), whatever the
    # machine's load: each leaves a crashed trial.
    assert figures["crashed_trials"] >= 1, _explain(figures)
    assert figures["epochs"] >= 50
    violations = check_invariants(postgres_url, figures["study_name"], MAX_BUDGET)
    assert violations == [], _explain(figures)


def _storage(kind: str, tmp_path: Path) -> BaseStorage:
    if kind == "inmemory":
        return optuna.storages.InMemoryStorage()
    return create_sqlite_storage(tmp_path / "threads.db")


@pytest.mark.parametrize("kind", ["inmemory", "sqlite"])
def test_threads_share_one_study(kind: str, tmp_path: Path) -> None:
    storage = _storage(kind, tmp_path)
    try:
        study = optuna.create_study(
            storage=storage,
            direction="maximize",
            sampler=DyHPOSampler(
                MAX_BUDGET,
                seed=0,
                n_candidates=128,
                artifact_store=FileSystemArtifactStore(str(tmp_path)),
            ),
            pruner=DyHPOPruner(),
        )
        study.optimize(
            StressObjective(epoch_seconds=0.005, worker_index=0),
            n_jobs=4,
            callbacks=[StopAfterEpochs(60)],
        )
        assert check_invariants(storage, study.study_name, MAX_BUDGET) == []
    finally:
        dispose_storage(storage)


def test_journal_file_three_processes(tmp_path: Path) -> None:
    url = f"journal:{tmp_path / 'study.journal'}"
    figures = run_stress(
        url,
        workers=3,
        total_epochs=24,
        max_budget=MAX_BUDGET,
        epoch_seconds=0.1,
        kill_interval=None,
        seed=1,
        artifact_dir=tmp_path / "artifacts",
    )
    assert figures["worker_errors"] == [], _explain(figures)
    assert figures["workers_started"] == 3 and figures["kills"] == 0
    assert figures["epochs"] >= 24
    assert check_invariants(url, figures["study_name"], MAX_BUDGET) == [], _explain(figures)
