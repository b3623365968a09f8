"""Optimiser-overhead timing: thin timing wrappers around a sampler's and a pruner's methods.

The wrappers are installed on the *instances* (instance attributes shadowing the bound methods),
so ``isinstance`` checks and the classes' own code keep working unchanged. Only the outermost
call is timed: a sampler method that calls another wrapped method (or the pruner calling into the
sampler) is not counted twice. Storage writes the objective makes itself (``trial.report``) and
the objective's own compute are therefore excluded; storage reads the sampler or the pruner make
while deciding are included, because they are part of deciding.
"""

from __future__ import annotations

from collections import Counter
from collections import defaultdict
from collections.abc import Callable
from collections.abc import Iterator
import contextlib
import functools
import time
from typing import Any

SAMPLER_METHODS = (
    "infer_relative_search_space",
    "sample_relative",
    "sample_independent",
    "before_trial",
    "after_trial",
)
PRUNER_METHODS = ("prune",)


class OverheadTimer:
    """Accumulates seconds and calls per labelled optimiser method (outermost calls only)."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self._depth = 0

    @property
    def total(self) -> float:
        """Total seconds measured so far."""
        return float(sum(self.seconds.values()))

    @contextlib.contextmanager
    def measure(self, label: str) -> Iterator[None]:
        """Time a block as optimiser overhead under ``label`` (nested blocks count once)."""
        if self._depth:
            yield
            return
        self._depth += 1
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[label] += time.perf_counter() - start
            self.calls[label] += 1
            self._depth -= 1

    def wrap(self, obj: Any, methods: tuple[str, ...], prefix: str) -> None:
        """Install timing wrappers for ``methods`` on the instance ``obj``.

        Args:
            obj: A sampler or pruner instance.
            methods: Method names to time (missing ones are skipped).
            prefix: Label prefix, e.g. ``"sampler"``.
        """
        for name in methods:
            original = getattr(obj, name, None)
            if original is None:
                continue
            setattr(obj, name, self._timed(original, f"{prefix}.{name}"))

    def _timed(self, fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.measure(label):
                return fn(*args, **kwargs)

        return timed

    def breakdown(self) -> dict[str, dict[str, float]]:
        """Return ``{label: {"seconds": s, "calls": n}}``."""
        return {
            k: {"seconds": float(self.seconds[k]), "calls": int(self.calls[k])}
            for k in sorted(self.seconds)
        }
