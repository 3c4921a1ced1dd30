"""Tilt's built-ins as recording stubs, to evaluate a Tiltfile without Tilt (starlark-pyo3).

Each built-in the Tiltfile calls is recorded with its arguments; the ones with results
answer as Tilt does from the repository on disk (``listdir``, ``read_file``) or with a
stand-in (``local``, ``helm``). The signatures are Tilt's, so a misspelt keyword argument
fails as it would in Tilt; a built-in with no stub fails the evaluation naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import starlark as sl

LOCAL_OUTPUT = "bG9jYWwtc2VjcmV0LWZvci10ZXN0cw==\n"
"""What every ``local(...)`` command prints here (the commands are not run)."""

# docker_build's keyword arguments (Tilt's API reference).
DOCKER_BUILD_KWARGS = frozenset(
    {
        "build_args",
        "dockerfile",
        "dockerfile_contents",
        "live_update",
        "match_in_env_vars",
        "ignore",
        "only",
        "entrypoint",
        "target",
        "ssh",
        "network",
        "secret",
        "extra_tag",
        "container_args",
        "cache_from",
        "pull",
        "platform",
        "extra_hosts",
    }
)


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass
class TiltDouble:
    """Evaluates ``root/Tiltfile``; paths are relative to ``root``, as Tilt's are."""

    root: Path
    calls: list[Call] = field(default_factory=list)

    def evaluate(self) -> None:
        module = sl.Module()
        for name in (
            "docker_build",
            "custom_build",
            "k8s_yaml",
            "helm",
            "k8s_resource",
            "local",
            "listdir",
            "read_file",
            "sync",
            "run",
            "fall_back_on",
        ):
            module.add_callable(name, getattr(self, name))
        ast = sl.parse("Tiltfile", (self.root / "Tiltfile").read_text(), sl.Dialect.extended())
        sl.eval(module, ast, sl.Globals.standard(), sl.FileLoader(self._load))

    def called(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.name == name]

    # --- extensions (load('ext://...')) -------------------------------------------------

    def _load(self, module_id: str) -> sl.FrozenModule:
        if module_id != "ext://restart_process":
            raise ValueError(f"no stub for the extension {module_id}")
        ext = sl.Module()
        ext.add_callable("docker_build_with_restart", self.docker_build_with_restart)
        return ext.freeze()

    def docker_build_with_restart(
        self,
        ref: str,
        context: str,
        entrypoint: list[str] | str,
        live_update: list[dict[str, Any]],
        base_suffix: str = "-base",
        restart_file: str = "/tmp/.restart-proc",
        trigger: list[str] | None = None,
        exit_policy: str = "restart",
        **kwargs: Any,
    ) -> None:
        unknown = set(kwargs) - DOCKER_BUILD_KWARGS
        if unknown:
            raise TypeError(f"docker_build has no argument {sorted(unknown)[0]}")
        if not live_update:
            raise ValueError("docker_build_with_restart requires at least one live_update step")
        self._record(
            "docker_build_with_restart",
            (ref, context),
            dict(
                kwargs,
                entrypoint=entrypoint,
                live_update=live_update,
                restart_file=restart_file,
            ),
        )

    # --- built-ins ----------------------------------------------------------------------

    def docker_build(self, ref: str, context: str, **kwargs: Any) -> None:
        unknown = set(kwargs) - DOCKER_BUILD_KWARGS
        if unknown:
            raise TypeError(f"docker_build has no argument {sorted(unknown)[0]}")
        self._record("docker_build", (ref, context), kwargs)

    def custom_build(self, ref: str, command: str, deps: list[str], **kwargs: Any) -> None:
        self._record("custom_build", (ref, command, deps), kwargs)

    def k8s_yaml(self, yaml: str | list[str], allow_duplicates: bool = False) -> None:
        self._record("k8s_yaml", (yaml,), {"allow_duplicates": allow_duplicates})

    def helm(
        self,
        paths: str,
        name: str = "",
        namespace: str = "",
        values: list[str] | str = "",
        set: list[str] | str = "",  # Tilt's keyword
        kube_version: str = "",
        skip_crds: bool = False,
    ) -> str:
        self._record(
            "helm",
            (paths,),
            {"name": name, "namespace": namespace, "values": values, "set": set},
        )
        return f"<rendered chart {paths}>"

    def k8s_resource(
        self,
        workload: str = "",
        new_name: str = "",
        port_forwards: list[str] | str | int = "",
        extra_pod_selectors: list[dict[str, str]] | None = None,
        trigger_mode: int = 0,
        resource_deps: list[str] | None = None,
        objects: list[str] | None = None,
        auto_init: bool = True,
        pod_readiness: str = "",
        links: list[str] | None = None,
        labels: list[str] | str = "",
        discovery_strategy: str = "",
    ) -> None:
        self._record(
            "k8s_resource",
            (workload,),
            {
                "new_name": new_name,
                "port_forwards": port_forwards,
                "resource_deps": resource_deps or [],
                "labels": labels,
            },
        )

    def local(
        self,
        command: str | list[str],
        quiet: bool = False,
        command_bat: str = "",
        echo_off: bool = False,
        env: dict[str, str] | None = None,
        dir: str = "",  # Tilt's keyword
        stdin: str | None = None,
    ) -> str:
        self._record("local", (command,), {"quiet": quiet})
        return LOCAL_OUTPUT

    def listdir(self, directory: str, recursive: bool = False) -> list[str]:
        """The files under ``directory`` (absolute paths), as Tilt lists them."""
        top = self.root / directory
        if not top.is_dir():
            raise ValueError(f"listdir: {directory} is not a directory")
        found = top.rglob("*") if recursive else top.iterdir()
        return sorted(str(p) for p in found if p.is_file())

    def read_file(self, file_path: str, default: str | None = None) -> str:
        path = self.root / file_path
        if not path.is_file():
            if default is not None:
                return default
            raise ValueError(f"read_file: no file {file_path}")
        self._record("read_file", (file_path,), {})
        return path.read_text()

    def sync(self, local_path: str, remote_path: str) -> dict[str, str]:
        return {"step": "sync", "local": local_path, "remote": remote_path}

    def run(self, cmd: str | list[str], trigger: list[str] | str = "") -> dict[str, Any]:
        return {"step": "run", "cmd": cmd, "trigger": trigger}

    def fall_back_on(self, files: list[str] | str) -> dict[str, Any]:
        return {"step": "fall_back_on", "files": files}

    def _record(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.calls.append(Call(name, args, kwargs))
