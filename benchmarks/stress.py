"""Multi-process stress run of DyHPO on one shared study, with workers killed mid-epoch.

Several worker processes optimise the SAME study (``study.optimize`` with
:class:`~optuna_dyhpo.StopAfterEpochs`) while the parent kills one of them with ``SIGKILL``
every ``kill_interval`` seconds and starts a replacement. The objective is a synthetic learning
curve that sleeps ``epoch_seconds`` per epoch and saves / loads REAL checkpoints through
:class:`~optuna_dyhpo.TrialResume`; a resumed trial checks that its checkpoint belongs to its
configuration and ends exactly one step before its ``start_step`` (otherwise it fails, which
the invariant checker reports). After the run, :func:`check_invariants` verifies from the
storage alone that no paused configuration was resumed twice or lost, that every learning
curve is contiguous, and that every failed trial was a kill.

Usage (from the repository root)::

    # a throwaway PostgreSQL cluster is started (and deleted) when --storage is omitted
    python -m benchmarks.stress run --workers 6 --epochs 600 --kill-interval 5
    python -m benchmarks.stress run --storage postgresql+psycopg2://user@host/db \\
        --workers 6 --epochs 600 --kill-interval 5 --out stress.json

    # overload: 4 CPU burners on top of the workers, a 2 s grace period, 20 enqueued trials
    python -m benchmarks.stress run --workers 6 --epochs 300 --kill-interval 10 \\
        --burners 4 --grace-period 2 --enqueue 20 --storage sqlite-plain:///tmp/s.db

Storage URLs: any SQLAlchemy URL (``postgresql+psycopg2://...``, ``mysql+pymysql://...``:
``RDBStorage`` with ``heartbeat_interval=1, grace_period=3``), ``sqlite:///path.db``
(:func:`optuna_dyhpo.storages.create_sqlite_storage` with the same heartbeat),
``sqlite-plain:///path.db`` (a plain ``RDBStorage("sqlite:///path.db")``, as a URL string
gives; DyHPO makes its claims atomic) or ``journal:<path>``
(``JournalStorage(JournalFileBackend(path))``; no heartbeat, so no kills).

Every objective call writes its trial number to ``ran-<worker>.txt`` in the log directory, so
a trial run by two workers at once (a duplicate claim) is caught; workers that another worker
failed as stale while they trained (overload) are counted from their DyHPOWarning.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Iterator
import contextlib
import json
import math
import os
from pathlib import Path
import random
import shutil
import signal
import sys
import tempfile
import time
from typing import Any
import uuid
import warnings

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from benchmarks._stress_invariants import WORKER_ATTR
from benchmarks._stress_invariants import check_invariants
from benchmarks._stress_invariants import recovery_figures
from benchmarks._stress_load import Burners
from benchmarks._stress_load import Workers
from benchmarks._stress_load import install_probe
from benchmarks._stress_load import load_figures
from benchmarks.sampler_overhead import synthetic_value
from optuna_dyhpo import DyHPOPruner
from optuna_dyhpo import DyHPOSampler
from optuna_dyhpo import StopAfterEpochs
from optuna_dyhpo import TrialResume
from optuna_dyhpo import epochs_spent
from optuna_dyhpo._liveness import fail_silent_trials
from optuna_dyhpo._state import SEGMENT_KEY

__all__ = [
    "WORKER_ATTR",
    "StressObjective",
    "check_invariants",
    "dispose_storage",
    "make_storage",
    "recovery_figures",
    "run_stress",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
HEARTBEAT_INTERVAL = 1
GRACE_PERIOD = 3
# Every worker must exit within this many seconds of the budget being spent.
EXIT_LIMIT = 30


# --------------------------------------------------------------------------- storage
def make_storage(
    url: str,
    *,
    heartbeat: bool = True,
    heartbeat_interval: int = HEARTBEAT_INTERVAL,
    grace_period: int = GRACE_PERIOD,
) -> BaseStorage:
    """The storage a worker (or the parent) uses for ``url``.

    Args:
        url: ``sqlite:///...`` (the SQLite factory), ``sqlite-plain:///...`` (a plain
            :class:`~optuna.storages.RDBStorage` on that SQLite URL), ``journal:<path>`` (a
            journal file) or any other SQLAlchemy URL (a plain RDBStorage).
        heartbeat: Enable Optuna's heartbeat on RDB storages; journal files have none.
        heartbeat_interval: Seconds between heartbeats.
        grace_period: Seconds without a heartbeat after which a trial is failed as stale.

    Returns:
        The storage.
    """
    hb: dict[str, Any] = (
        {"heartbeat_interval": heartbeat_interval, "grace_period": grace_period}
        if heartbeat
        else {}
    )
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend
        from optuna.storages.journal import JournalStorage

        return JournalStorage(JournalFileBackend(url[len("journal:") :]))
    with warnings.catch_warnings():  # heartbeat_interval is "experimental" in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if url.startswith("sqlite-plain:"):
            return optuna.storages.RDBStorage("sqlite:" + url[len("sqlite-plain:") :], **hb)
        if url.startswith("sqlite"):
            from optuna_dyhpo.storages import create_sqlite_storage

            return create_sqlite_storage(url, **hb)
        return optuna.storages.RDBStorage(url, **hb)


def dispose_storage(storage: BaseStorage) -> None:
    """Close an RDB storage's connections (a no-op for other storages)."""
    engine = getattr(storage, "engine", None)
    if engine is not None:
        engine.dispose()


