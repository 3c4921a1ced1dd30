"""The Tiltfile, evaluated against recording stubs of Tilt's built-ins (tilt_double)."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.unit.tilt_double import LOCAL_OUTPUT, Call, TiltDouble

ROOT = Path(__file__).resolve().parents[2]
CHART = "deploy/helm/parley"
SANDBOX_VALUES = f"{CHART}/values-sandbox.yaml"
DOCKERFILE = "deploy/docker/Dockerfile"


def service_folders(root: Path = ROOT) -> list[str]:
    return sorted(p.parent.name for p in (root / "services").glob("*/pyproject.toml"))


def evaluated(root: Path = ROOT) -> TiltDouble:
    tilt = TiltDouble(root)
    tilt.evaluate()
    return tilt


@pytest.fixture(scope="module")
def tilt() -> TiltDouble:
    return evaluated()


def builds(tilt: TiltDouble) -> dict[str, Call]:
    """The image builds by the service they build (their SERVICE build argument)."""
    calls = tilt.called("docker_build_with_restart")
    by_service = {c.kwargs["build_args"]["SERVICE"]: c for c in calls}
    assert len(by_service) == len(calls), "two builds of one service"
    return by_service


def resources(tilt: TiltDouble) -> dict[str, Call]:
    return {c.kwargs["new_name"]: c for c in tilt.called("k8s_resource")}


def locked_workspace_libs(service: str) -> set[str]:
    """The folders of libs/ that uv.lock installs with the service (the image's libraries)."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    members = {
        p["name"]: p["source"]["editable"] for p in lock["package"] if "editable" in p["source"]
    }
    deps = {p["name"]: [d["name"] for d in p.get("dependencies", [])] for p in lock["package"]}
    found: set[str] = set()
    todo = [f"parley-{service}"]
    while todo:
        name = todo.pop()
        for dep in deps[name]:
            if dep in members and dep not in found:
                found.add(dep)
                todo.append(dep)
    return {members[name].removeprefix("libs/") for name in found}


def dockerfile_value(pattern: str) -> str:
    match = re.search(pattern, (ROOT / DOCKERFILE).read_text())
    assert match, f"{DOCKERFILE}: nothing matches {pattern}"
    return match.group(1)


def test_every_service_folder_is_built_from_the_one_dockerfile(tilt: TiltDouble) -> None:
    by_service = builds(tilt)
    assert sorted(by_service) == service_folders() != []
    for service, call in by_service.items():
        ref, context = call.args
        assert ref.rsplit("/", 1)[-1] == f"parley-{service}"
        assert context == "."
        assert call.kwargs["dockerfile"] == DOCKERFILE
        assert call.kwargs["build_args"]["LIVE_UPDATE"] == "true"
    assert not tilt.called("docker_build") and not tilt.called("custom_build")


def test_every_service_has_a_resource_named_after_it(tilt: TiltDouble) -> None:
    by_name = resources(tilt)
    for service in service_folders():
        assert by_name[service].args == (f"parley-{service}",)  # the chart's Deployment
        assert "postgres" in by_name[service].kwargs["resource_deps"]


def test_the_chart_is_deployed_with_the_sandbox_values(tilt: TiltDouble) -> None:
    [helm] = tilt.called("helm")
    assert helm.args == (CHART,)
    assert helm.kwargs["name"] == "parley"
    assert helm.kwargs["values"] == [SANDBOX_VALUES]
    settings = dict(s.split("=", 1) for s in helm.kwargs["set"])
    # The images the chart names are the ones built here: <registry>/parley-<service>.
    refs = {c.args[0] for c in tilt.called("docker_build_with_restart")}
    assert {f"{settings['image.registry']}/parley-{s}" for s in service_folders()} == refs
    assert settings["containerSecurityContext.readOnlyRootFilesystem"] == "false"
    assert settings["masterKey.value"] == settings["turn.secret"] == LOCAL_OUTPUT.strip()
    assert settings["database.url"].startswith("postgresql://")
    deployed = [c.args[0] for c in tilt.called("k8s_yaml")]
    assert f"<rendered chart {CHART}>" in deployed
    assert "deploy/tilt/postgres.yaml" in deployed
    assert (ROOT / "deploy/tilt/postgres.yaml").is_file()


