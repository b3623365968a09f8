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

Storage URLs: any SQLAlchemy URL (``postgresql+psycopg2://...``, ``mysql+pymysql://...``:
``RDBStorage`` with ``heartbeat_interval=1, grace_period=3``), ``sqlite:///path.db``
(:func:`optuna_dyhpo.storages.create_sqlite_storage` with the same heartbeat) or
``journal:<path>`` (``JournalStorage(JournalFileBackend(path))``; no heartbeat, so no kills).
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
import subprocess
import sys
import tempfile
import time
from typing import Any
import uuid
import warnings

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from benchmarks.sampler_overhead import synthetic_value
from optuna_dyhpo import DyHPOPruner
from optuna_dyhpo import DyHPOSampler
from optuna_dyhpo import StopAfterEpochs
from optuna_dyhpo import TrialResume
from optuna_dyhpo import epochs_spent
from optuna_dyhpo._state import CHECKPOINT_KEY
from optuna_dyhpo._state import PAUSED_KEY
from optuna_dyhpo._state import SEGMENT_KEY
from optuna_dyhpo._state import USER_STATUS
from optuna_dyhpo._state import build_configurations
from optuna_dyhpo._state import parse_trial

REPO_ROOT = Path(__file__).resolve().parent.parent
HEARTBEAT_INTERVAL = 1
GRACE_PERIOD = 3
WORKER_ATTR = "stress_worker"
"""User attribute naming the worker (its index) that ran a trial."""

_FINAL_STATUSES = ("paused", "completed", "stopped", "diverged", "crashed")


