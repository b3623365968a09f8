"""A multi-process race for WAITING trials, shared by the storage tests.

Run as a script to measure how many duplicate claims a storage lets through::

    .venv/bin/python tests/storages/claim_race.py [--trials 300] [--workers 8] [--repeat 3]

It compares Optuna's default SQLite RDBStorage with
``optuna_dyhpo.storages.create_sqlite_storage`` (and PostgreSQL when ``--postgres-url`` is
given). Not a test: the default storage's duplicates vary from run to run. Measured on a
2-core machine (300 trials, 8 workers, 3 runs each): default SQLite RDBStorage 12, 23 and 6
duplicate claims; create_sqlite_storage 0; PostgreSQL RDBStorage 0. With the test's 200
trials and 6 workers the default SQLite storage let through 7, 8 and 2.
"""

from __future__ import annotations

from collections import Counter
import dataclasses
import multiprocessing
import pickle
import queue
import time
import traceback
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState


@dataclasses.dataclass
class ClaimRaceResult:
    """What the workers of one race won."""

    trial_ids: list[int]
    wins: list[list[int]]  # per worker, the trial ids for which its claim returned True
    seconds: float  # from the barrier (all workers ready) to the last worker done
    final_states: dict[int, TrialState]

    @property
    def total_wins(self) -> int:
        return sum(len(w) for w in self.wins)

    @property
    def duplicates(self) -> int:
        """Claims that returned True for a trial some other claim had already won."""
        counts = Counter(t for w in self.wins for t in w)
        return sum(c - 1 for c in counts.values())

    @property
    def unclaimed(self) -> set[int]:
        won = {t for w in self.wins for t in w}
        return set(self.trial_ids) - won


def _worker(
    pickled_storage: bytes,
    trial_ids: list[int],
    barrier: Any,
    results: Any,
    index: int,
) -> None:
    storage: BaseStorage | None = None
    try:
        # Unpickle as a process-based worker pool does (RDBStorage.__setstate__ builds a new
        # engine; the factory's storage re-installs its events there).
        storage = pickle.loads(pickled_storage)
        won: list[int] = []
        barrier.wait(timeout=120)
        start = time.perf_counter()
        for trial_id in trial_ids:
            if storage.set_trial_state_values(trial_id, TrialState.RUNNING):
                won.append(trial_id)
        results.put(("ok", index, won, start, time.perf_counter()))
    except BaseException:
        results.put(("error", index, traceback.format_exc(), 0.0, 0.0))
    finally:
        dispose = getattr(getattr(storage, "engine", None), "dispose", None)
        if dispose is not None:
            dispose()


def enqueue_waiting_trials(storage: BaseStorage, n_trials: int) -> list[int]:
    """Create a study in ``storage`` with ``n_trials`` WAITING trials; return their ids."""
    study = optuna.create_study(storage=storage)
    for i in range(n_trials):
        study.enqueue_trial({"i": i})
    trials = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert len(trials) == n_trials
    return [t._trial_id for t in trials]


def run_claim_race(
    storage: BaseStorage,
    trial_ids: list[int],
    *,
    n_workers: int,
    timeout: float = 120.0,
) -> ClaimRaceResult:
    """Start ``n_workers`` processes that all try to claim every trial in the same order.

    The storage reaches each worker pickled, as with a ``spawn`` process pool; the workers
    are forked (where available) only to skip re-importing Optuna in each of them.
    All workers start claiming at the same moment (a barrier) and walk ``trial_ids`` in the
    same order, which maximises contention on each trial.
    """
    methods = multiprocessing.get_all_start_methods()
    ctx = (
        multiprocessing.get_context("fork")
        if "fork" in methods
        else multiprocessing.get_context("spawn")
    )
    pickled_storage = pickle.dumps(storage)
    # No pooled connection of the parent's may be inherited by the forked workers.
    engine = getattr(getattr(storage, "_backend", storage), "engine", None)
    if engine is not None:
        engine.dispose()
    barrier = ctx.Barrier(n_workers)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker, args=(pickled_storage, trial_ids, barrier, results, i), daemon=True
        )
        for i in range(n_workers)
    ]
    for p in procs:
        p.start()
    wins: list[list[int]] = [[] for _ in range(n_workers)]
    errors: list[str] = []
    starts: list[float] = []
    ends: list[float] = []
    deadline = time.monotonic() + timeout
    try:
        for _ in range(n_workers):
            remaining = deadline - time.monotonic()
            try:
                status, index, payload, start, end = results.get(timeout=max(remaining, 0.1))
            except queue.Empty:
                raise TimeoutError(
                    f"claim race: not all {n_workers} workers finished in {timeout} s"
                ) from None
            if status == "ok":
                wins[index] = payload
                starts.append(start)
                ends.append(end)
            else:
                errors.append(payload)
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()
        results.close()
        results.join_thread()
    if errors:
        raise RuntimeError("claim race worker failed:\n" + "\n".join(errors))
    final_states = {
        t._trial_id: t.state
        for study in storage.get_all_studies()
        for t in storage.get_all_trials(study._study_id, deepcopy=False)
        if t._trial_id in set(trial_ids)
    }
    return ClaimRaceResult(
        trial_ids=list(trial_ids),
        wins=wins,
        seconds=max(ends) - min(starts),
        final_states=final_states,
    )


def _measure(label: str, make_storage: Any, n_trials: int, n_workers: int, repeat: int) -> None:
    for r in range(repeat):
        storage = make_storage(r)
        t0 = time.perf_counter()
        ids = enqueue_waiting_trials(storage, n_trials)
        enqueue_s = time.perf_counter() - t0
        result = run_claim_race(storage, ids, n_workers=n_workers)
        print(
            f"{label:<28} run {r}: {result.duplicates:4d} duplicate claims / {n_trials} trials "
            f"(total wins {result.total_wins}, unclaimed {len(result.unclaimed)}), "
            f"race {result.seconds:.2f} s, enqueue {enqueue_s:.2f} s",
            flush=True,
        )
        engine = getattr(storage, "engine", None)
        if engine is not None:
            engine.dispose()


def main() -> None:
    import argparse
    import os
    import tempfile

    from optuna_dyhpo.storages import create_sqlite_storage

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres-url", default=None)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:

        def default_sqlite(r: int) -> BaseStorage:
            path = os.path.join(tmp, f"default{r}.db")
            # Same busy timeout as the factory, so only the transaction handling differs.
            return optuna.storages.RDBStorage(
                f"sqlite:///{path}", engine_kwargs={"connect_args": {"timeout": 60}}
            )

        def factory_sqlite(r: int) -> BaseStorage:
            return create_sqlite_storage(os.path.join(tmp, f"factory{r}.db"))

        _measure(
            "RDBStorage (default SQLite)", default_sqlite, args.trials, args.workers, args.repeat
        )
        _measure("create_sqlite_storage", factory_sqlite, args.trials, args.workers, args.repeat)
        if args.postgres_url:
            _measure(
                "RDBStorage (PostgreSQL)",
                lambda r: optuna.storages.RDBStorage(args.postgres_url),
                args.trials,
                args.workers,
                args.repeat,
            )


if __name__ == "__main__":
    main()