def _has_heartbeat(url: str) -> bool:
    return not url.startswith("journal:")


# --------------------------------------------------------------------------- objective
class StressObjective:
    """Synthetic learning curve with real checkpoints, sleeping ``epoch_seconds`` per epoch.

    The checkpoint is ``{"config": config_id, "step": epoch, "params": params}``, saved with
    :meth:`TrialResume.save` before raising :class:`optuna.TrialPruned`. A resumed trial
    raises :class:`RuntimeError` (the trial FAILs with ``dyhpo_status == "failed"``) unless the
    loaded checkpoint names its configuration and parameters and ends at ``start_step - 1``.

    Args:
        epoch_seconds: Seconds slept per epoch (the "training").
        worker_index: Written to each trial as the user attribute ``stress_worker``.
        deadline: Optional ``time.time()`` after which no epoch is reported: the trial saves a
            checkpoint, stops the study and ends pruned (used by ``benchmarks.scaling``).
        run_log: Optional file to which each call appends its trial number.
    """

    def __init__(
        self,
        epoch_seconds: float,
        worker_index: int,
        deadline: float | None = None,
        run_log: Path | None = None,
    ) -> None:
        self.epoch_seconds = epoch_seconds
        self.worker_index = worker_index
        self.deadline = deadline
        self.run_log = run_log
        self.epochs = 0

    def __call__(self, trial: optuna.Trial) -> float:
        if self.run_log is not None:
            with open(self.run_log, "a") as f:
                f.write(f"{trial.number}\n")
        trial.set_user_attr(WORKER_ATTR, self.worker_index)
        params = {f"x{i}": trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(1, 5)}
        resume = TrialResume(trial)
        state = resume.load()
        if resume.is_resumed:
            expected = {"config": resume.config_id, "step": resume.start_step - 1}
            got = None if state is None else {k: state.get(k) for k in expected}
            if got != expected or state.get("params") != params:
                raise RuntimeError(
                    f"Trial {trial.number} resumed configuration {resume.config_id} at step "
                    f"{resume.start_step} from the wrong checkpoint: {state!r}"
                )
        elif resume.start_step != 1:
            raise RuntimeError(f"Fresh trial {trial.number} starts at {resume.start_step}.")
        value = math.nan
        for epoch in resume.steps():
            if self.deadline is not None and time.time() >= self.deadline:
                self._stop(trial, resume, params, epoch - 1)
            time.sleep(self.epoch_seconds)
            if self.deadline is not None and time.time() > self.deadline:
                self._stop(trial, resume, params, epoch - 1)
            value = synthetic_value(params, epoch)
            trial.report(value, epoch)
            self.epochs += 1
            if trial.should_prune():
                resume.save({"config": resume.config_id, "step": epoch, "params": params})
                raise optuna.TrialPruned()
        return value

    @staticmethod
    def _stop(
        trial: optuna.Trial, resume: TrialResume, params: dict[str, float], last: int
    ) -> None:
        trial.study.stop()
        resume.save({"config": resume.config_id, "step": last, "params": params})
        raise optuna.TrialPruned("deadline")


