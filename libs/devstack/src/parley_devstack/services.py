"""The services that ``make run`` supervises, found by folder.

A service is a folder ``services/<name>/`` with a pyproject.toml; its table
``[tool.parley.service]`` says how ``make run`` runs it::

    [tool.parley.service]
    module = "parley_gateway"       # python -m <module>
    health_port = 9102              # /healthz, /readyz, /metrics (PARLEY_HEALTH_PORT)
    public_port = 8080              # optional, together with public_port_env
    public_port_env = "PARLEY_GATEWAY_PORT"
    database = false                # gets PARLEY_DATABASE_URL
    master_key = false              # gets the auth master key
    order = 20                      # start order, lowest first (then by name)
    restart = true                  # restarted by the supervisor when it exits
    env = { PARLEY_LOG_LEVEL = "INFO" }  # variables of this service alone

Only ``module`` and ``health_port`` are required. The service is named after its folder.
A folder with a pyproject.toml but no such table is skipped with a warning; a malformed
table is a :class:`ServiceTableError` naming the file and the key.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TABLE = "tool.parley.service"
SERVICES_DIR = "services"
DEFAULT_ORDER = 100


@dataclass(frozen=True)
class ServiceDef:
    """A service run as ``python -m <module>``.

    ``health_port`` is its internal port for /healthz, /readyz and /metrics (env
    PARLEY_HEALTH_PORT). A service with a public port gets it in env ``public_port_env``;
    the same variable in our own environment overrides ``public_port``. A port of 0 means
    any free port. ``env`` adds variables of this service alone (e.g. a second gateway's id).
    """

    name: str
    module: str
    health_port: int
    public_port: int | None = None
    public_port_env: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    restart: bool = True
    # Only services that keep tables get the database URL, and only auth the master key:
    # the public gateway holds neither.
    database: bool = False
    master_key: bool = False


GATEWAY = "gateway"
"""The service whose public port is the client endpoint."""

ADMIN_MODULE = "parley_auth.admin"
"""``python -m ADMIN_MODULE list-apps | create-app`` (see stack.py)."""


class ServiceTableError(ValueError):
    """A service's ``[tool.parley.service]`` table (or its pyproject.toml) is malformed."""

    def __init__(self, path: Path, key: str | None, problem: str) -> None:
        where = f"[{TABLE}] {key}" if key else f"[{TABLE}]"
        super().__init__(f"{path}: {where}: {problem}")
        self.path = path
        self.key = key


class RootNotFoundError(LookupError):
    """No repository root (a pyproject.toml with a uv workspace and a services/ folder)."""


def is_root(path: Path) -> bool:
    pyproject = path / "pyproject.toml"
    if not (pyproject.is_file() and (path / SERVICES_DIR).is_dir()):
        return False
    try:
        data = tomllib.loads(pyproject.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return "workspace" in data.get("tool", {}).get("uv", {})


def find_root(cwd: Path | None = None) -> Path:
    """The repository root: above this package (a workspace install), else above ``cwd``."""
    here = Path(__file__).resolve().parent
    start = (Path.cwd() if cwd is None else cwd).resolve()
    for candidate in (*here.parents, start, *start.parents):
        if is_root(candidate):
            return candidate
    raise RootNotFoundError(
        f"no Parley repository found above {here} or {start} "
        f"(a pyproject.toml with [tool.uv.workspace] next to a {SERVICES_DIR}/ folder)"
    )


def discover(root: Path | None = None) -> tuple[ServiceDef, ...]:
    """Every service of ``<root>/services/*/pyproject.toml``, in start order."""
    root = find_root() if root is None else root
    found: list[tuple[int, ServiceDef]] = []
    for folder in sorted((root / SERVICES_DIR).iterdir()):
        pyproject = folder / "pyproject.toml"
        if not folder.is_dir() or not pyproject.is_file():
            continue  # not a service: a service is a folder with a pyproject.toml
        try:
            data = tomllib.loads(pyproject.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ServiceTableError(pyproject, None, f"not valid TOML ({exc})") from None
        table: Any = data.get("tool", {}).get("parley", {}).get("service")
        if table is None:
            log.warning("%s has no [%s] table; make run does not start it", pyproject, TABLE)
            continue
        found.append(_service(folder.name, pyproject, table))
    found.sort(key=lambda item: (item[0], item[1].name))
    return tuple(service for _, service in found)


def _service(name: str, path: Path, table: Any) -> tuple[int, ServiceDef]:
    """(order, definition) of one table."""
    if not isinstance(table, dict):
        raise ServiceTableError(path, None, "must be a table")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ServiceTableError(
            path, unknown[0], f"unknown key (known: {', '.join(sorted(_KEYS))})"
        )
    module = _get(path, table, "module", _is_module, "a dotted module name", required=True)
    health_port = _get(path, table, "health_port", _is_port, "a port (0 to 65535)", required=True)
    public_port = _get(path, table, "public_port", _is_port, "a port (0 to 65535)")
    public_port_env = _get(path, table, "public_port_env", _is_env_name, "a variable name")
    if (public_port is None) != (public_port_env is None):
        missing = "public_port_env" if public_port_env is None else "public_port"
        raise ServiceTableError(
            path, missing, "required with public_port/public_port_env (they go together)"
        )
    env = _get(path, table, "env", _is_env, "a table of variable names to strings") or {}
    order = _get(path, table, "order", _is_int, "an integer")
    service = ServiceDef(
        name=name,
        module=module,
        health_port=health_port,
        public_port=public_port,
        public_port_env=public_port_env,
        env=dict(env),
        restart=_get(path, table, "restart", _is_bool, "true or false", default=True),
        database=_get(path, table, "database", _is_bool, "true or false", default=False),
        master_key=_get(path, table, "master_key", _is_bool, "true or false", default=False),
    )
    return (DEFAULT_ORDER if order is None else order), service


_KEYS = frozenset(
    {
        "module",
        "health_port",
        "public_port",
        "public_port_env",
        "database",
        "master_key",
        "order",
        "restart",
        "env",
    }
)


def _get(
    path: Path,
    table: dict[str, Any],
    key: str,
    check: Callable[[Any], bool],
    what: str,
    *,
    required: bool = False,
    default: Any = None,
) -> Any:
    if key not in table:
        if required:
            raise ServiceTableError(path, key, "missing (required)")
        return default
    value = table[key]
    if not check(value):
        raise ServiceTableError(path, key, f"must be {what}, not {value!r}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_port(value: Any) -> bool:
    return _is_int(value) and 0 <= value <= 65535


def _is_module(value: Any) -> bool:
    return isinstance(value, str) and all(part.isidentifier() for part in value.split("."))


def _is_env_name(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value) is not None


def _is_env(value: Any) -> bool:
    return isinstance(value, dict) and all(
        _is_env_name(k) and isinstance(v, str) for k, v in value.items()
    )
