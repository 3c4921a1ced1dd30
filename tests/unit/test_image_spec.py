"""deploy/docker/service_spec.py: a service's image spec from its pyproject.toml."""

from __future__ import annotations

import importlib.util
import os
import stat
import sys
from pathlib import Path
from types import ModuleType

import pytest

from parley_devstack.services import discover

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    path = ROOT / "deploy/docker/service_spec.py"
    spec = importlib.util.spec_from_file_location("service_spec", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["service_spec"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


service_spec = _load()


def repo_with(tmp_path: Path, pyproject: str, name: str = "echo") -> Path:
    (tmp_path / "services" / name).mkdir(parents=True)
    (tmp_path / "services" / name / "pyproject.toml").write_text(pyproject)
    return tmp_path


SERVICE_TABLE = '[tool.parley.service]\nmodule = "parley_echo"\nhealth_port = 0\n'


def test_every_service_runs_the_module_make_run_runs() -> None:
    services = discover(ROOT)
    assert services
    for service in services:
        spec = service_spec.read_spec(ROOT, service.name)
        assert spec.module == service.module
        assert spec.entrypoint().splitlines()[-1] == f'exec python -m {service.module} "$@"'


def test_media_services_get_the_libraries_they_load() -> None:
    assert service_spec.read_spec(ROOT, "conference").system_packages == ("libopus0",)
    assert "libstdc++6" in service_spec.read_spec(ROOT, "sip").system_packages
    assert service_spec.read_spec(ROOT, "gateway").system_packages == ()


def test_main_writes_an_executable_entrypoint_and_the_package_list(tmp_path: Path) -> None:
    assert service_spec.main(["conference", str(tmp_path / "out")]) == 0
    entrypoint = tmp_path / "out/entrypoint"
    assert entrypoint.read_text().startswith("#!/bin/sh\n")
    assert entrypoint.stat().st_mode & stat.S_IXOTH
    assert (tmp_path / "out/system-packages").read_text() == "libopus0\n"
    assert os.access(entrypoint, os.X_OK)


@pytest.mark.parametrize(
    ("service", "pyproject", "message"),
    [
        ("", SERVICE_TABLE, "--build-arg SERVICE="),
        ("Echo/..", SERVICE_TABLE, "not a folder name"),
        ("other", SERVICE_TABLE, "services: echo"),
        ("echo", "[tool.parley.service]\nhealth_port = 0\n", "module"),
        ("echo", SERVICE_TABLE + '[tool.parley.image]\nsystem_packages = ["Bad Name"]\n', "Debian"),
        ("echo", SERVICE_TABLE + "[tool.parley.image]\npackages = []\n", "packages: unknown key"),
        ("echo", "[tool.parley.service\n", "pyproject.toml"),
    ],
)
def test_a_bad_service_or_table_is_named(
    tmp_path: Path, service: str, pyproject: str, message: str
) -> None:
    root = repo_with(tmp_path, pyproject)
    with pytest.raises(service_spec.SpecError, match=None) as caught:
        service_spec.read_spec(root, service)
    assert message in str(caught.value)


def test_main_reports_a_bad_service_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert service_spec.main(["no-such-service", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-such-service" in err and "gateway" in err
