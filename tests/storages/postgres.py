"""Pytest fixtures that start a throwaway PostgreSQL cluster (see ``benchmarks/_postgres.py``).

The cluster lives in a temporary directory, listens on 127.0.0.1 on a free port (and on a
Unix socket in that directory), runs with ``fsync=off``, and is stopped and deleted after the
test session. No system service is used: only the server binaries, which
``scripts/install-postgres.sh`` installs. As root (initdb refuses to run as root) the
cluster runs as the ``postgres`` OS user via ``runuser``.

With ``CI=true`` a cluster that cannot be started fails the tests that need it; elsewhere
they are skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
import os
import subprocess

import pytest

from benchmarks._postgres import PostgresCluster
from benchmarks._postgres import PostgresUnavailable
from benchmarks._postgres import find_postgres_bin

__all__ = [
    "PostgresCluster",
    "PostgresUnavailable",
    "find_postgres_bin",
    "postgres_cluster",
    "postgres_url",
]


def _unavailable(reason: str) -> None:
    message = f"PostgreSQL for tests is unavailable: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: PostgreSQL tests must run in CI)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A running throwaway PostgreSQL cluster, stopped and deleted after the session."""
    cluster = PostgresCluster()
    try:
        cluster.start()
    except (PostgresUnavailable, OSError, subprocess.TimeoutExpired) as e:
        cluster.stop()
        _unavailable(str(e))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """SQLAlchemy URL (psycopg2 driver) of a database created for this test session."""
    return postgres_cluster.create_database("optuna_dyhpo_test")
