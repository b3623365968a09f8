"""Storages for running one study from several workers.

Optuna's default SQLite :class:`~optuna.storages.RDBStorage` does not make the
``WAITING -> RUNNING`` claim of a trial atomic across processes: two workers can both
"win" the same enqueued trial. :func:`create_sqlite_storage` returns an
:class:`~optuna.storages.RDBStorage` whose SQLite transactions take the database's write
lock up front (``BEGIN IMMEDIATE``), which makes such claims atomic.
:class:`~optuna_dyhpo.DyHPOSampler` installs the same transaction handling on a plain
``sqlite:///`` storage before ``study.optimize`` claims its first trial.

PostgreSQL (``postgresql+psycopg2://...``) and :class:`~optuna.storages.JournalStorage`
already claim atomically and need nothing from this module.
"""

from __future__ import annotations

from optuna_dyhpo.storages._sqlite import create_sqlite_storage

__all__ = ["create_sqlite_storage"]
