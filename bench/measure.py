"""What the bench scripts measure a process and a sample by (shared, imported by them)."""

from __future__ import annotations

import os
from pathlib import Path


def rss_kib(pid: int) -> int:
    """Resident memory of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children, alive and reaped (PostgreSQL's backends)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    own: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        child = int(entry.name)
        parents[child] = int(fields[1])
        own[child] = (int(fields[11]) + int(fields[12])) / tick
        if child == pid:  # its reaped children too
            own[child] += (int(fields[13]) + int(fields[14])) / tick
    total = 0.0
    for child, seconds in own.items():
        walk = child
        while walk not in (0, 1) and walk != pid:
            walk = parents.get(walk, 0)
        if walk == pid:
            total += seconds
    return total