# --------------------------------------------------------------------------- worker
def _worker(args: argparse.Namespace) -> None:
    import faulthandler

    import torch

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # stacks of a straggler

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    from optuna.artifacts import FileSystemArtifactStore

    storage = make_storage(
        args.storage,
        heartbeat=_has_heartbeat(args.storage),
        heartbeat_interval=args.heartbeat_interval,
        grace_period=args.grace_period,
    )
    try:
        sampler = DyHPOSampler(
            args.max_budget,
            seed=args.seed + args.index,
            artifact_store=FileSystemArtifactStore(args.artifact_dir),
        )
        pruner = DyHPOPruner()
        study = optuna.load_study(
            study_name=args.study, storage=storage, sampler=sampler, pruner=pruner
        )
        run_log = None
        if args.log_dir:
            run_log = Path(args.log_dir) / f"ran-{args.index}.txt"
            timing = Path(args.log_dir) / f"timing-{args.index}.txt"
            install_probe(sampler, pruner, storage, timing)
        objective = StressObjective(args.epoch_seconds, args.index, run_log=run_log)
        # Exceptions of the objective fail the trial (and show in the invariants); the worker
        # goes on, as a production worker would.
        study.optimize(
            objective, callbacks=[StopAfterEpochs(args.total_epochs)], catch=(Exception,)
        )
    finally:
        dispose_storage(storage)


# --------------------------------------------------------------------------- parent
def _pick_victim(
    storage: BaseStorage, study_id: int, alive: list[int], rng: random.Random
) -> int | None:
    """A worker to kill while it trains: one whose running trial already reported an epoch of
    its own (so the kill lands mid-epoch, whatever the machine's load), preferably one
    training a continuation; ``None`` if no worker is training yet."""
    running = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
    continuing: list[int] = []
    busy: list[int] = []
    for t in running:
        w = t.user_attrs.get(WORKER_ATTR)
        seg = t.system_attrs.get(SEGMENT_KEY)
        if w not in alive or not isinstance(seg, dict):
            continue
        if not any(step >= int(seg.get("start", 1)) for step in t.intermediate_values):
            continue
        busy.append(w)
        if seg.get("parent") is not None:
            continuing.append(w)
    for pool in (continuing, busy):
        if pool:
            return rng.choice(sorted(set(pool)))
    return None


def _reap_orphans(storage: BaseStorage, study_id: int) -> list[dict[str, Any]]:
    """Fail trials still RUNNING once every worker is gone and the stale and heartbeat-less
    trials were failed; return what they were (expected: none on storages with heartbeats)."""
    out = []
    for t in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        seg = t.system_attrs.get(SEGMENT_KEY)
        out.append({"trial": t.number, "segment": seg, "steps": sorted(t.intermediate_values)})
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    return out