# --------------------------------------------------------------------------- storage
def make_storage(url: str, *, heartbeat: bool = True) -> BaseStorage:
    """The storage a worker (or the parent) uses for ``url``.

    Args:
        url: ``sqlite:///...`` (the SQLite factory), ``journal:<path>`` (a journal file) or any
            other SQLAlchemy URL (a plain :class:`~optuna.storages.RDBStorage`).
        heartbeat: Enable Optuna's heartbeat (``heartbeat_interval=1, grace_period=3``) on RDB
            storages; journal files have none.

    Returns:
        The storage.
    """
    hb: dict[str, Any] = (
        {"heartbeat_interval": HEARTBEAT_INTERVAL, "grace_period": GRACE_PERIOD}
        if heartbeat
        else {}
    )
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend
        from optuna.storages.journal import JournalStorage

        return JournalStorage(JournalFileBackend(url[len("journal:") :]))
    with warnings.catch_warnings():  # heartbeat_interval is "experimental" in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
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
    """

    def __init__(
        self, epoch_seconds: float, worker_index: int, deadline: float | None = None
    ) -> None:
        self.epoch_seconds = epoch_seconds
        self.worker_index = worker_index
        self.deadline = deadline
        self.epochs = 0

    def __call__(self, trial: optuna.Trial) -> float:
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
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    from optuna.artifacts import FileSystemArtifactStore

    storage = make_storage(args.storage, heartbeat=_has_heartbeat(args.storage))
    try:
        sampler = DyHPOSampler(
            args.max_budget,
            seed=args.seed + args.index,
            artifact_store=FileSystemArtifactStore(args.artifact_dir),
        )
        study = optuna.load_study(
            study_name=args.study, storage=storage, sampler=sampler, pruner=DyHPOPruner()
        )
        objective = StressObjective(args.epoch_seconds, args.index)
        # Exceptions of the objective fail the trial (and show in the invariants); the worker
        # goes on, as a production worker would.
        study.optimize(
            objective, callbacks=[StopAfterEpochs(args.total_epochs)], catch=(Exception,)
        )
    finally:
        dispose_storage(storage)


# --------------------------------------------------------------------------- parent
class _Workers:
    """The worker processes of one run, by index."""

    def __init__(self, base_cmd: list[str], log_dir: Path) -> None:
        self.base_cmd = base_cmd
        self.log_dir = log_dir
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.killed: set[int] = set()
        self._next = 0
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])]
        )
        env.setdefault("OMP_NUM_THREADS", "1")
        self.env = env

    def start(self) -> int:
        index = self._next
        self._next += 1
        log = open(self.log_dir / f"worker-{index}.log", "wb")
        try:
            self.procs[index] = subprocess.Popen(
                [*self.base_cmd, "--index", str(index)],
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        return index

    def alive(self) -> list[int]:
        return [i for i, p in self.procs.items() if p.poll() is None]

    def kill(self, index: int) -> None:
        proc = self.procs[index]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.killed.add(index)

    def errors(self) -> list[dict[str, Any]]:
        """Workers that exited non-zero without being killed, with the tail of their log."""
        out = []
        for i, p in self.procs.items():
            if i in self.killed or p.returncode in (None, 0):
                continue
            tail = (self.log_dir / f"worker-{i}.log").read_text(errors="replace")[-3000:]
            out.append({"worker": i, "returncode": p.returncode, "log_tail": tail})
        return out

    def warnings(self) -> list[str]:
        """Lines of the workers' logs that mention a warning or an error."""
        lines: list[str] = []
        for i in self.procs:
            path = self.log_dir / f"worker-{i}.log"
            for line in path.read_text(errors="replace").splitlines():
                if "Warning" in line or "Error" in line or "Broke the stale" in line:
                    lines.append(f"worker {i}: {line[:300]}")
        return lines

    def stop_all(self) -> None:
        """SIGKILL every worker still running (cleanup)."""
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
        for p in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)


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
    """Fail trials still RUNNING once every worker is gone; return what they were.

    Optuna's heartbeat starts only after ``study.ask()`` (which runs the sampler's
    ``before_trial``), so a worker killed inside ``ask()`` leaves a RUNNING trial without a
    heartbeat that ``fail_stale_trials`` never fails. An operator would fail it by hand.
    """
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
) -> dict[str, Any]:
    """Run ``workers`` processes on one study, killing one every ``kill_interval`` seconds.

    The parent creates the study, starts the workers (``python -m benchmarks.stress worker``;
    worker ``i`` seeds its sampler with ``seed + i``; a replacement gets the next index), and
    until the study has spent ``total_epochs`` kills a random worker with ``SIGKILL`` (a worker
    training a continuation when there is one, else one running a trial) and starts a
    replacement. Then it lets the workers finish (they stop through ``StopAfterEpochs``),
    waits for the heartbeat's grace period and calls :func:`optuna.storages.fail_stale_trials`;
    trials still RUNNING after that (killed inside ``study.ask()``, before Optuna's heartbeat
    started) are failed as well and reported as ``orphans``.

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

    Returns:
        Figures of the run: ``kills``, ``workers_started``, ``wall_seconds``, ``epochs``,
        ``trials``, ``decisions`` (trial starts + epochs), trial ``states``, the crash and
        recovery figures of :func:`recovery_figures`, ``orphans``, ``stragglers``,
        ``worker_errors`` and ``study_name``.
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
    storage = make_storage(storage_url, heartbeat=_has_heartbeat(storage_url))
    pool: _Workers | None = None
    try:
        study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize")
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
        ]
        pool = _Workers(base_cmd, logs)
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
        stragglers = pool.alive()
        pool.stop_all()
        wall = time.perf_counter() - t0
        orphans: list[dict[str, Any]] = []
        if _has_heartbeat(storage_url):
            time.sleep(GRACE_PERIOD + HEARTBEAT_INTERVAL)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
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
            "epochs": epochs,
            "trials": len(trials),
            "decisions": len(trials) + epochs,
            "states": dict(Counter(t.state.name for t in trials)),
            **recovery_figures(trials),
            "orphans": orphans,
            "stragglers": stragglers,
            "worker_errors": pool.errors(),
            "worker_warnings": pool.warnings()[:50],
        }
        return figures
    finally:
        if pool is not None:
            pool.stop_all()
        dispose_storage(storage)
        shutil.rmtree(tmp_root, ignore_errors=True)


# --------------------------------------------------------------------------- invariants
def _segment(t: FrozenTrial) -> dict[str, Any] | None:
    seg = t.system_attrs.get(SEGMENT_KEY)
    return seg if isinstance(seg, dict) else None


def _crashed(t: FrozenTrial) -> bool:
    return t.state == TrialState.FAIL and USER_STATUS not in t.user_attrs


def recovery_figures(trials: list[FrozenTrial]) -> dict[str, int]:
    """How kills showed in the study.

    Returns:
        ``crashed_trials`` (FAIL without ``dyhpo_status``: the worker died), of which
        ``crashed_continuations`` (a resumed segment) and ``crashed_roots``;
        ``recovered_continuations``: crashed continuations whose parent was resumed again
        afterwards by a trial of another worker; ``resumes``: live continuations.
    """
    by_number = {t.number: t for t in trials}
    crashed = [t for t in trials if _crashed(t) and _segment(t) is not None]
    cont = [t for t in crashed if _segment(t)["parent"] is not None]  # type: ignore[index]
    recovered = 0
    for c in cont:
        parent = _segment(c)["parent"]  # type: ignore[index]
        for t in by_number.values():
            seg = _segment(t)
            if (
                seg is not None
                and seg.get("parent") == parent
                and t.number > c.number
                and not _crashed(t)
                and t.user_attrs.get(WORKER_ATTR) != c.user_attrs.get(WORKER_ATTR, -1)
            ):
                recovered += 1
                break
    resumes = sum(
        1
        for t in trials
        if (s := _segment(t)) is not None and s.get("parent") is not None and not _crashed(t)
    )
    return {
        "crashed_trials": len(crashed),
        "crashed_continuations": len(cont),
        "crashed_roots": len(crashed) - len(cont),
        "recovered_continuations": recovered,
        "resumes": resumes,
    }


def check_invariants(
    storage: BaseStorage | str,
    study_name: str,
    max_budget: int,
    *,
    require_recovery: bool = False,
) -> list[str]:
    """Check a finished DyHPO study from its storage alone; return the violations.

    (a) every trial has at most one non-crashed continuation; (b) every configuration ended
    paused, completed, stopped, diverged or crashed (no trial RUNNING or WAITING), every paused
    trial is either continued or its configuration's resumable end (with a checkpoint at its
    last step), and every crashed continuation's configuration is paused again or was resumed
    afterwards; (c) each configuration's curve is contiguous: segments chain through their
    parents, a continuation starts right after its parent's last step and carries the
    parent's values unchanged, the latest live segment holds exactly steps ``1..k``, and all
    segments share the root's parameters; (d) no step beyond ``max_budget``; (e) every FAIL
    is a crash (no ``dyhpo_status``), and finished non-FAIL segments carry a status; (f) with
    ``require_recovery``, at least one crashed continuation was resumed afterwards by another
    worker.

    Args:
        storage: The storage (or a URL for :func:`make_storage`).
        study_name: The study.
        max_budget: The sampler's ``max_budget``.
        require_recovery: Also require (f).

    Returns:
        Human-readable violations; empty if every invariant holds.
    """
    own_storage = isinstance(storage, str)
    st = make_storage(storage, heartbeat=False) if isinstance(storage, str) else storage
    try:
        study_id = st.get_study_id_from_name(study_name)
        trials = st.get_all_trials(study_id, deepcopy=False)
    finally:
        if own_storage:
            dispose_storage(st)
    return _check(trials, max_budget, require_recovery)


def _check(trials: list[FrozenTrial], max_budget: int, require_recovery: bool) -> list[str]:
    errors: list[str] = []
    by_number = {t.number: t for t in trials}
    segs = {t.number: s for t in trials if (s := _segment(t)) is not None}

    # States, (e) failures and statuses.
    for t in trials:
        if t.state in (TrialState.RUNNING, TrialState.WAITING):
            errors.append(f"(b) trial {t.number} is still {t.state.name}")
        status = t.user_attrs.get(USER_STATUS)
        if t.state == TrialState.FAIL and status is not None:
            errors.append(f"(e) trial {t.number} FAILED with dyhpo_status={status!r} (not a kill)")
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.number in segs:
            if status is None:
                errors.append(f"(e) finished trial {t.number} ({t.state.name}) has no status")
        if t.state.is_finished() and t.number not in segs and t.state != TrialState.FAIL:
            errors.append(f"trial {t.number} ({t.state.name}) was not started by DyHPO")

    # (a) at most one live continuation per trial.
    live_children: dict[int, list[int]] = {}
    for n, s in segs.items():
        if s.get("parent") is not None and not _crashed(by_number[n]):
            live_children.setdefault(int(s["parent"]), []).append(n)
    for parent, kids in sorted(live_children.items()):
        if len(kids) > 1:
            errors.append(f"(a) trial {parent} was resumed {len(kids)} times: trials {kids}")

    # (d) budget.
    for t in trials:
        if t.intermediate_values and max(t.intermediate_values) > max_budget:
            errors.append(
                f"(d) trial {t.number} reported step {max(t.intermediate_values)} "
                f"> max_budget {max_budget}"
            )

    # (c) per configuration.
    by_config: dict[int, list[int]] = {}
    for n, s in segs.items():
        by_config.setdefault(int(s["config"]), []).append(n)
    for cid, numbers in sorted(by_config.items()):
        root = by_number.get(cid)
        if root is None or cid not in segs or segs[cid].get("parent") is not None:
            errors.append(f"(c) configuration {cid} has no root trial {cid}")
            continue
        if int(segs[cid]["start"]) != 1:
            errors.append(f"(c) root trial {cid} starts at {segs[cid]['start']}")
        for n in numbers:
            params = by_number[n].params
            if params and root.params and params != root.params:
                errors.append(f"(c) trial {n} of configuration {cid} has other params")
        live = sorted((n for n in numbers if not _crashed(by_number[n])), key=lambda n: n)
        for n in live:
            s, t = segs[n], by_number[n]
            if s.get("parent") is None:
                if n != cid:
                    errors.append(f"(c) trial {n} of configuration {cid} has no parent")
                continue
            p = int(s["parent"])
            pt = by_number.get(p)
            if pt is None or p not in segs or int(segs[p]["config"]) != cid:
                errors.append(f"(c) trial {n} continues {p}, not a trial of configuration {cid}")
                continue
            if _crashed(pt) or pt.state != TrialState.PRUNED:
                errors.append(f"(c) trial {n} continues trial {p} in state {pt.state.name}")
            p_steps = sorted(pt.intermediate_values)
            if p_steps != list(range(1, len(p_steps) + 1)):
                errors.append(f"(c) parent trial {p} has steps {p_steps}")
            start = int(s["start"])
            if start != len(p_steps) + 1 or pt.system_attrs.get(PAUSED_KEY) != start - 1:
                errors.append(
                    f"(c) trial {n} starts at {start}; its parent {p} has steps 1..{len(p_steps)}"
                    f" and paused at {pt.system_attrs.get(PAUSED_KEY)}"
                )
            copied = {k: v for k, v in t.intermediate_values.items() if k < start}
            if copied != dict(pt.intermediate_values):
                errors.append(f"(c) trial {n} does not carry parent {p}'s values unchanged")
        if live:
            latest = by_number[max(live, key=lambda n: (int(segs[n]["start"]), n))]
            steps = sorted(latest.intermediate_values)
            if steps != list(range(1, len(steps) + 1)):
                errors.append(
                    f"(c) configuration {cid}: latest trial {latest.number} has steps {steps}"
                )

    # (b) configurations and paused trials.
    segments = [seg for seg in (parse_trial(t) for t in trials) if seg is not None]
    configs = build_configurations(
        [seg for seg in segments if seg.state != TrialState.WAITING], max_budget
    )
    for cid, c in sorted(configs.items()):
        if c.status not in _FINAL_STATUSES:
            errors.append(f"(b) configuration {cid} ended {c.status!r}")
        if c.last_step > max_budget:
            errors.append(f"(d) configuration {cid} has {c.last_step} steps")
    for n, s in segs.items():
        t = by_number[n]
        if t.user_attrs.get(USER_STATUS) != "paused" or _crashed(t):
            continue
        ckpt = t.system_attrs.get(CHECKPOINT_KEY)
        last = max(t.intermediate_values, default=0)
        if not isinstance(ckpt, dict) or ckpt.get("step") != last:
            errors.append(f"(b) paused trial {n} has no checkpoint at step {last}: {ckpt!r}")
        c = configs[int(s["config"])]
        if n not in live_children and not (
            c.status == "paused" and c.last_trial_id == t._trial_id
        ):
            errors.append(
                f"(b) paused trial {n} was never resumed, yet configuration {c.config_id} is "
                f"{c.status!r} (last trial id {c.last_trial_id})"
            )
    for n, s in segs.items():
        t = by_number[n]
        if not _crashed(t) or s.get("parent") is None:
            continue
        c = configs[int(s["config"])]
        later = [m for m in c.trial_numbers if m > n and not _crashed(by_number[m])]
        if c.status != "paused" and not later:
            errors.append(
                f"(b) configuration {c.config_id} of crashed trial {n} is {c.status!r} and "
                "was not resumed afterwards"
            )

    if require_recovery and recovery_figures(trials)["recovered_continuations"] == 0:
        errors.append("(f) no crashed continuation was resumed afterwards by another worker")
    return errors


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
        )
        violations = check_invariants(
            url, figures["study_name"], args.max_budget, require_recovery=False
        )
    figures["violations"] = violations
    shown = {k: v for k, v in figures.items() if k not in ("kill_log", "worker_warnings")}
    print(json.dumps(shown, indent=2, default=str))
    for line in figures["worker_warnings"]:
        print(line)
    if figures["kills"] and not figures["recovered_continuations"]:
        print("(f) no crashed continuation was resumed afterwards (run longer or kill more)")
    print("invariants:", "OK" if not violations else f"{len(violations)} violations")
    for v in violations:
        print("  ", v)
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2, default=str))
    return 1 if violations or figures["worker_errors"] else 0


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
    worker = sub.add_parser("worker", help="one worker process (started by `run`)")
    worker.add_argument("--storage", required=True)
    worker.add_argument("--study", required=True)
    worker.add_argument("--index", type=int, required=True)
    worker.add_argument("--total-epochs", type=int, required=True)
    worker.add_argument("--max-budget", type=int, required=True)
    worker.add_argument("--seed", type=int, default=0)
    worker.add_argument("--artifact-dir", required=True)
    worker.add_argument("--epoch-seconds", type=float, default=0.2)
    args = parser.parse_args(argv)
    if args.command == "worker":
        _worker(args)
        return 0
    return _run_cli(args)


if __name__ == "__main__":
    sys.exit(main())
