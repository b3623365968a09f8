from __future__ import annotations

import logging

import optuna


def get_logger(name: str) -> logging.Logger:
    """A logger below Optuna's root logger, so it follows ``optuna.logging`` verbosity."""
    return optuna.logging.get_logger(f"optuna.dyhpo.{name}")