def run_stress(
    storage_url: str,
    *,
    workers: int = 4,
    total_epochs: int = 200,
    kill_interval: float | None = 5.0,
    seed: int = 0,
    artifact_dir: str | os.PathLike[str] | None = None,
    epoch_seconds: float = 0.2,
    max_budget: int = 20,
    study_name: str | None = None,
    first_kill_after: float | None = None,
    max_kills: int | None = None,
    kill_every_epochs: int | None = None,
    drain_timeout: float | None = None,
    log_dir: str | os.PathLike[str] | None = None,
    burners: int = 0,
    heartbeat_interval: int = HEARTBEAT_INTERVAL,
    grace_period: int = GRACE_PERIOD,
    enqueue: int = 0,
) -> dict[str, Any]:
    """Run ``workers`` processes on one study, killing one every ``kill_interval`` seconds.

    The parent creates the study, starts the workers (``python -m benchmarks.stress worker``;
    worker ``i`` seeds its sampler with ``seed + i``; a replacement gets the next index), and
    until the study has spent ``total_epochs`` kills a random worker with ``SIGKILL`` (a worker
    training a continuation when there is one, else one running a trial) and starts a
    replacement. Then it lets the workers finish (they stop through ``StopAfterEpochs``),
    waits for the heartbeat's grace period and calls :func:`optuna.storages.fail_stale_trials`
    and DyHPO's sweep for trials that never recorded a heartbeat (what the next worker's
    decision would do); trials still RUNNING after that are failed as well and reported as
    ``orphans``.

    Args:
        storage_url: Where the study lives (see :func:`make_storage`).
        workers: Worker processes running at any time.
        total_epochs: The study's budget in epochs (``StopAfterEpochs``).
        kill_interval: Seconds between kills; ``None`` or 0 for no kills.
        seed: Base seed of the workers' samplers.
        artifact_dir: Shared checkpoint directory (``FileSystemArtifactStore``); a temporary
            directory (deleted afterwards) when ``None``.
        epoch_seconds: Seconds each epoch sleeps.
        max_budget: The sampler's ``max_budget`` (epochs per configuration).
        study_name: Name of the study to create; a unique one when ``None``.
        first_kill_after: Seconds before the first kill (default ``kill_interval``).
        kill_every_epochs: Instead of a clock, kill once every this many epochs spent (the
            k-th kill once ``k * kill_every_epochs`` epochs are spent): the kills then happen
            at the same points of the run whatever the machine's load.
        max_kills: Stop killing after this many kills (``None``: no limit).
        drain_timeout: Seconds to wait for the workers to stop by themselves once the budget
            is spent (default ``max_budget * epoch_seconds + 120``); stragglers are killed and
            reported as ``stragglers``.
        log_dir: Where the workers' logs go; a temporary directory (deleted) when ``None``.
        burners: CPU-burning processes kept running until the workers are done (overload:
            more busy processes than cores).
        heartbeat_interval: The workers' heartbeat interval (seconds).
        grace_period: Seconds without a heartbeat after which a trial is failed as stale.
        enqueue: Trials enqueued (random parameters) before the workers start.

    Returns:
        Figures of the run: ``kills``, ``workers_started``, ``wall_seconds``, ``epochs``,
        ``trials``, ``decisions`` (trial starts + epochs), trial ``states``, the crash and
        recovery figures of :func:`recovery_figures`, ``orphans``, ``stragglers``,
        ``worker_errors``, ``study_name`` and the figures of
        :func:`benchmarks._stress_load.load_figures` (``duplicate_runs``,
        ``stale_live_trials``, timings).
    """
    if (kill_interval or kill_every_epochs) and not _has_heartbeat(storage_url):
        raise ValueError("Kills need a storage with a heartbeat (RDB); journal files have none.")
    study_name = study_name or f"stress-{uuid.uuid4().hex[:8]}"
    tmp_root = Path(tempfile.mkdtemp(prefix="dyhpo-stress-"))
    art = Path(artifact_dir) if artifact_dir is not None else tmp_root / "artifacts"
    logs = Path(log_dir) if log_dir is not None else tmp_root / "logs"
    art.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    storage = make_storage(
        storage_url,
        heartbeat=_has_heartbeat(storage_url),
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
    )
    pool: Workers | None = None
    burn: Burners | None = None
    try:
        study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize")
        for _ in range(enqueue):
            study.enqueue_trial({f"x{i}": rng.random() for i in range(1, 5)})
        base_cmd = [
            sys.executable,
            "-m",
            "benchmarks.stress",
            "worker",
            "--storage",
            storage_url,
            "--study",
            study_name,
            "--total-epochs",
            str(total_epochs),
            "--max-budget",
            str(max_budget),
            "--seed",
            str(seed),
            "--artifact-dir",
            str(art),
            "--epoch-seconds",
            str(epoch_seconds),
            "--heartbeat-interval",
            str(heartbeat_interval),
            "--grace-period",
            str(grace_period),
            "--log-dir",
            str(logs),
        ]
        burn = Burners(burners)
        pool = Workers(base_cmd, logs)
        t0 = time.perf_counter()
        for _ in range(workers):
            pool.start()
        kills: list[dict[str, Any]] = []
        next_kill = t0 + (first_kill_after if first_kill_after is not None else kill_interval or 0)
        while True:
            spent = epochs_spent(study)
            alive = pool.alive()
            if spent >= total_epochs or not alive:
                break
            now = time.perf_counter()
            may_kill = max_kills is None or len(kills) < max_kills
            due = (
                spent >= (len(kills) + 1) * kill_every_epochs
                if kill_every_epochs
                else bool(kill_interval) and now >= next_kill
            )
            if may_kill and due:
                victim = _pick_victim(storage, study._study_id, alive, rng)
                if victim is not None:  # else: nobody trains yet, try again at the next poll
                    pool.kill(victim)
                    kills.append({"worker": victim, "t": round(now - t0, 2), "epochs": spent})
                    pool.start()
                    next_kill = now + (kill_interval or 0)
            time.sleep(0.2)
        budget_seconds = time.perf_counter() - t0
        limit = drain_timeout if drain_timeout is not None else max_budget * epoch_seconds + 120
        deadline = time.perf_counter() + limit
        while pool.alive() and time.perf_counter() < deadline:
            time.sleep(0.2)
        exit_seconds = time.perf_counter() - t0 - budget_seconds
        stragglers = pool.alive()
        straggler_logs = pool.dump_stacks(stragglers)
        pool.stop_all()
        burn.stop()
        wall = time.perf_counter() - t0
        orphans: list[dict[str, Any]] = []
        if _has_heartbeat(storage_url):
            # What the next worker would do: fail stale trials (Optuna) and trials whose
            # worker died before their first heartbeat (DyHPO's decision does this).
            time.sleep(grace_period + heartbeat_interval)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            fail_silent_trials(study)
            orphans = _reap_orphans(storage, study._study_id)
        trials = storage.get_all_trials(study._study_id, deepcopy=False)
        epochs = epochs_spent(study)
        figures: dict[str, Any] = {
            "study_name": study_name,
            "storage": storage_url.split("://")[0].split(":")[0],
            "workers": workers,
            "workers_started": len(pool.procs),
            "kills": len(kills),
            "kill_log": kills,
            "wall_seconds": round(wall, 2),
            "seconds_to_budget": round(budget_seconds, 2),
            # From the budget being spent to the last worker's exit (or the drain timeout).
            "seconds_to_exit": round(exit_seconds, 2),
            "epochs": epochs,
            "trials": len(trials),
            "decisions": len(trials) + epochs,
            "states": dict(Counter(t.state.name for t in trials)),
            **recovery_figures(trials),
            "orphans": orphans,
            "stragglers": stragglers,
            "straggler_logs": straggler_logs,
            "worker_errors": pool.errors(),
            "worker_warnings": pool.warnings()[:50],
            "burners": burners,
            "heartbeat_interval": heartbeat_interval,
            "grace_period": grace_period,
            "enqueued": enqueue,
            **load_figures(logs),
        }
        return figures
    finally:
        if pool is not None:
            pool.stop_all()
        if burn is not None:
            burn.stop()
        dispose_storage(storage)
        shutil.rmtree(tmp_root, ignore_errors=True)


