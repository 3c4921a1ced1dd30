"""What one service's image needs, read from ``services/<name>/pyproject.toml``.

Run by the Dockerfile's build stage, with the base image's python3 and nothing installed
yet (so the standard library only)::

    python3 deploy/docker/service_spec.py SERVICE OUT_DIR

It writes ``OUT_DIR/entrypoint``, which runs ``python -m <module>`` with the module of the
service's ``[tool.parley.service]`` table (the one ``make run`` runs), and
``OUT_DIR/system-packages``: the Debian packages of its ``[tool.parley.image]`` table, one
a line, which the final stage installs (shared libraries loaded at run time)::

    [tool.parley.image]
    system_packages = ["libopus0"]

A bad name or table stops the build with one line naming the file and the key.
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

SERVICE_NAME = re.compile(r"[a-z][a-z0-9-]*")
MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
# Debian policy 5.6.1: lower case letters, digits, + - . ; at least two, a letter or digit first.
DEBIAN_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+")


class SpecError(ValueError):
    """The service or its pyproject.toml cannot make an image."""


@dataclass(frozen=True)
class ImageSpec:
    service: str
    module: str
    system_packages: tuple[str, ...]

    def entrypoint(self) -> str:
        """The image's entrypoint: the service's module under the image's Python."""
        return f'#!/bin/sh\nexec python -m {self.module} "$@"\n'


def read_spec(root: Path, service: str) -> ImageSpec:
    """The image spec of ``services/<service>`` under the repository ``root``."""
    if not service:
        raise SpecError("no service: build with --build-arg SERVICE=<a folder of services/>")
    if not SERVICE_NAME.fullmatch(service):
        raise SpecError(f"service {service!r}: not a folder name of services/ (a-z, 0-9, -)")
    path = root / "services" / service / "pyproject.toml"
    if not path.is_file():
        known = sorted(p.parent.name for p in (root / "services").glob("*/pyproject.toml"))
        raise SpecError(f"service {service!r}: no {path} (services: {', '.join(known)})")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: {exc}") from exc
    tool = data.get("tool", {}).get("parley", {})
    module = tool.get("service", {}).get("module")
    if not isinstance(module, str) or not MODULE_NAME.fullmatch(module):
        raise SpecError(f"{path}: [tool.parley.service] module: a Python module name is needed")
    image = tool.get("image", {})
    if not isinstance(image, dict):
        raise SpecError(f"{path}: [tool.parley.image]: a table is needed")
    unknown = sorted(set(image) - {"system_packages"})
    if unknown:
        raise SpecError(f"{path}: [tool.parley.image] {unknown[0]}: unknown key")
    packages = image.get("system_packages", [])
    if not isinstance(packages, list) or not all(
        isinstance(p, str) and DEBIAN_PACKAGE.fullmatch(p) for p in packages
    ):
        raise SpecError(
            f"{path}: [tool.parley.image] system_packages: a list of Debian package names"
        )
    return ImageSpec(service, module, tuple(packages))


def write(spec: ImageSpec, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    entrypoint = out / "entrypoint"
    entrypoint.write_text(spec.entrypoint())
    entrypoint.chmod(0o755)
    (out / "system-packages").write_text("".join(f"{p}\n" for p in spec.system_packages))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: service_spec.py SERVICE OUT_DIR", file=sys.stderr)
        return 2
    root = Path(__file__).resolve().parents[2]
    try:
        spec = read_spec(root, argv[0])
    except SpecError as exc:
        print(f"service_spec: {exc}", file=sys.stderr)
        return 2
    write(spec, Path(argv[1]))
    packages = " ".join(spec.system_packages) or "none"
    print(f"parley-{spec.service}: python -m {spec.module}; system packages: {packages}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
