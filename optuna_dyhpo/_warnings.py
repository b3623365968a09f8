from __future__ import annotations


class DyHPOWarning(UserWarning):
    """Warnings issued by optuna-dyhpo (fallback decisions, unusual user input, ...)."""


class CheckpointError(RuntimeError):
    """A resumed configuration's checkpoint is missing or cannot be read."""
