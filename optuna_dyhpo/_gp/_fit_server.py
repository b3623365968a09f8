"""Fitting the surrogate in a helper process while the objective trains.

The helper is ``python -m optuna_dyhpo._gp._fit_server``: a plain child process (not
``multiprocessing``, whose start methods import the user's ``__main__`` module again) that reads
fit jobs from its standard input and writes the fitted surrogates to its standard output, as
length-prefixed pickles exchanged only between this module's two ends. It runs torch on one
thread, so a fit gives the same result whatever the parent process does meanwhile; it exits
when its standard input closes (the parent ended, was killed, or closed it).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import os
from pathlib import Path
import pickle
import struct
import subprocess
import sys
import threading
import time
from typing import IO
from typing import TYPE_CHECKING
from typing import Any
import weakref

if TYPE_CHECKING:
    import torch

    from optuna_dyhpo._gp._data import SurrogateInputs
    from optuna_dyhpo._gp._model import Surrogate

_HEADER = struct.Struct("<Q")


def _send(stream: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("the stream ended")
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the stream ended inside a message")
    return pickle.loads(data)


class BackgroundFitError(RuntimeError):
    """The helper process could not run a fit (it failed to start, died or answered nonsense)."""


@dataclass(frozen=True)
class FitOutcome:
    """What a background fit gave.

    Attributes:
        surrogate: The fitted surrogate (on ``error``: rolled back, as :meth:`Surrogate.fit`
            leaves it).
        error: The fit's :class:`~optuna_dyhpo._warnings.FitError` message, or ``None``.
        seconds: The helper's time for the fit.
    """

    surrogate: Surrogate
    error: str | None
    seconds: float


class FitJob:
    """One submitted fit; :meth:`BackgroundFitter.result` gives its outcome."""

    def __init__(
        self, surrogate: Surrogate, inputs: SurrogateInputs, targets: torch.Tensor, warm: bool
    ) -> None:
        self.surrogate, self.inputs, self.targets, self.warm = surrogate, inputs, targets, warm
        self.outcome: FitOutcome | None = None
        self.failure: str | None = None

    def fit_here(self) -> FitOutcome:
        """Run the fit in this process instead (when the helper failed)."""
        return _fit(self.surrogate, self.inputs, self.targets, self.warm)


def _fit(
    surrogate: Surrogate, inputs: SurrogateInputs, targets: torch.Tensor, warm: bool
) -> FitOutcome:
    """Fit ``surrogate`` in this process (the helper's work, or the fallback's)."""
    from optuna_dyhpo._warnings import FitError

    t0 = time.perf_counter()
    error = None
    try:
        surrogate.fit(inputs, targets, warm_start=warm)
    except FitError as err:
        error = str(err)
    return FitOutcome(surrogate, error, time.perf_counter() - t0)


def _stop(process: subprocess.Popen[bytes]) -> None:
    try:
        if process.stdin is not None:
            process.stdin.close()
        process.wait(timeout=1)  # a fit still running is not worth waiting for
    except (OSError, subprocess.TimeoutExpired):
        process.kill()


class BackgroundFitter:
    """Runs surrogate fits in a helper process, one at a time.

    :meth:`submit` returns at once (after waiting for the fit before, if any); :meth:`result`
    waits for that fit. The helper starts on
    the first submission and stops with this object (or at interpreter exit).
    """

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._queue: deque[FitJob] = deque()
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            package_root = str(Path(__file__).resolve().parents[2])
            env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (package_root, env.get("PYTHONPATH")) if p
            )
            self._process = subprocess.Popen(
                [sys.executable, "-m", "optuna_dyhpo._gp._fit_server"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
            )
            self._finalizer = weakref.finalize(self, _stop, self._process)
        return self._process

    def submit(
        self, surrogate: Surrogate, inputs: SurrogateInputs, targets: torch.Tensor, warm: bool
    ) -> FitJob:
        """Send a fit of (a copy of) ``surrogate`` on these rows to the helper."""
        job = FitJob(surrogate, inputs, targets, warm)
        with self._lock:
            # One job at a time in the pipes: a request written while the helper writes a
            # reply nobody reads would block both processes.
            while self._queue:
                self._read_next()
            try:
                process = self._start()
                assert process.stdin is not None
                _send(process.stdin, (surrogate, inputs, targets, warm))
            except (OSError, pickle.PicklingError) as err:
                job.failure = f"{type(err).__name__}: {err}"
                self._close_locked()
                return job
            self._queue.append(job)
        return job

    def result(self, job: FitJob) -> FitOutcome:
        """Wait for ``job``'s outcome.

        Raises:
            BackgroundFitError: The helper could not run it (then nothing more is sent to it).
        """
        with self._lock:
            while job.outcome is None and job.failure is None:
                self._read_next()
        if job.outcome is None:
            raise BackgroundFitError(f"the fit helper process failed ({job.failure})")
        return job.outcome

    def _read_next(self) -> None:
        head = self._queue.popleft()
        try:
            assert self._process is not None and self._process.stdout is not None
            surrogate, error, seconds = _receive(self._process.stdout)
            head.outcome = FitOutcome(surrogate, error, seconds)
        except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as err:
            head.failure = f"{type(err).__name__}: {err}"
            self._close_locked()

    @property
    def pid(self) -> int | None:
        """The helper's process id (``None`` before the first fit)."""
        return None if self._process is None else self._process.pid

    def close(self) -> None:
        """Stop the helper (the next submission starts a new one)."""
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        for lost in self._queue:
            lost.failure = lost.failure or "the helper was closed"
        self._queue.clear()
        if self._finalizer is not None:
            self._finalizer()
        self._process, self._finalizer = None, None


def main() -> None:
    """The helper's loop: fit what arrives on standard input until it closes."""
    import torch

    torch.set_num_threads(1)
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing printed may corrupt the replies
    while True:
        try:
            surrogate, inputs, targets, warm = _receive(requests)
        except EOFError:
            return
        outcome = _fit(surrogate, inputs, targets, warm)
        _send(replies, (outcome.surrogate, outcome.error, outcome.seconds))


if __name__ == "__main__":
    main()
