"""PostgreSQL 16 from the ``pgserver`` wheel, listening on 127.0.0.1 over TCP.

We run the wheel's own ``initdb`` and ``postgres`` binaries directly (not
``pgserver.get_server``, which listens on a Unix socket only and keeps global state):
the postmaster is our child process, its data directory is ``base_dir/data`` and its log
``base_dir/postgres.log``. As root, PostgreSQL refuses to run, so the server runs as the
owner of an existing data directory, or as a ``pgserver`` system user (created if missing,
the same user the pgserver package uses). Authentication is ``trust`` on 127.0.0.1 only:
this is a development server.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import pwd
import re
import signal
import stat
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import asyncpg

from parley_devstack._proc import (
    ServerProcess,
    parent_death_signal,
    pid_alive,
    poll_until,
    proc_cmdline,
    tail,
)
from parley_devstack.ports import LOOPBACK, free_port

log = logging.getLogger(__name__)

SYSTEM_USER = "pgserver"
SUPERUSER = "postgres"
DEFAULT_SETTINGS: Mapping[str, str] = {
    "synchronous_commit": "on",
    "max_connections": "200",
}
_START_ATTEMPTS = 3  # only when the port was picked by us: another process may take it first
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class PostgresError(RuntimeError):
    """PostgreSQL could not be initialised, started or stopped."""


def postgres_bin_dir() -> Path:
    """The ``bin`` directory of the PostgreSQL build inside the pgserver wheel."""
    # Located without importing pgserver, whose import sets up lock files and runtime dirs.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise PostgresError("the pgserver package is not installed")
    return Path(spec.origin).resolve().parent / "pginstall" / "bin"


class EmbeddedPostgres(ServerProcess):
    """A PostgreSQL server whose data survives restarts under ``base_dir``.

    ``port=None`` picks a free port at the first start (later starts keep it). ``settings``
    are extra ``-c name=value`` server settings on top of :data:`DEFAULT_SETTINGS`.
    """

    def __init__(
        self,
        base_dir: Path | str,
        *,
        port: int | None = None,
        host: str = LOOPBACK,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.host = host
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self._requested_port = port
        self._port: int | None = port
        self._proc: subprocess.Popen[bytes] | None = None
        self.initialized_now = False
        """True if the last start() ran initdb (a brand-new, empty cluster)."""

    # -- addresses -------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "postgres.log"

    @property
    def port(self) -> int:
        if self._port is None:
            raise PostgresError("PostgreSQL has no port yet: call start() first")
        return self._port

    @property
    def dsn(self) -> str:
        """DSN of the ``postgres`` maintenance database (asyncpg and libpq syntax)."""
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    # -- life cycle ------------------------------------------------------------------------

    async def start(self, timeout: float = 30.0) -> None:
        """initdb if needed, start the server and wait until it accepts connections."""
        if self.running:
            return
        user = _server_user(self.data_dir)
        bin_dir = postgres_bin_dir()
        self._prepare_dirs(user, bin_dir)
        await self._stop_leftover_server()
        self.initialized_now = False
        if not (self.data_dir / "PG_VERSION").exists():
            await asyncio.to_thread(self._initdb, user, bin_dir)
            self.initialized_now = True

        attempts = _START_ATTEMPTS if self._requested_port is None else 1
        for attempt in range(1, attempts + 1):
            offset = self._spawn(user, bin_dir)
            proc = self._proc
            assert proc is not None
            deadline = time.monotonic() + timeout
            while proc.poll() is None:
                if self._postmaster_ready(proc.pid):
                    log.info("postgres ready on %s:%s (pid %s)", self.host, self.port, proc.pid)
                    self._requested_port = self._port  # a restart keeps the address
                    return
                if time.monotonic() > deadline:
                    await self.stop()
                    raise PostgresError(
                        f"postgres not ready after {timeout:.0f} s; "
                        f"log {self.log_path}:\n{tail(self.log_path, offset)}"
                    )
                await asyncio.sleep(0.01)
            output = tail(self.log_path, offset)
            self._proc = None
            if attempt < attempts and "could not bind" in output:
                log.info("port %s was taken before postgres bound it; retrying", self._port)
                self._port = None
                continue
            raise PostgresError(f"postgres exited during start-up; log {self.log_path}:\n{output}")

    async def stop(self, timeout: float = 10.0, immediate: bool = False) -> None:
        """Fast shutdown (SIGINT: disconnect clients, checkpoint); SIGQUIT, then SIGKILL.

        ``immediate`` starts with SIGQUIT, as ``pg_ctl stop -m immediate`` does: no
        checkpoint, crash recovery at the next start.
        """
        proc = self._proc
        if proc is None:
            return
        steps = ((signal.SIGINT, timeout), (signal.SIGQUIT, 3.0), (signal.SIGKILL, 5.0))
        for sig, wait in steps[1:] if immediate else steps:
            if proc.poll() is not None:
                break
            if sig != signal.SIGINT and not (immediate and sig == signal.SIGQUIT):
                log.warning("postgres (pid %s) still running; sending %s", proc.pid, sig.name)
            proc.send_signal(sig)
            await poll_until(lambda: proc.poll() is not None, wait)
        self._proc = None

    # -- databases -------------------------------------------------------------------------

    async def create_database(self, name: str) -> str:
        """Create an empty database and return its DSN."""
        _check_identifier(name)
        conn = await self._connect()
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.dsn_for(name)

    async def ensure_database(self, name: str) -> str:
        """Create the database unless it exists; return its DSN."""
        _check_identifier(name)
        conn = await self._connect()
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.dsn_for(name)

    async def drop_database(self, name: str) -> None:
        """Drop the database if it exists, disconnecting its clients."""
        _check_identifier(name)
        conn = await self._connect()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    async def _connect(self) -> Any:
        if not self.running:
            raise PostgresError("PostgreSQL is not running")
        return await asyncpg.connect(self.dsn, timeout=10)

    # -- internals -------------------------------------------------------------------------

    def _prepare_dirs(self, user: pwd.struct_passwd | None, bin_dir: Path) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if not self.data_dir.exists():
            self.data_dir.mkdir(mode=0o700)
        if user is None:
            return
        # Running as root: the server runs as `user`, who must own the data directory and be
        # able to reach it and the binaries.
        if self.data_dir.stat().st_uid != user.pw_uid:
            if any(self.data_dir.iterdir()):
                raise PostgresError(
                    f"{self.data_dir} is not empty and not owned by {user.pw_name}; "
                    "refusing to take it over"
                )
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
        _ensure_traversable(self.data_dir.parent)
        _ensure_traversable(bin_dir.parent)
        if not os.stat(bin_dir / "postgres").st_mode & stat.S_IXOTH:
            _make_tree_readable(bin_dir.parent)

    def _initdb(self, user: pwd.struct_passwd | None, bin_dir: Path) -> None:
        started = time.monotonic()
        argv = [
            str(bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        ]
        result = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=self.data_dir,
            env=_server_env(),
            check=False,
            timeout=120,
            **_user_kwargs(user),
        )
        if result.returncode != 0:
            raise PostgresError(
                f"initdb failed ({result.returncode}):\n{result.stdout}\n{result.stderr}".strip()
            )
        log.info("initdb %s in %.2f s", self.data_dir, time.monotonic() - started)

    def _spawn(self, user: pwd.struct_passwd | None, bin_dir: Path) -> int:
        """Start the postmaster; return the log offset where this run's output begins."""
        if self._port is None:
            self._port = free_port(self.host)
        argv = [str(bin_dir / "postgres"), "-D", str(self.data_dir)]
        server_settings = {
            "listen_addresses": self.host,
            "port": str(self._port),
            "unix_socket_directories": "",  # TCP only: no socket-path length or permission issues
            **self.settings,
        }
        for name, value in server_settings.items():
            argv += ["-c", f"{name}={value}"]
        with self.log_path.open("ab") as logfile:
            offset = logfile.tell()
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                env=_server_env(),
                start_new_session=True,  # Ctrl-C in the terminal must not reach it directly
                # SIGINT is PostgreSQL's fast shutdown: clean, and it disconnects clients.
                preexec_fn=parent_death_signal(signal.SIGINT),
                **_user_kwargs(user),
            )
        return offset

    def _postmaster_ready(self, pid: int) -> bool:
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except (OSError, UnicodeDecodeError):
            return False
        return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready"

    async def _stop_leftover_server(self) -> None:
        """Stop a postmaster still running on our data directory (left by a killed run)."""
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            pid = int(first.strip())
        except (OSError, ValueError):
            return
        cmdline = proc_cmdline(pid)
        if not pid_alive(pid) or cmdline is None:
            return
        if not any(Path(arg).name == "postgres" for arg in cmdline[:1]) or str(
            self.data_dir
        ) not in " ".join(cmdline):
            return
        log.warning("stopping a leftover postgres (pid %s) on %s", pid, self.data_dir)
        for sig, wait in ((signal.SIGINT, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            if await poll_until(lambda: not pid_alive(pid), wait, 0.05):
                return
        raise PostgresError(f"could not stop the leftover postgres (pid {pid}) on {self.data_dir}")


def _check_identifier(name: str) -> None:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"invalid database name {name!r}: use letters, digits and _ (max 63)")


def _server_env() -> dict[str, str]:
    # PG* variables of the caller (PGDATA, PGPORT, ...) must not steer our server.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _user_kwargs(user: pwd.struct_passwd | None) -> dict[str, Any]:
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _server_user(data_dir: Path) -> pwd.struct_passwd | None:
    """None when not root; else the non-root owner of an existing cluster, or ``pgserver``."""
    if os.geteuid() != 0:
        return None
    if (data_dir / "PG_VERSION").exists():
        owner = data_dir.stat().st_uid
        if owner != 0:
            return pwd.getpwuid(owner)
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        pass
    log.info("running as root: creating system user %r to run PostgreSQL", SYSTEM_USER)
    result = subprocess.run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            SYSTEM_USER,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:  # a concurrent start may have created it first
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise PostgresError(
            f"PostgreSQL cannot run as root and useradd {SYSTEM_USER} failed: {result.stderr}"
        ) from None


def _ensure_traversable(path: Path) -> None:
    """Give others search (x) permission on ``path`` and its ancestors where it is missing."""
    for p in (path, *path.parents):
        mode = p.stat().st_mode
        if not mode & stat.S_IXOTH:
            log.info("chmod o+x %s (so the postgres user can reach its data)", p)
            p.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _make_tree_readable(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        d.chmod(stat.S_IMODE(d.stat().st_mode) | 0o055)
        for name in filenames:
            f = d / name
            if not f.is_symlink():
                mode = stat.S_IMODE(f.stat().st_mode)
                f.chmod(mode | 0o044 | (0o011 if mode & stat.S_IXUSR else 0))
