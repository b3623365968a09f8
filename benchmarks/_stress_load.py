"""Load and measurements for ``benchmarks.stress``: CPU burners, per-worker timings, run logs.

- :class:`Workers`: the worker processes of a run, started with the repository on the path.
- :class:`Burners`: processes that spin on the CPU for the length of a run (more busy
  processes than cores), so heartbeats and decisions compete for the CPU as on an
  overloaded machine.
- :func:`install_probe`: in a worker, times DyHPO's decisions (``before_trial``, the first
  one of each worker apart: it imports torch and fits from scratch; ``prune``), checkpoint
  saves and heartbeat writes, appending to ``timing-<worker>.txt``.
- :func:`load_figures`: reads the workers' log directory: trials run by two workers at once
  (from ``ran-<worker>.txt``), trials another worker failed as stale while they trained (from
  the workers' DyHPOWarning), and percentiles of the timings, with the largest gap between
  two heartbeats of one trial (what the grace period must cover).
"""

from __future__ import annotations

from collections import Counter
from collections import defaultdict
import contextlib
import functools
import math
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
_STOPPED = re.compile(r"Trial (\d+) was finished \((\w+)\) by another worker")


class Burners:
    """``n`` processes spinning on the CPU until :meth:`stop` (a context manager)."""

    def __init__(self, n: int) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        for _ in range(n):
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", "while True: pass"],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            p.wait()

    def __enter__(self) -> Burners:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Workers:
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

    def dump_stacks(self, indices: list[int]) -> dict[int, str]:
        """Ask workers for their threads' stacks (``SIGUSR1``: ``faulthandler``) and return
        the end of their logs; used for workers that did not stop in time."""
        for i in indices:
            with contextlib.suppress(ProcessLookupError):
                self.procs[i].send_signal(signal.SIGUSR1)
        time.sleep(2.0)
        out = {}
        for i in indices:
            out[i] = (self.log_dir / f"worker-{i}.log").read_text(errors="replace")[-4000:]
            self.killed.add(i)  # reported as a straggler, not as an error
        return out

    def stop_all(self) -> None:
        """SIGKILL every worker still running (cleanup)."""
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
        for p in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)


def install_probe(sampler: Any, pruner: Any, storage: Any, path: Path) -> None:
    """Time ``sampler.before_trial``, ``pruner.prune``, ``TrialResume.save`` and the storage's
    ``record_heartbeat`` in this worker; each call appends ``kind seconds [trial_id end]``
    to ``path`` (flushed, so a killed worker keeps what it measured)."""
    from optuna_dyhpo import TrialResume

    lock = threading.Lock()
    log = open(path, "a", buffering=1)

    calls: Counter[str] = Counter()

    def timed(kind: str, fn: Any, trial_arg: int | None = None) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                t1 = time.perf_counter()
                extra = f" {args[trial_arg]} {time.time():.3f}" if trial_arg is not None else ""
                with lock:
                    calls[kind] += 1
                    # A worker's first decision imports torch and fits from scratch.
                    label = f"first_{kind}" if kind == "decision" and calls[kind] == 1 else kind
                    log.write(f"{label} {t1 - t0:.4f}{extra}\n")

        return wrapper

    sampler.before_trial = timed("decision", sampler.before_trial)
    pruner.prune = timed("prune", pruner.prune)
    TrialResume.save = timed("save", TrialResume.save)  # type: ignore[method-assign]
    backend = getattr(storage, "_backend", storage)
    if hasattr(backend, "record_heartbeat"):
        backend.record_heartbeat = timed("heartbeat", backend.record_heartbeat, trial_arg=0)


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    v = sorted(values)

    def q(p: float) -> float:
        return v[min(len(v) - 1, max(0, math.ceil(p * len(v)) - 1))]

    return {
        "n": len(v),
        "p50": round(q(0.5), 3),
        "p95": round(q(0.95), 3),
        "max": round(v[-1], 3),
    }


def load_figures(log_dir: Path) -> dict[str, Any]:
    """Figures from a run's log directory (see the module docstring)."""
    runs: Counter[int] = Counter()
    for f in log_dir.glob("ran-*.txt"):
        runs.update(int(x) for x in f.read_text().split())
    times: dict[str, list[float]] = defaultdict(list)
    beats: dict[str, list[float]] = defaultdict(list)
    for f in log_dir.glob("timing-*.txt"):
        for line in f.read_text().splitlines():
            parts = line.split()
            if len(parts) < 2:
                continue  # a line cut by a kill
            times[parts[0]].append(float(parts[1]))
            if parts[0] == "heartbeat" and len(parts) == 4:
                beats[f"{f.name}:{parts[2]}"].append(float(parts[3]))
    gaps: list[float] = []
    for ends in beats.values():
        ends.sort()
        gaps += [b - a for a, b in zip(ends, ends[1:], strict=False)]
    stopped: dict[int, str] = {}
    for f in log_dir.glob("worker-*.log"):
        for m in _STOPPED.finditer(f.read_text(errors="replace")):
            stopped[int(m.group(1))] = m.group(2)
    return {
        "duplicate_runs": {n: c for n, c in runs.items() if c > 1},
        "objective_calls": sum(runs.values()),
        "stale_live_trials": sorted(n for n, s in stopped.items() if s == "FAIL"),
        "finished_by_another_claimant": sorted(n for n, s in stopped.items() if s != "FAIL"),
        "seconds": {k: _percentiles(v) for k, v in sorted(times.items())},
        "heartbeat_gap_seconds": _percentiles(gaps),
    }