# --------------------------------------------------------------------------- CLI
@contextlib.contextmanager
def storage_or_throwaway(url: str | None) -> Iterator[str]:
    """``url``, or the URL of a throwaway PostgreSQL cluster when ``url`` is ``None``."""
    if url:
        yield url
        return
    from benchmarks._postgres import throwaway_postgres

    with throwaway_postgres("dyhpo_stress") as pg_url:
        yield pg_url


def _run_cli(args: argparse.Namespace) -> int:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    with storage_or_throwaway(args.storage) as url:
        figures = run_stress(
            url,
            workers=args.workers,
            total_epochs=args.epochs,
            kill_interval=args.kill_interval or None,
            seed=args.seed,
            artifact_dir=args.artifact_dir,
            epoch_seconds=args.epoch_seconds,
            max_budget=args.max_budget,
            burners=args.burners,
            heartbeat_interval=args.heartbeat_interval,
            grace_period=args.grace_period,
            enqueue=args.enqueue,
            drain_timeout=args.drain_timeout,
        )
        violations = check_invariants(
            url, figures["study_name"], args.max_budget, require_recovery=False
        )
    if figures["duplicate_runs"]:
        violations.append(f"(g) trials run by two workers at once: {figures['duplicate_runs']}")
    if figures["orphans"]:
        violations.append(f"(h) trials RUNNING after the run: {figures['orphans']}")
    if figures["seconds_to_exit"] > EXIT_LIMIT:
        violations.append(
            f"(i) workers still running {figures['seconds_to_exit']:.0f} s after the budget was "
            f"spent (limit {EXIT_LIMIT} s)"
        )
    figures["violations"] = violations
    hidden = ("kill_log", "worker_warnings", "straggler_logs")
    shown = {k: v for k, v in figures.items() if k not in hidden}
    print(json.dumps(shown, indent=2, default=str))
    for line in figures["worker_warnings"]:
        print(line)
    for i, log in figures["straggler_logs"].items():
        print(f"--- worker {i} did not stop within the drain timeout; end of its log:\n{log}")
    if figures["kills"] and not figures["recovered_continuations"]:
        print("(f) no crashed continuation was resumed afterwards (run longer or kill more)")
    print("invariants:", "OK" if not violations else f"{len(violations)} violations")
    for v in violations:
        print("  ", v)
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2, default=str))
    return 1 if violations or figures["worker_errors"] or figures["stragglers"] else 0


