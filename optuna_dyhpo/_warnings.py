from __future__ import annotations

import logging
import threading
import warnings


class DyHPOWarning(UserWarning):
    """Warnings issued by optuna-dyhpo (fallback decisions, unusual user input, ...)."""


class CheckpointError(RuntimeError):
    """A resumed configuration's checkpoint is missing or cannot be read."""


class FitError(RuntimeError):
    """The surrogate could not be fitted or evaluated (non-PSD kernel matrix, NaN loss, a
    degenerate fit, ...). DyHPO then decides without it."""


class ModelPending(FitError):
    """This process has no model yet and another worker is fitting the study's first one:
    DyHPO decides without a model until that worker publishes it (not a failure)."""


def warn_once(logger: logging.Logger, message: str) -> None:
    """Log ``message`` at WARNING and issue it as a :class:`DyHPOWarning` (callers make sure
    a situation is reported once)."""
    logger.warning(message)
    warnings.warn(message, DyHPOWarning, stacklevel=3)


class OncePerStudy:
    """Remembers which situations were already reported for which study (in this process)."""

    def __init__(self) -> None:
        self._seen: set[tuple[int, int, str]] = set()
        self._lock = threading.Lock()

    def first(self, storage: object, study_id: int, what: str) -> bool:
        """Whether ``what`` happens for the first time in this study."""
        key = (id(storage), study_id, what)
        with self._lock:
            if key in self._seen:
                return False
            self._seen.add(key)
            return True

    def __getstate__(self) -> dict[str, object]:
        return {}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__()  # type: ignore[misc]
