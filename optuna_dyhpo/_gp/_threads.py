"""How many threads the surrogate's torch work runs on, and gpytorch's settings for it."""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import threading

import gpytorch
import torch


@contextlib.contextmanager
def small_math() -> Iterator[None]:
    """Run torch on one thread inside the block when that is safe, restoring the count after.

    The surrogate's tensors are small; OpenMP's thread team makes them many times slower when
    the cores are busy. torch's thread count is process-wide, so it is only lowered when the
    decision runs on the main thread (a sequential ``study.optimize``: nothing else of the
    process computes meanwhile). Decisions on other threads (``n_jobs > 1``, where the user's
    training may run in parallel) leave it alone.
    """
    threads = torch.get_num_threads()
    if threads == 1 or threading.current_thread() is not threading.main_thread():
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def gp_settings() -> Iterator[None]:
    """Exact Cholesky algebra (gpytorch switches to iterative solvers above 800 rows by
    default; our sizes are small enough for exact algebra) with :func:`small_math`."""
    with small_math(), gpytorch.settings.max_cholesky_size(100_000):
        yield
