"""``make run``: the whole Parley stack on its embedded default, supervised until Ctrl-C.

1. ``.parley/`` in the current directory (or ``$PARLEY_HOME``) holds every piece of state.
2. NATS (``.parley/nats``) and PostgreSQL (``.parley/postgres``) start embedded unless
   ``PARLEY_NATS_URL`` / ``PARLEY_DATABASE_URL`` point at external ones.
3. ``.parley/master.key`` (0600) holds the master key that encrypts secrets at rest, unless
   ``PARLEY_AUTH_MASTER_KEY`` is set.
4. ``python -m parley_auth.admin`` (each command applies the auth schema's migrations):
   once, ``create-app --new-account sandbox`` for the sandbox, whose JSON is kept in
   ``.parley/sandbox-app.json`` (0600); on later starts ``list-apps`` checks it is there.
5. Every service found by :mod:`parley_devstack.services` (each ``services/<name>/`` whose
   pyproject.toml has a ``[tool.parley.service]`` table) runs under the :class:`Supervisor`;
   once all answer ``/readyz`` a banner shows how to connect.
6. SIGINT/SIGTERM stop the services, then PostgreSQL, then NATS; the exit code is 0.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from parley_devstack.nats import EmbeddedNats
from parley_devstack.ports import LOOPBACK, free_port, port_is_free, preferred_port
from parley_devstack.postgres import EmbeddedPostgres
from parley_devstack.services import (
    ADMIN_MODULE,
    GATEWAY,
    RootNotFoundError,
    ServiceDef,
    ServiceTableError,
    discover,
)
from parley_devstack.supervisor import ServiceSpec, Supervisor, shutdown_signals
from parley_service.logs import safe_url

log = logging.getLogger(__name__)

ENVIRONMENT = "sandbox"
DATABASE_NAME = "parley"
NATS_PORT = 4222
READY_TIMEOUT = 30.0
# How often `make run` looks at its embedded NATS and PostgreSQL (and waits after a failed
# restart before it tries again).
WATCH_SECONDS = 0.5
WATCH_RETRY_SECONDS = 2.0
ADMIN_TIMEOUT = 120.0
MASTER_KEY_ENV = "PARLEY_AUTH_MASTER_KEY"


class StackError(RuntimeError):
    """The stack could not start; the message says why."""


@dataclass
class StackSettings:
    home: Path
    nats_url: str | None = None
    database_url: str | None = None
    master_key: str | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    """Public-port variables from our environment (e.g. PARLEY_GATEWAY_PORT)."""
    nats_port: int = NATS_PORT
    """The embedded NATS's port when free (0: any free port)."""

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        services: Sequence[ServiceDef] | None = None,
    ) -> StackSettings:
        """Settings from ``env``; public-port variables of ``services`` (found by folder when
        not given) are taken as overrides."""
        env = os.environ if env is None else env
        cwd = Path.cwd() if cwd is None else cwd
        services = discover() if services is None else services
        home = Path(env.get("PARLEY_HOME") or ".parley")
        overrides = {
            s.public_port_env: env[s.public_port_env]
            for s in services
            if s.public_port_env and env.get(s.public_port_env)
        }
        return cls(
            home=(cwd / home).resolve(),
            nats_url=env.get("PARLEY_NATS_URL") or None,
            database_url=env.get("PARLEY_DATABASE_URL") or None,
            master_key=env.get(MASTER_KEY_ENV) or None,
            overrides=overrides,
        )


@dataclass(frozen=True)
class ServicePorts:
    health: int
    public: int | None