def test_the_helm_settings_name_keys_of_the_chart(tilt: TiltDouble) -> None:
    values_file = ROOT / CHART / "values.yaml"
    if not values_file.is_file():
        pytest.skip(f"no {CHART} in this checkout")
    yaml = pytest.importorskip("yaml")
    values = yaml.safe_load(values_file.read_text())
    [helm] = tilt.called("helm")
    for setting in helm.kwargs["set"]:
        node: Any = values
        for key in setting.split("=", 1)[0].split("."):
            assert isinstance(node, dict) and key in node, f"{setting}: not a key of values.yaml"
            node = node[key]


def test_live_updates_sync_each_service_and_its_libraries_into_site_packages(
    tilt: TiltDouble,
) -> None:
    venv = dockerfile_value(r"UV_PROJECT_ENVIRONMENT=(\S+)")
    for service, call in builds(tilt).items():
        steps = call.kwargs["live_update"]
        assert all(s["step"] == "sync" for s in steps)
        remotes = {s["remote"] for s in steps}
        assert len(remotes) == 1
        assert re.fullmatch(re.escape(venv) + r"/lib/python3\.\d+/site-packages", remotes.pop())
        expected = {f"services/{service}/src"} | {
            f"libs/{lib}/src" for lib in locked_workspace_libs(service)
        }
        assert {s["local"] for s in steps} == expected
        assert all((ROOT / s["local"]).is_dir() for s in steps)


def test_each_build_context_holds_the_manifests_and_its_sources(tilt: TiltDouble) -> None:
    manifests = {"pyproject.toml", "uv.lock", "deploy/docker"} | {
        str(p.relative_to(ROOT)) for p in ROOT.glob("*/*/pyproject.toml")
    }
    for call in builds(tilt).values():
        only = set(call.kwargs["only"])
        synced = {s["local"] for s in call.kwargs["live_update"]}
        assert only == manifests | synced
        assert all((ROOT / path).exists() for path in only)


def test_the_restarted_entrypoint_is_the_images(tilt: TiltDouble) -> None:
    entrypoint = dockerfile_value(r"ENTRYPOINT (\[.*\])")
    for call in builds(tilt).values():
        assert repr(call.kwargs["entrypoint"]).replace("'", '"') == entrypoint
        # The file the restart wrapper watches exists writable in LIVE_UPDATE images.
        assert call.kwargs["restart_file"] in dockerfile_value(r"(install .*restart-proc)")


def test_the_gateway_is_forwarded_to_8080(tilt: TiltDouble) -> None:
    forwards = {name: c.kwargs["port_forwards"] for name, c in resources(tilt).items()}
    assert forwards.pop("gateway") == ["8080:8080"]
    assert all(not f for f in forwards.values())


def test_a_new_service_folder_needs_no_edit(tmp_path: Path) -> None:
    for path in ["Tiltfile", *(str(p.relative_to(ROOT)) for p in ROOT.glob("*/*/pyproject.toml"))]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    echo = tmp_path / "services/echo"
    (echo / "src/parley_echo").mkdir(parents=True)
    (echo / "pyproject.toml").write_text(
        '[project]\nname = "parley-echo"\ndependencies = ["parley-service"]\n'
    )
    tilt = evaluated(tmp_path)
    call = builds(tilt)["echo"]
    assert {s["local"] for s in call.kwargs["live_update"]} == {
        "services/echo/src",
        "libs/service/src",
        "libs/protocol/src",  # through parley-service
    }
    assert resources(tilt)["echo"].args == ("parley-echo",)
