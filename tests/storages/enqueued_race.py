"""Several DyHPO processes draining a queue of enqueued trials on a plain ``sqlite:///`` URL.

With Optuna's default SQLite storage, two processes can both claim the same WAITING trial
(the claim reads and writes in separate transactions), so an enqueued configuration runs
several times at once and workers die with ``ValueError: Cannot tell a PRUNED trial.``.
DyHPOSampler gives such a storage ``BEGIN IMMEDIATE`` transactions before ``study.optimize``
claims its first trial (``optuna_dyhpo._liveness``).

Run as a script to compare with the fix switched off::

    .venv/bin/python tests/storages/enqueued_race.py [--trials 60] [--workers 5] [--no-fix]
"""

from __future__ import annotations

import argparse
from collections import Counter
import dataclasses
import multiprocessing
from pathlib import Path
import sys
import time
import traceback
from typing import Any

import optuna
from optuna.trial import TrialState


@dataclasses.dataclass
class EnqueuedRaceResult:
    """Which process ran which enqueued trial."""

    runs: Counter[int]  # trial number -> times an objective ran it (all processes)
    enqueued: list[int]
    errors: list[str]
    states: Counter[str]
    seconds: float

    @property
    def duplicates(self) -> int:
        return sum(self.runs[n] - 1 for n in self.enqueued if self.runs[n] > 1)

    @property
    def not_run(self) -> list[int]:
        return [n for n in self.enqueued if self.runs[n] == 0]


def _worker(url: str, study_name: str, out_dir: str, index: int, fix: bool, barrier: Any) -> None:
    out = Path(out_dir)
    try:
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        from optuna.artifacts import FileSystemArtifactStore

        from optuna_dyhpo import DyHPOPruner
        from optuna_dyhpo import DyHPOSampler

        if not fix:
            import optuna_dyhpo.storages._sqlite as sqlite_module

            sqlite_module.serialise_sqlite_transactions = lambda storage: False  # type: ignore[assignment]
        study = optuna.load_study(
            study_name=study_name,
            storage=url,
            sampler=DyHPOSampler(
                1, n_candidates=8, artifact_store=FileSystemArtifactStore(out_dir)
            ),
            pruner=DyHPOPruner(),
        )
        log = open(out / f"ran-{index}.txt", "a")

        def objective(trial: optuna.Trial) -> float:
            x = trial.suggest_float("x", 0.0, 1.0)
            log.write(f"{trial.number}\n")
            log.flush()
            time.sleep(0.01)
            trial.report(x, 1)
            trial.should_prune()
            return x

        def stop_when_drained(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                study.stop()

        barrier.wait(timeout=120)
        study.optimize(objective, callbacks=[stop_when_drained])
        log.close()
    except BaseException:
        (out / f"error-{index}.txt").write_text(traceback.format_exc())


def run_enqueued_race(
    db_path: Path, out_dir: Path, *, n_trials: int, n_workers: int, fix: bool = True
) -> EnqueuedRaceResult:
    """Enqueue ``n_trials`` trials on ``sqlite:///db_path`` and let ``n_workers`` processes
    (started together) drain the queue with DyHPOSampler."""
    url = f"sqlite:///{db_path}"
    out_dir.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(storage=url, study_name="enqueued-race", direction="maximize")
    for i in range(n_trials):
        study.enqueue_trial({"x": (i + 0.5) / n_trials})
    enqueued = [t.number for t in study.get_trials(deepcopy=False)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n_workers)
    procs = [
        ctx.Process(target=_worker, args=(url, study.study_name, str(out_dir), i, fix, barrier))
        for i in range(n_workers)
    ]
    start = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=600)
        if p.is_alive():
            p.kill()
            p.join()
    seconds = time.perf_counter() - start
    runs: Counter[int] = Counter()
    for f in out_dir.glob("ran-*.txt"):
        runs.update(int(line) for line in f.read_text().split())
    errors = [f.read_text()[-1500:] for f in sorted(out_dir.glob("error-*.txt"))]
    errors += [f"worker exit code {p.exitcode}" for p in procs if p.exitcode != 0]
    trials = optuna.load_study(study_name=study.study_name, storage=url).get_trials()
    states = Counter(t.state.name for t in trials)
    return EnqueuedRaceResult(runs, enqueued, errors, states, seconds)


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--workers", type=int, default=5)
    parser.add_argument("--no-fix", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        r = run_enqueued_race(
            Path(tmp) / "race.db",
            Path(tmp) / "out",
            n_trials=args.trials,
            n_workers=args.workers,
            fix=not args.no_fix,
        )
    print(
        f"fix={'off' if args.no_fix else 'on'} trials={args.trials} workers={args.workers}: "
        f"duplicates={r.duplicates} not_run={len(r.not_run)} worker_errors={len(r.errors)} "
        f"states={dict(r.states)} seconds={r.seconds:.1f}"
    )
    for e in r.errors[:3]:
        print(e.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    main()