class DevStack:
    def __init__(
        self,
        settings: StackSettings,
        *,
        services: Sequence[ServiceDef] | None = None,
        out: TextIO | None = None,
        ready_timeout: float = READY_TIMEOUT,
    ) -> None:
        """``services``: those found by folder (:func:`parley_devstack.services.discover`)
        unless given."""
        self.settings = settings
        self.services = list(discover() if services is None else services)
        self.ready_timeout = ready_timeout
        self._out = out or sys.stdout
        self.name_width = max([8, *(len(s.name) for s in self.services)])
        self.supervisor = Supervisor(name_width=self.name_width, output=self._service_line)
        self.nats: EmbeddedNats | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.nats_url = settings.nats_url or ""
        self.database_url = settings.database_url or ""
        self.master_key = settings.master_key or ""
        self.sandbox_app: dict[str, Any] = {}
        self.ports: dict[str, ServicePorts] = {}
        self._watcher: asyncio.Task[None] | None = None

    @property
    def home(self) -> Path:
        return self.settings.home

    @property
    def sandbox_app_path(self) -> Path:
        return self.home / "sandbox-app.json"

    # -- start and stop --------------------------------------------------------------------

    async def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.master_key = self._master_key()
        await self._start_infrastructure()
        if self.nats is not None or self.postgres is not None:
            self._watcher = asyncio.create_task(self._watch_infrastructure(), name="watch-infra")
        await self._prepare_auth()
        self._plan_ports()
        for service in self.services:
            await self.supervisor.start(self._spec(service))
        await self._wait_ready()

    async def stop(self) -> None:
        """Services first, then PostgreSQL, then NATS. Safe to call more than once."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self.supervisor.names:
            self.say("stopping services")
            await self.supervisor.stop_all()
        if self.postgres is not None:
            if self.postgres.running:
                self.say("stopping PostgreSQL")
            await self.postgres.stop()
        if self.nats is not None:
            if self.nats.running:
                self.say("stopping NATS")
            await self.nats.stop()

    async def _watch_infrastructure(self) -> None:
        """Start the embedded NATS or PostgreSQL again, with the same data on the same port,
        when it dies: the services reconnect by themselves and the banner stays true."""
        delay = WATCH_SECONDS
        while True:
            await asyncio.sleep(delay)
            delay = WATCH_SECONDS
            for name, server in (("NATS", self.nats), ("PostgreSQL", self.postgres)):
                if server is None or server.running:
                    continue
                self.say(f"{name} exited; starting it again with the same data and port")
                try:
                    await server.start()
                    self.say(f"{name} is back")
                except Exception as exc:  # try again a little later
                    self.say(f"{name} did not start again: {exc}")
                    delay = WATCH_RETRY_SECONDS

    # -- steps -----------------------------------------------------------------------------

    def _master_key(self) -> str:
        if self.settings.master_key:
            key = self.settings.master_key
            source = f"${MASTER_KEY_ENV}"
        else:
            path = self.home / "master.key"
            if not path.exists():
                _write_private(path, base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
                self.say(f"created a new master key in {path}")
            path.chmod(0o600)
            key = path.read_text().strip()
            source = str(path)
        try:
            raw = base64.b64decode(key, validate=True)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise StackError(f"the master key in {source} is not base64 of 32 bytes")
        return key

    async def _start_infrastructure(self) -> None:
        async with asyncio.TaskGroup() as group:
            if not self.nats_url:
                group.create_task(self._start_nats())
            else:
                self.say(f"using external NATS {self.nats_url}")
            if not self.database_url:
                group.create_task(self._start_postgres())
            else:
                self.say("using external PostgreSQL from PARLEY_DATABASE_URL")

    async def _start_nats(self) -> None:
        wanted = self.settings.nats_port
        port = preferred_port(wanted) if wanted else free_port()
        if wanted and port != wanted:
            self.say(f"port {wanted} is busy; NATS uses port {port}")
        self.nats = EmbeddedNats(self.home / "nats", port=port)
        await self.nats.start()
        self.nats_url = self.nats.url
        self.say(f"NATS (JetStream) ready at {self.nats_url}")

    async def _start_postgres(self) -> None:
        self.postgres = EmbeddedPostgres(self.home / "postgres")
        await self.postgres.start()
        if self.postgres.initialized_now and self.sandbox_app_path.exists():
            # A brand-new cluster cannot hold the application recorded for an old one.
            self.sandbox_app_path.unlink()
        self.database_url = await self.postgres.ensure_database(DATABASE_NAME)
        self.say(f"PostgreSQL ready at {self.database_url}")

    def _base_env(self, database: bool = True, master_key: bool = True) -> dict[str, str]:
        """What a process is told; "" overrides a value inherited from our own environment."""
        return {
            "PARLEY_NATS_URL": self.nats_url,
            "PARLEY_DATABASE_URL": self.database_url if database else "",
            "PARLEY_ENVIRONMENT": ENVIRONMENT,
            MASTER_KEY_ENV: self.master_key if master_key else "",
            "PYTHONUNBUFFERED": "1",
        }

    async def _prepare_auth(self) -> None:
        # One admin process either way: each starts in a second or two.
        if self.sandbox_app_path.exists():
            recorded = json.loads(self.sandbox_app_path.read_text())
            listed = await self._admin("list-apps", "--json") or {}
            keys = {a.get("application_key") for a in listed.get("applications", [])}
            if recorded.get("application_key") in keys:
                self.sandbox_app = recorded
                self.say(f"sandbox application from {self.sandbox_app_path}")
                return
            # Another database than the one it was made in (PARLEY_DATABASE_URL changed).
            self.say("the recorded sandbox application is not in this database; making a new one")
        app = await self._admin(
            "create-app",
            "--new-account",
            "sandbox",
            "--name",
            "Sandbox app",
            "--environment",
            ENVIRONMENT,
            "--json",
        )
        if not app or not all(
            app.get(k) for k in ("application_key", "application_secret", "account_id")
        ):
            raise StackError("create-app printed no application_key/application_secret/account_id")
        _write_private(self.sandbox_app_path, json.dumps(app, indent=2) + "\n")
        self.sandbox_app = app
        self.say(f"created the sandbox account and application ({self.sandbox_app_path})")

    async def _admin(self, *args: str) -> dict[str, Any] | None:
        """Run ``python -m parley_auth.admin ARGS``; return its JSON output if it printed one."""
        argv = [sys.executable, "-m", ADMIN_MODULE, *args]
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **self._base_env(), "PARLEY_SERVICE_NAME": "admin"},
        )
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(), ADMIN_TIMEOUT)
        except BaseException:  # timeout or Ctrl-C: do not leave it behind
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        out, err = stdout.decode(errors="replace"), stderr.decode(errors="replace")
        failed = proc.returncode != 0
        # JSON output carries the application secret: the banner shows it once, not here.
        shown = err if "--json" in args and not failed else out + err
        for line in shown.splitlines():
            self._out_line("admin", line)
        if failed:
            raise StackError(
                f"`python -m {ADMIN_MODULE} {' '.join(args)}` failed with exit code "
                f"{proc.returncode} (its output is above)"
            )
        return _parse_json(out) if "--json" in args else None

    def _plan_ports(self) -> None:
        for service in self.services:
            health = self._port_for(f"{service.name} health", service.health_port)
            public: int | None = None
            if service.public_port is not None:
                wanted = service.public_port
                if service.public_port_env and service.public_port_env in self.settings.overrides:
                    raw = self.settings.overrides[service.public_port_env]
                    try:
                        wanted = int(raw)
                    except ValueError:
                        raise StackError(
                            f"{service.public_port_env}={raw!r} is not a port"
                        ) from None
                public = self._port_for(f"{service.name} public", wanted)
            self.ports[service.name] = ServicePorts(health=health, public=public)

    def _port_for(self, what: str, wanted: int) -> int:
        taken = {p for ports in self.ports.values() for p in (ports.health, ports.public)}
        if wanted and wanted not in taken and port_is_free(wanted):
            return wanted
        port = free_port()
        while port in taken:
            port = free_port()
        if wanted:
            self.say(f"port {wanted} ({what}) is busy; using {port} instead")
        return port

    def _spec(self, service: ServiceDef) -> ServiceSpec:
        ports = self.ports[service.name]
        env = {
            **self._base_env(service.database, service.master_key),
            "PARLEY_SERVICE_NAME": service.name,
            "PARLEY_HEALTH_PORT": str(ports.health),
            **service.env,
        }
        if service.public_port_env and ports.public is not None:
            env[service.public_port_env] = str(ports.public)
        return ServiceSpec(
            name=service.name,
            argv=[sys.executable, "-m", service.module],
            env=env,
            restart=service.restart,
        )

    async def _wait_ready(self) -> None:
        pending = {s.name: self.ports[s.name].health for s in self.services}
        if not pending:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ready_timeout
        while pending:
            statuses = await asyncio.gather(
                *(http_status(port, "/readyz") for port in pending.values())
            )
            for name, code in zip(list(pending), statuses, strict=True):
                if code == 200:
                    del pending[name]
                    self.say(f"{name} is ready")
            if not pending:
                return
            if loop.time() >= deadline:
                break
            await asyncio.sleep(0.2)
        details = []
        for name, port in pending.items():
            st = self.supervisor.status(name)
            state = "running" if st.running else f"not running (last exit code {st.last_exit_code})"
            last = "\n    ".join(st.recent_output[-10:]) or "(no output)"
            details.append(
                f"- {name}: http://{LOOPBACK}:{port}/readyz did not answer 200; {state}, "
                f"restarts {st.restarts}; last output:\n    {last}"
            )
        raise StackError(
            f"not ready after {self.ready_timeout:g} s: {', '.join(pending)}\n" + "\n".join(details)
        )

    # -- output ----------------------------------------------------------------------------

    def banner(self) -> str:
        gateway = self.ports.get(GATEWAY)
        public = gateway.public if gateway is not None else None
        app = self.sandbox_app
        rows = [
            ("application key", str(app.get("application_key", "?"))),
            ("application secret", str(app.get("application_secret", "?"))),
            ("environment", str(app.get("environment", ENVIRONMENT))),
        ]
        if public is not None:
            rows += [
                ("client endpoint", f"ws://{LOOPBACK}:{public}/v1/connect"),
                ("HTTP base", f"http://{LOOPBACK}:{public}"),
            ]
        for service in self.services:
            rows.append((f"metrics {service.name}", self._metrics_url(service.name)))
        rows += [
            ("NATS", safe_url(self.nats_url)),
            ("PostgreSQL", safe_url(self.database_url)),
            ("state", str(self.home)),
        ]
        width = max(len(k) for k, _ in rows)
        rule = "=" * 72
        lines = [rule, "  Parley is running (sandbox). Press Ctrl-C to stop.", ""]
        lines += [f"  {k:<{width}}  {v}" for k, v in rows]
        lines.append(rule)
        return "\n".join(lines)

    def _metrics_url(self, name: str) -> str:
        return f"http://{LOOPBACK}:{self.ports[name].health}/metrics"

    def show(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()

    def say(self, message: str) -> None:
        self._out_line("stack", message)

    def _service_line(self, name: str, line: str) -> None:
        self._out_line(name, line)

    def _out_line(self, name: str, line: str) -> None:
        self._out.write(f"{name:<{self.name_width}} | {line}\n")
        self._out.flush()


async def http_status(
    port: int, path: str, host: str = LOOPBACK, timeout: float = 1.0
) -> int | None:
    """The HTTP status code of ``GET path`` on ``host:port``, or None if it does not answer."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return None
    try:
        request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
        writer.write(request.encode())
        status_line = await asyncio.wait_for(reader.readline(), timeout)
        parts = status_line.split()
        return int(parts[1]) if len(parts) >= 2 and parts[0].startswith(b"HTTP/") else None
    except (OSError, TimeoutError, ValueError):
        return None
    finally:
        writer.close()