def main(argv: list[str] | None = None) -> int:
    """Command line: ``run`` (the stress run) or ``worker`` (one worker, started by ``run``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stress", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the stress test and check the invariants")
    run.add_argument("--storage", default=None, help="storage URL (default: throwaway Postgres)")
    run.add_argument("--workers", type=int, default=6)
    run.add_argument("--epochs", type=int, default=600, help="the study's budget in epochs")
    run.add_argument("--kill-interval", type=float, default=5.0, help="seconds; 0: no kills")
    run.add_argument("--epoch-seconds", type=float, default=0.2)
    run.add_argument("--max-budget", type=int, default=20)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--artifact-dir", default=None, help="default: a temporary directory")
    run.add_argument("--out", default=None, help="write the figures as JSON")
    run.add_argument("--burners", type=int, default=0, help="CPU-burning processes (overload)")
    run.add_argument("--heartbeat-interval", type=int, default=HEARTBEAT_INTERVAL)
    run.add_argument("--grace-period", type=int, default=GRACE_PERIOD)
    run.add_argument("--enqueue", type=int, default=0, help="trials enqueued before the start")
    run.add_argument(
        "--drain-timeout", type=float, default=None, help="seconds (default: see run_stress)"
    )
    worker = sub.add_parser("worker", help="one worker process (started by `run`)")
    worker.add_argument("--storage", required=True)
    worker.add_argument("--study", required=True)
    worker.add_argument("--index", type=int, required=True)
    worker.add_argument("--total-epochs", type=int, required=True)
    worker.add_argument("--max-budget", type=int, required=True)
    worker.add_argument("--seed", type=int, default=0)
    worker.add_argument("--artifact-dir", required=True)
    worker.add_argument("--epoch-seconds", type=float, default=0.2)
    worker.add_argument("--heartbeat-interval", type=int, default=HEARTBEAT_INTERVAL)
    worker.add_argument("--grace-period", type=int, default=GRACE_PERIOD)
    worker.add_argument("--log-dir", default=None)
    args = parser.parse_args(argv)
    if args.command == "worker":
        _worker(args)
        return 0
    return _run_cli(args)


if __name__ == "__main__":
    sys.exit(main())
