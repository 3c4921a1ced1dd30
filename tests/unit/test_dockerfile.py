"""deploy/docker/Dockerfile read instruction by instruction: the contract of the images."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy/docker/Dockerfile"
USES_SERVICE = re.compile(r"\$(SERVICE\b|\{SERVICE\})")


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    rest: str


def instructions(text: str) -> list[Instruction]:
    """The instructions, continuation lines joined and comments left out."""
    found: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if not pending:
            start = number
        pending.append(line.removesuffix("\\").strip())
        if not line.endswith("\\"):
            keyword, _, rest = " ".join(pending).partition(" ")
            found.append(Instruction(start, keyword.upper(), rest.strip()))
            pending = []
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return found


def stages(parsed: list[Instruction]) -> list[list[Instruction]]:
    """Each stage's instructions, its FROM first."""
    result: list[list[Instruction]] = []
    for ins in parsed:
        if ins.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


PARSED = instructions(DOCKERFILE.read_text())
STAGES = stages(PARSED)
FINAL = STAGES[-1]


def test_it_is_multi_stage_and_every_stage_is_from_the_base_argument() -> None:
    assert len(STAGES) >= 2
    preamble = PARSED[: PARSED.index(STAGES[0][0])]
    assert [i.keyword for i in preamble] == ["ARG"]
    name, _, default = preamble[0].rest.partition("=")
    assert name == "BASE" and default == "parley-base:bookworm"
    for stage in STAGES:
        assert re.fullmatch(r"\$\{BASE\}( AS \w+)?", stage[0].rest), stage[0]


def test_service_is_declared_in_each_stage_before_it_is_used() -> None:
    uses = 0
    for stage in STAGES:
        declared = False
        for ins in stage:
            if ins.keyword == "ARG" and ins.rest.split("=")[0] == "SERVICE":
                declared = True
            elif USES_SERVICE.search(ins.rest):
                uses += 1
                assert declared, f"line {ins.line}: SERVICE used before ARG SERVICE"
    assert uses >= 3  # the spec, the locked install and the label


def test_only_the_services_locked_dependencies_are_installed() -> None:
    [sync] = [i for i in PARSED if i.keyword == "RUN" and "uv sync" in i.rest]
    for option in ("--frozen", "--no-dev", "--no-editable", '--package "parley-${SERVICE}"'):
        assert option in sync.rest
    assert sync in STAGES[0]
    copied = [i.rest for i in FINAL if i.keyword == "COPY"]
    assert all(c.startswith("--from=") for c in copied), "the final stage takes built files only"


def test_the_final_stage_runs_the_entrypoint_as_a_non_root_user() -> None:
    [user] = [i for i in FINAL if i.keyword == "USER"]
    uid, _, gid = user.rest.partition(":")
    assert uid == "10001" and gid == "10001"
    assert any(i.keyword == "RUN" and "--uid 10001" in i.rest for i in FINAL)
    assert FINAL.index(user) > max(FINAL.index(i) for i in FINAL if i.keyword == "RUN")
    [entrypoint] = [i for i in FINAL if i.keyword == "ENTRYPOINT"]
    assert json.loads(entrypoint.rest) == ["/app/entrypoint"]
    assert [i.rest for i in FINAL if i.keyword == "WORKDIR"] == ["/app"]
    assert not any(i.keyword == "EXPOSE" for i in PARSED), "ports are the chart's"


def test_the_build_context_leaves_out_local_files_and_tests() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "tests", "**/__pycache__"} <= ignored
    assert not ignored & {"libs", "services", "uv.lock", "pyproject.toml", "deploy/docker"}