def _parse_json(text: str) -> dict[str, Any] | None:
    candidates = [text, *reversed(text.splitlines())]
    for candidate in candidates:
        candidate = candidate.strip()
        if not candidate.startswith("{"):
            continue
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


async def run_stack(settings: StackSettings | None = None) -> int:
    """Start everything, supervise until SIGINT/SIGTERM, stop everything. Returns the exit code."""
    try:
        services = discover()
    except (ServiceTableError, RootNotFoundError) as exc:
        print(f"make run cannot start: {exc}", file=sys.stderr)
        return 1
    stack = DevStack(settings or StackSettings.from_env(services=services), services=services)
    logging.basicConfig(
        level=logging.INFO, format=f"{'stack':<{stack.name_width}} | %(message)s", stream=sys.stdout
    )
    stop = asyncio.Event()
    received: list[signal.Signals] = []
    with shutdown_signals(stop, received=received):
        starting = asyncio.create_task(stack.start())
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                stack.say(f"received {received[0].name} during start-up; stopping")
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await starting
                return 0
            try:
                starting.result()
            except Exception as exc:  # report it plainly, then clean up
                stack.say(f"start-up failed: {exc}")
                return 1
            stack.show(stack.banner())
            await stopping
            stack.say(f"received {received[0].name}; stopping")
            return 0
        finally:
            stopping.cancel()
            await stack.stop()
            stack.say("stopped")
