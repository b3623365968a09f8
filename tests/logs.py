"""Capturing the records of Optuna's loggers (``optuna.dyhpo`` included) in tests."""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import logging

import optuna


class LogRecords(logging.Handler):
    """Keeps every record it is handed."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self, level: int | None = None) -> list[str]:
        """The messages, of records at ``level`` only if given."""
        return [r.getMessage() for r in self.records if level is None or r.levelno == level]


@contextlib.contextmanager
def optuna_records() -> Iterator[LogRecords]:
    """Every record of Optuna's loggers while the block runs, at Optuna's INFO verbosity."""
    handler = LogRecords()
    logger = logging.getLogger("optuna")
    logger.addHandler(handler)
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        yield handler
    finally:
        optuna.logging.set_verbosity(previous)
        logger.removeHandler(handler)
