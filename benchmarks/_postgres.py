"""A throwaway PostgreSQL cluster: started in a temporary directory, deleted when stopped.

The cluster listens on 127.0.0.1 on a free port (and on a Unix socket in that directory), runs
with ``fsync=off``, and is stopped and deleted by :meth:`PostgresCluster.stop` (registered with
``atexit`` as well). No system service is used: only the server binaries, which
``scripts/install-postgres.sh`` installs. As root (initdb refuses to run as root) the cluster
runs as the ``postgres`` OS user via ``runuser``.

Used by the test fixtures in ``tests/storages/postgres.py`` and by ``benchmarks.stress`` and
``benchmarks.scaling`` when no ``--storage`` is given.
"""

from __future__ import annotations

import atexit
from collections.abc import Iterator
import contextlib
import glob
import os
from pathlib import Path
import pwd
import shutil
import socket
import subprocess
import tempfile

_DRIVER = "postgresql+psycopg2"


class PostgresUnavailable(RuntimeError):
    """The throwaway cluster could not be started (the message says why)."""


def find_postgres_bin() -> Path | None:
    """Directory holding ``initdb`` and ``pg_ctl`` (newest version first), or None."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parent.name.split(".")],
        reverse=True,
    )
    for found in shutil.which("pg_ctl"), shutil.which("initdb"):
        if found:
            candidates.append(str(Path(found).parent))
    for c in candidates:
        if os.access(os.path.join(c, "initdb"), os.X_OK) and os.access(
            os.path.join(c, "pg_ctl"), os.X_OK
        ):
            return Path(c)
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresCluster:
    """A PostgreSQL cluster in a temporary directory. Use :meth:`start` and :meth:`stop`."""

    def __init__(self, superuser: str = "postgres") -> None:
        self.superuser = superuser
        self.port = 0
        self.tmpdir: Path | None = None
        self._bin: Path | None = None
        self._run_as: list[str] = []
        self._running = False

    @property
    def data_dir(self) -> Path:
        assert self.tmpdir is not None
        return self.tmpdir / "data"

    @property
    def log_file(self) -> Path:
        assert self.tmpdir is not None
        return self.tmpdir / "server.log"

    def url(self, database: str) -> str:
        return f"{_DRIVER}://{self.superuser}@127.0.0.1:{self.port}/{database}"

    def _run(self, args: list[str], timeout: float = 60) -> None:
        assert self._bin is not None and self.tmpdir is not None
        cmd = [*self._run_as, str(self._bin / args[0]), *args[1:]]
        proc = subprocess.run(
            cmd,
            cwd=self.tmpdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            log = ""
            if self.log_file.exists():
                log = self.log_file.read_text(errors="replace")[-2000:]
            raise PostgresUnavailable(
                f"`{' '.join(cmd)}` exited {proc.returncode}:\n{proc.stdout}{proc.stderr}{log}"
            )

    def start(self) -> None:
        self._bin = find_postgres_bin()
        if self._bin is None:
            raise PostgresUnavailable(
                "no initdb/pg_ctl under /usr/lib/postgresql/*/bin or on PATH; "
                "run `bash scripts/install-postgres.sh`"
            )
        try:
            import psycopg2  # noqa: F401
        except ImportError as e:
            raise PostgresUnavailable(
                "the psycopg2 driver is not installed (pip install psycopg2-binary)"
            ) from e
        self.tmpdir = Path(tempfile.mkdtemp(prefix="optuna-dyhpo-pg-"))
        atexit.register(self.stop)
        if os.geteuid() == 0:
            # initdb refuses to run as root: run the cluster as the postgres OS user.
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError as e:
                raise PostgresUnavailable(
                    "running as root and there is no `postgres` OS user to run the server as"
                ) from e
            runuser = shutil.which("runuser")
            if runuser is None:
                raise PostgresUnavailable("running as root and `runuser` is not available")
            os.chown(self.tmpdir, pw.pw_uid, pw.pw_gid)
            self._run_as = [runuser, "-u", "postgres", "--"]
        self._run(
            [
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                self.superuser,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ]
        )
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-p {{port}} -k {self.tmpdir}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c shared_buffers=32MB",
                "-c max_connections=200",
            ]
        )
        last_error: PostgresUnavailable | None = None
        for _ in range(3):  # the free port can be taken between probing and binding
            self.port = _free_port()
            try:
                self._run(
                    [
                        "pg_ctl",
                        "-D",
                        str(self.data_dir),
                        "-l",
                        str(self.log_file),
                        "-w",
                        "-t",
                        "60",
                        "-o",
                        options.format(port=self.port),
                        "start",
                    ],
                    timeout=90,
                )
            except PostgresUnavailable as e:
                last_error = e
                continue
            self._running = True
            return
        assert last_error is not None
        raise last_error

    def execute_autocommit(self, sql: str, database: str = "postgres") -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1", port=self.port, user=self.superuser, dbname=database
        )
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database ``name`` (optionally copied from ``template``); return its URL."""
        clause = f' TEMPLATE "{template}"' if template else ""
        self.execute_autocommit(f'CREATE DATABASE "{name}"{clause}')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.execute_autocommit(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Stop the server and delete its directory. Safe to call more than once."""
        try:
            if self._running and self._bin is not None:
                self._running = False
                try:
                    self._run(
                        ["pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"]
                    )
                except (PostgresUnavailable, subprocess.TimeoutExpired):
                    self._kill_postmaster()
        finally:
            if self.tmpdir is not None:
                shutil.rmtree(self.tmpdir, ignore_errors=True)
                self.tmpdir = None

    def _kill_postmaster(self) -> None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


@contextlib.contextmanager
def throwaway_postgres(database: str = "optuna_dyhpo") -> Iterator[str]:
    """Start a throwaway cluster, create ``database`` and yield its SQLAlchemy URL.

    The cluster is stopped and its directory deleted when the ``with`` block ends.

    Raises:
        PostgresUnavailable: The cluster could not be started (the message says why).
    """
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster.create_database(database)
    finally:
        cluster.stop()
