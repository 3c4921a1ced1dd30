"""Services found by folder: each services/<name>/pyproject.toml's [tool.parley.service]."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from parley_devstack.services import (
    GATEWAY,
    RootNotFoundError,
    ServiceDef,
    ServiceTableError,
    discover,
    find_root,
)
from parley_devstack.stack import StackSettings

ROOT_PYPROJECT = '[project]\nname = "x"\n\n[tool.uv.workspace]\nmembers = ["services/*"]\n'


def _tree(tmp_path: Path, services: dict[str, str]) -> Path:
    (tmp_path / "services").mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text(ROOT_PYPROJECT)
    for name, text in services.items():
        folder = tmp_path / "services" / name
        folder.mkdir()
        (folder / "pyproject.toml").write_text(f'[project]\nname = "{name}"\n\n{text}')
    return tmp_path


WORKER = """\
[tool.parley.service]
module = "acme_worker.main"
health_port = 9201
order = 20
restart = false
env = { ACME_MODE = "fast" }
"""

FRONT = """\
[tool.parley.service]
module = "acme_front"
health_port = 9202
public_port = 8081
public_port_env = "ACME_FRONT_PORT"
database = true
master_key = true
order = 10
"""


def test_two_services_in_start_order_and_a_folder_without_the_table_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = _tree(
        tmp_path,
        {
            "worker": WORKER,
            "front": FRONT,
            "library-ish": "[tool.other]\nx = 1\n",
        },
    )
    (root / "services" / "notes").mkdir()  # no pyproject.toml: not a service, no warning
    with caplog.at_level(logging.WARNING, logger="parley_devstack.services"):
        found = discover(root)
    assert found == (
        ServiceDef(
            name="front",
            module="acme_front",
            health_port=9202,
            public_port=8081,
            public_port_env="ACME_FRONT_PORT",
            database=True,
            master_key=True,
        ),
        ServiceDef(
            name="worker",
            module="acme_worker.main",
            health_port=9201,
            env={"ACME_MODE": "fast"},
            restart=False,
        ),
    )
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "services/library-ish/pyproject.toml" in warnings[0]
    assert "[tool.parley.service]" in warnings[0]


def test_equal_or_missing_order_starts_by_name(tmp_path: Path) -> None:
    table = '[tool.parley.service]\nmodule = "m"\nhealth_port = 0\n'
    root = _tree(tmp_path, {"b": table, "a": table, "c": table + "order = 1\n"})
    assert [s.name for s in discover(root)] == ["c", "a", "b"]


@pytest.mark.parametrize(
    ("table", "key", "problem"),
    [
        ("health_port = 9201\n", "module", "missing"),
        ('module = "m"\n', "health_port", "missing"),
        ('module = "m"\nhealth_port = "9201"\n', "health_port", "must be a port"),
        ('module = "m"\nhealth_port = 70000\n', "health_port", "must be a port"),
        ('module = "m"\nhealth_port = true\n', "health_port", "must be a port"),
        ('module = "not a module"\nhealth_port = 1\n', "module", "dotted module name"),
        ('module = "m"\nhealth_port = 1\npublic_port = 8080\n', "public_port_env", "together"),
        ('module = "m"\nhealth_port = 1\npublic_port_env = "P"\n', "public_port", "together"),
        ('module = "m"\nhealth_port = 1\ndatabase = "yes"\n', "database", "true or false"),
        ('module = "m"\nhealth_port = 1\norder = 1.5\n', "order", "an integer"),
        ('module = "m"\nhealth_port = 1\nenv = { A = 1 }\n', "env", "table of variable"),
        ('module = "m"\nhealth_port = 1\nhelth_port = 2\n', "helth_port", "unknown key"),
    ],
)
def test_a_malformed_table_names_the_file_and_the_key(
    tmp_path: Path, table: str, key: str, problem: str
) -> None:
    root = _tree(
        tmp_path,
        {"good": WORKER, "other": "[tool.x]\n", "broken": "[tool.parley.service]\n" + table},
    )
    with pytest.raises(ServiceTableError) as caught:
        discover(root)
    path = root / "services" / "broken" / "pyproject.toml"
    assert caught.value.path == path and caught.value.key == key
    message = str(caught.value)
    assert str(path) in message and f"[tool.parley.service] {key}" in message
    assert problem in message


def test_not_a_table_and_not_toml(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"flat": "[tool.parley]\nservice = 3\n"})
    with pytest.raises(ServiceTableError, match=r"flat/pyproject\.toml: .* must be a table"):
        discover(root)
    (root / "services" / "flat" / "pyproject.toml").write_text("[tool.parley.service\n")
    with pytest.raises(ServiceTableError, match=r"flat/pyproject\.toml: .* not valid TOML"):
        discover(root)


def test_the_root_is_found_from_the_package_or_the_current_directory(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    assert find_root() == repo  # the package lives in this repository
    assert find_root(tmp_path) == repo  # ... which wins over the current directory
    assert discover(_tree(tmp_path / "t", {})) == ()


def test_no_root_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from parley_devstack import services

    monkeypatch.setattr(services, "__file__", str(tmp_path / "elsewhere" / "services.py"))
    with pytest.raises(RootNotFoundError, match="no Parley repository"):
        find_root(tmp_path)
    root = _tree(tmp_path / "repo", {})
    (root / "deep" / "er").mkdir(parents=True)
    assert find_root(root / "deep" / "er") == root


def test_the_repository_runs_auth_gateway_calls_push_messaging_sip_conference_then_stats() -> None:
    found = discover()
    names = [s.name for s in found]
    assert names == ["auth", GATEWAY, "calls", "push", "messaging", "sip", "conference", "stats"]
    auth, gateway, calls, push, messaging, sip, conference, stats = found
    assert (auth.module, auth.health_port, auth.public_port) == ("parley_auth", 9101, None)
    assert auth.database and auth.master_key and auth.restart
    assert (gateway.module, gateway.health_port) == ("parley_gateway", 9102)
    assert (gateway.public_port, gateway.public_port_env) == (8080, "PARLEY_GATEWAY_PORT")
    assert not gateway.database and not gateway.master_key
    assert (calls.module, calls.health_port, calls.public_port) == ("parley_calls", 9103, None)
    assert not calls.database and not calls.master_key
    assert (messaging.module, messaging.health_port) == ("parley_messaging", 9104)
    assert messaging.public_port is None
    assert messaging.database and not messaging.master_key and messaging.restart
    assert (push.module, push.health_port, push.public_port) == ("parley_push", 9105, None)
    assert push.database and push.master_key and push.restart
    assert (sip.module, sip.health_port, sip.public_port) == ("parley_sip", 9106, None)
    assert not sip.database and not sip.master_key
    assert (conference.module, conference.health_port) == ("parley_conference", 9107)
    assert conference.public_port is None
    assert not conference.database and not conference.master_key
    assert (stats.module, stats.health_port, stats.public_port) == ("parley_stats", 9108, None)
    assert stats.database and not stats.master_key and stats.restart
    # ... and the gateway's public-port variable is taken as an override.
    settings = StackSettings.from_env({"PARLEY_GATEWAY_PORT": "18080"}, cwd=Path("/"))
    assert settings.overrides == {"PARLEY_GATEWAY_PORT": "18080"}
