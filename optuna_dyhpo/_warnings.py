from __future__ import annotations

import logging
import warnings


class DyHPOWarning(UserWarning):
    """Warnings issued by optuna-dyhpo (fallback decisions, unusual user input, ...)."""


class CheckpointError(RuntimeError):
    """A resumed configuration's checkpoint is missing or cannot be read."""


class FitError(RuntimeError):
    """The surrogate could not be fitted or evaluated (non-PSD kernel matrix, NaN loss, a
    degenerate fit, ...). DyHPO then decides without it."""


def warn_once(logger: logging.Logger, message: str) -> None:
    """Log ``message`` at WARNING and issue it as a :class:`DyHPOWarning` (callers make sure
    a situation is reported once)."""
    logger.warning(message)
    warnings.warn(message, DyHPOWarning, stacklevel=3)
