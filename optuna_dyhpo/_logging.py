"""Loggers of optuna-dyhpo, and what keeps its log lines readable.

* :func:`get_logger`: every logger is below Optuna's, so ``optuna.logging`` controls it.
* :func:`replace_pruned_line`: a trial DyHPO paused gets one INFO line of its own (what it
  trained, why it started, who gets the next epoch); Optuna's generic ``"Trial N pruned."``
  line for that trial is then dropped, so the log has one line per trial.
* :class:`TqdmLogging`: while the epoch progress bar is drawn, console log lines are written
  through ``tqdm.write`` so they print above the bar instead of through it.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

import optuna


def get_logger(name: str) -> logging.Logger:
    """A logger below Optuna's root logger, so it follows ``optuna.logging`` verbosity."""
    return optuna.logging.get_logger(f"optuna.dyhpo.{name}")


# ------------------------------------------------------------- Optuna's "Trial N pruned." line
_PRUNED_LINE = re.compile(r"^Trial (\d+) pruned\.")


class _ReplacedPrunedLines(logging.Filter):
    """Drops Optuna's ``"Trial N pruned."`` record for the trial DyHPO just logged a line for.

    A mark is per thread (``study.optimize`` logs the line in the thread that ran the trial's
    objective, where the pruner marked it) and holds one trial number: the next pruned line
    of that thread consumes it whether it matches or not, and :func:`forget_pruned_line`
    drops it when the thread starts its next trial. A mark Optuna never printed a line for
    (an ask-and-tell loop) so never hides another study's line.
    """

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()

    def mark(self, number: int | None) -> None:
        self._local.pending = number

    def filter(self, record: logging.LogRecord) -> bool:
        match = _PRUNED_LINE.match(record.getMessage())
        if match is None:
            return True
        pending = getattr(self._local, "pending", None)
        self._local.pending = None
        return pending != int(match.group(1))


_PRUNED_FILTER = _ReplacedPrunedLines()
logging.getLogger("optuna.study._optimize").addFilter(_PRUNED_FILTER)


def replace_pruned_line(trial_number: int) -> None:
    """Drop Optuna's ``"Trial <trial_number> pruned."`` INFO line that follows in this thread
    (DyHPO logged its own)."""
    _PRUNED_FILTER.mark(trial_number)


def forget_pruned_line() -> None:
    """Forget this thread's mark (called as ``study.optimize`` starts a trial)."""
    _PRUNED_FILTER.mark(None)


# ----------------------------------------------------------------------- tqdm-aware logging
class _TqdmHandler(logging.Handler):
    """Writes formatted records with ``tqdm.write`` on the stream of the handler it replaces."""

    def __init__(self, replaced: logging.StreamHandler[Any]) -> None:
        super().__init__(replaced.level)
        self.replaced = replaced
        self.setFormatter(replaced.formatter)
        for f in replaced.filters:
            self.addFilter(f)

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.auto import tqdm

        try:
            tqdm.write(self.format(record), file=self.replaced.stream)
            self.replaced.flush()
        except Exception:
            self.handleError(record)


def _is_console(handler: logging.Handler) -> bool:
    """A plain ``StreamHandler`` (Optuna's default handler is one); files and subclasses
    (e.g. test capture handlers) are left alone. ``tqdm.write`` on a stream that no bar
    uses simply writes the line."""
    return type(handler) is logging.StreamHandler and getattr(handler, "stream", None) is not None


class TqdmLogging:
    """Routes console log lines of Optuna's logger (and the root logger) through
    ``tqdm.write`` between :meth:`enter` and :meth:`exit`; idempotent both ways."""

    def __init__(self) -> None:
        self._swapped: list[tuple[logging.Logger, logging.Handler, logging.Handler]] = []

    def enter(self) -> None:
        if self._swapped:
            return
        for logger in (logging.getLogger("optuna"), logging.getLogger()):
            handlers = list(logger.handlers)
            for i, handler in enumerate(handlers):
                if _is_console(handler):
                    assert isinstance(handler, logging.StreamHandler)
                    handlers[i] = _TqdmHandler(handler)
                    self._swapped.append((logger, handler, handlers[i]))
            logger.handlers = handlers  # in place: the order of handlers is kept

    def exit(self) -> None:
        for logger, handler, tqdm_handler in self._swapped:
            logger.handlers = [handler if h is tqdm_handler else h for h in logger.handlers]
        self._swapped = []
